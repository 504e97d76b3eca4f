"""Wall time of the default audit (``privaudit run configs/digits.yaml``), stage by stage.

    python benchmarks/end_to_end.py [--config configs/digits.yaml] > result.json

Runs in a fresh temporary run directory, so nothing is resumed. The stages are those of
:func:`privaudit.pipeline.run_all`, in its order, under the run's lock.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from privaudit.config import load_config
from privaudit.pipeline import score_and_report
from privaudit.runtime.run import Run
from privaudit.stages.curvature import curvature
from privaudit.stages.prepare import prepare
from privaudit.stages.query import query
from privaudit.stages.target import prepare_target
from privaudit.stages.train import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/digits.yaml")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(args.config, {"out": out})
        run = Run(cfg.run_dir)
        times: dict[str, float] = {}
        t_all = time.perf_counter()
        with run.writer():
            for name, stage in (("prepare", prepare), ("target", prepare_target), ("train", train),
                                ("signals", query), ("curvature", curvature)):
                t = time.perf_counter()
                stage(run, cfg)
                times[name] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            results = score_and_report(run, cfg)
            times["attacks_and_report"] = round(time.perf_counter() - t, 2)
        times["total"] = round(time.perf_counter() - t_all, 2)
        summary = {k: {m: round(r.summary[m]["mean"], 4) for m in ("auc", "tpr@0.01", "tpr@0.001")
                       if "mean" in r.summary.get(m, {})}
                   for k, r in results.items()}
    print(json.dumps({"config": args.config, "n_models": cfg.population.n_models, "seconds": times,
                      "metrics_mean": summary}, indent=2))


if __name__ == "__main__":
    main()
