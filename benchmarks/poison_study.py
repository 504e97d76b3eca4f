"""Truth Serum study (Tramer et al., CCS 2022): LiRA on clean targets with 0, 1, 2, 4, 8 poison copies.

One population per copy count, identical otherwise (``configs/digits.yaml``: 64 MLPs on the 1,797
digits, balanced design, Adam, 40 epochs): ``poison.targets`` pool samples are the targets, and
``copies`` mislabeled copies of each (one random wrong label per target) join EVERY model's
training set. LiRA (online, unchanged) scores the clean targets; AUC and TPR at 0.1% / 1% FPR
restricted to the targets, pooled over the target models (leave-one-model-out), with 95%
bootstrap intervals; plus test accuracy on non-member ordinary samples.

    nice -n 10 python benchmarks/poison_study.py [--targets 50] [--copies 0 1 2 4 8] [--out DIR]

Prints one JSON object per copy count and writes ``benchmarks/results/poison_study.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dp_study import lira_scores, pooled, test_accuracy  # noqa: E402

from privaudit.config import parse_config  # noqa: E402
from privaudit.runtime.run import Layout, Run  # noqa: E402
from privaudit.stages.dp_audit import select_samples  # noqa: E402
from privaudit.stages.prepare import prepare  # noqa: E402
from privaudit.stages.query import query  # noqa: E402
from privaudit.stages.train import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())


def config(copies: int, n_targets: int, out: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE) | {"name": f"poison_{n_targets}x{copies}", "out": out,
                                  "poison": {"targets": n_targets, "copies": copies},
                                  "attacks": ["lira_online"]}
    data["evaluation"] = data["evaluation"] | {"targets": data["population"]["n_models"] - 1}
    return data


def study(copies: int, n_targets: int, out: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = parse_config(config(copies, n_targets, out))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        train(run, cfg)
        query(run, cfg)
    t = cfg.evaluation.targets
    scores = lira_scores(run, cfg, t)
    keep = run.keep()[:t]
    targets = select_samples(run, "poison_targets")
    y = run.labels()
    logits = np.asarray(run.load_npy(Layout.signal("logits", cfg.training.epochs), mmap=True)[:t, :, 0])
    correct = logits.argmax(-1)[:, targets] == y[targets]
    member = keep[:, targets]
    return {"copies": copies, "poison_targets": int(targets.size), "poison_rows": int(targets.size * copies),
            "training_rows_per_model": float(run.training_keep()[:t].sum(axis=1).mean()),
            "lira_targets": pooled(scores[:, targets], member),
            "lira_all": pooled(scores, keep, n_boot=200),
            "test_accuracy": test_accuracy(cfg, run),
            "target_accuracy_in": float(correct[member].mean()), "target_accuracy_out": float(correct[~member].mean()),
            "n_models": cfg.population.n_models, "target_models": t,
            "seconds": round(time.perf_counter() - t0, 1), "run_dir": str(run.root)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=50, help="number of poisoned targets")
    ap.add_argument("--copies", type=int, nargs="*", default=[0, 1, 2, 4, 8])
    ap.add_argument("--out", default="/tmp/privaudit_poison_study")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "poison_study.json"))
    args = ap.parse_args()
    rows = []
    for k in args.copies:
        rows.append(study(k, args.targets, args.out))
        print(json.dumps(rows[-1]), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"base_config": BASE, "poison_targets": args.targets, "rows": rows},
                                          indent=2) + "\n")


if __name__ == "__main__":
    main()
