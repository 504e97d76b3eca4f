"""Scale of attack scoring, two workloads.

``--stage``: the evaluate stage of a run (every logit-based attack over 16 leave-one-model-out
targets, metrics with 200 bootstrap resamples, per-class slices, ``metrics.json``) on a
Location-sized population (64 models x 5,010 samples x 1 query x 30 classes, synthetic logits), for
this checkout and (``--before REV``) an earlier commit, in one run, timed part by part:

    nice -n 10 python benchmarks/attack_scale.py --stage [--before REV] [--rounds 1] > result.json

Default: every registered attack on 64 models x 50,000 samples x 2 queries (one target).

Synthetic logits ``[64, 50000, 2, 10]`` (float32; a per-sample difficulty, members' true-class logit
raised by ``--gap``; balanced design, every sample IN for 32 models) and, for the curvature
attacks, a synthetic curvature ``exp(-phi)`` of the same shape (smaller for members). Model 0 is the
target, the other 63 models are the references: the work of one leave-one-model-out target.
Times (wall seconds, ``time.perf_counter``) per attack (``run_attack``: validation + scoring) and for
deriving each signal from the logits, once each, and their totals; JSON on stdout.

    nice -n 10 python benchmarks/attack_scale.py > benchmarks/results/attack_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from privaudit.attacks.registry import ATTACKS, run_attack
from privaudit.evaluation.metrics import auc
from privaudit.signals.transforms import derive


def population(m: int, n: int, a: int, c: int, gap: float, seed: int):
    """Synthetic logits float32 [m, n, a, c], keep bool [m, n] and labels int [n]."""
    rng = np.random.default_rng(seed)
    keep = rng.random((m, n)).argsort(axis=0).argsort(axis=0) < m // 2
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(m, n, a, c)).astype(np.float32)
    boost = (rng.normal(2.0, 1.5, n)[None, :] + gap * keep).astype(np.float32)       # [m, n]
    logits[:, np.arange(n), :, labels] += boost.T[:, :, None]
    return logits, keep, labels


STAGE_ATTACKS = ("loss", "lira_online", "lira_offline", "lira_online_global", "lira_offline_global", "sablayrolles",
                 "watson", "ye_r", "ye_p", "song_mittal", "shokri", "rmia_online", "rmia_offline", "rmia_taylor")

STAGE_DRIVER = '''
import json, sys, time
import numpy as np
from privaudit.config import AttackConfig, parse_config
from privaudit.runtime.run import Layout, Run
from privaudit.stages.evaluate import evaluate, slices_document
from privaudit.stages.prepare import prepare
from privaudit.evaluation.protocol import result_from_scores

out, attacks, m, n, c, targets = sys.argv[1], sys.argv[2].split(","), *map(int, sys.argv[3:7])
rng = np.random.default_rng(0)
np.savez(f"{out}/data.npz", x=(rng.random((n, 446)) < 0.2).astype(np.float32), y=rng.integers(0, c, n))
cfg = parse_config({"name": "stage", "out": out, "seed": 0, "data": {"name": "npz", "root": f"{out}/data.npz"},
                    "population": {"n_models": m, "models_per_group": m}, "model": {"arch": "mlp", "hidden": [64]},
                    "training": {"epochs": 1}, "attacks": attacks,
                    "evaluation": {"targets": targets, "fprs": [0.01, 0.001], "bootstrap": 200}})
run = Run(cfg.run_dir)
times = {}
with run.writer():
    prepare(run, cfg)
    keep, labels = run.keep(), run.labels()
    logits = rng.normal(size=(m, n, 1, c)).astype(np.float32)
    boost = rng.normal(2.0, 1.5, n)[None, :] + 0.5 * keep
    logits[:, np.arange(n), 0, labels] += boost.astype(np.float32)
    run.save_npy(Layout.signal("logits", 1), logits, meta={"settings": {"queries": [[False, 0, 0]]}})
    ev = cfg.evaluation
    t = time.perf_counter()
    for name in sorted({a.signal_name for a in cfg.attacks}):
        run.signal(name, 1)
    times["derive signals"] = time.perf_counter() - t
    results = {}
    for a in cfg.attacks:
        t = time.perf_counter()
        scores = run.scores(a, 1, ev.targets)
        times[a.key] = time.perf_counter() - t
        t = time.perf_counter()
        results[a.key] = result_from_scores(a.key, a.signal_name, scores, keep[: ev.targets], list(range(ev.targets)),
                                            fprs=tuple(ev.fprs), mode=ev.tpr_mode, n_boot=ev.bootstrap, seed=ev.seed)
        times["metrics and intervals"] = times.get("metrics and intervals", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    slices_document(run, cfg, results, 1)
    times["slices (30 classes)"] = time.perf_counter() - t
    fresh = Run(cfg.run_dir)        # the stage as a run calls it, nothing cached
    t = time.perf_counter()
with fresh.writer():
    evaluate(fresh, cfg)
    times["evaluate stage (whole)"] = time.perf_counter() - t
print(json.dumps(times))
'''


def stage_main(args) -> dict:
    """The ``--stage`` workload for this checkout and ``--before``, alternating, median over rounds."""
    import statistics
    import subprocess
    import tempfile
    from pathlib import Path

    import revisions  # benchmarks/revisions.py

    with tempfile.TemporaryDirectory() as scratch, revisions.trees(args.before, Path(scratch)) as trees:
        rounds = {k: [] for k in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                with tempfile.TemporaryDirectory(dir=scratch) as out:
                    done = subprocess.run([sys.executable, "-c", STAGE_DRIVER, out, ",".join(STAGE_ATTACKS),
                                           "64", "5010", "30", "16"], env=os.environ | {"PYTHONPATH": str(tree)},
                                          cwd=out, check=True, capture_output=True, text=True)
                rounds[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps({name: rounds[name][-1]}), file=sys.stderr, flush=True)
    seconds = {k: {part: round(statistics.median(r[part] for r in v), 2) for part in v[0]} for k, v in rounds.items()}
    doc = {"workload": "evaluate stage: 64 models x 5,010 samples x 1 query x 30 classes, 16 targets, "
                       f"{len(STAGE_ATTACKS)} attacks, 200 bootstrap resamples, 30 class slices",
           "rounds": args.rounds, "seconds": seconds,
           "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]}}
    if args.before:
        doc["before_rev"] = revisions.resolve(args.before)
        b, a = seconds["before"], seconds["after"]
        doc["after_over_before"] = {k: round(a[k] / b[k], 2) for k in a if b.get(k)}
    print(json.dumps(doc, indent=1))
    return doc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", action="store_true", help="the evaluate-stage workload (see the module docstring)")
    ap.add_argument("--before", help="with --stage: an earlier commit timed side by side")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--samples", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.5, help="members' true-class logit boost")
    ap.add_argument("--attacks", default="all", help="comma list or 'all'")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.stage:
        return stage_main(args)

    logits, keep, labels = population(args.models, args.samples, args.queries, args.classes, args.gap, args.seed)
    names = list(ATTACKS) if args.attacks == "all" else args.attacks.split(",")
    signals, derive_s = {}, {}
    for name in sorted({ATTACKS[n].signal for n in names}):
        t0 = time.perf_counter()
        if name == "curvature":
            signals[name] = np.exp(-derive("phi", logits, labels))      # synthetic: flatter for members
        else:
            signals[name] = derive(name, logits, labels)
        derive_s[name] = time.perf_counter() - t0
    rows = {}
    for name in names:
        spec = ATTACKS[name]
        x = signals[spec.signal]
        t0 = time.perf_counter()
        score = run_attack(spec, x[0], x[1:], keep[1:], labels)
        rows[name] = {"signal": spec.signal, "seconds": round(time.perf_counter() - t0, 3),
                      "auc": round(auc(keep[0], score), 4)}
        print(json.dumps({name: rows[name]}), file=sys.stderr, flush=True)
    doc = {"models": args.models, "references": args.models - 1, "samples": args.samples, "queries": args.queries,
           "classes": args.classes, "attacks": rows, "derive_seconds": {k: round(v, 3) for k, v in derive_s.items()},
           "total_attack_seconds": round(sum(r["seconds"] for r in rows.values()), 2),
           "total_attack_seconds_without_shokri": round(sum(r["seconds"] for k, r in rows.items() if k != "shokri"), 2),
           "total_derive_seconds": round(sum(derive_s.values()), 2),
           "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0],
                       "python": platform.python_version(), "numpy": np.__version__}}
    print(json.dumps(doc, indent=1))
    return doc


if __name__ == "__main__":
    main()
