"""Scale of attack scoring: every registered attack on 64 models x 50,000 samples x 2 queries.

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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--samples", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.5, help="members' true-class logit boost")
    ap.add_argument("--attacks", default="all", help="comma list or 'all'")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

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
