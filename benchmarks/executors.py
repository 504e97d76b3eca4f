"""How to run groups side by side on a CPU: threads of one process (privaudit's executor) vs spawned
worker processes (the executor before 2026-11-30) vs one group after another, on the same groups.

    python benchmarks/executors.py [--rounds 3] > result.json

Workloads: the default audit's training (``configs/digits.yaml``: 2 groups of 32 MLPs, 40 epochs)
and 4 small MNIST CNNs (``configs/mnist.yaml`` with 2,000 samples, 2 groups of 2 models, 6 epochs).
Each mode trains every group of a prepared run directory (``privaudit.stages.train.train_group_task``,
one intra-op thread per group in every mode); wall time includes starting the workers. Modes
alternate within a round; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from privaudit.config import load_config
from privaudit.runtime import plan
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.run import Run
from privaudit.stages.prepare import prepare
from privaudit.stages.train import train_group_task

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "digits_mlp_64": ("configs/digits.yaml", {}),
    "mnist_cnn_4": ("configs/mnist.yaml", {"data.n": 2000, "population.n_models": 4,
                                           "population.models_per_group": 2, "training.epochs": 6}),
}


def _one_thread() -> None:
    torch.set_num_threads(1)


def processes(tasks: list[dict]) -> None:
    """The former executor: a pool of spawned processes, one intra-op thread each."""
    with ProcessPoolExecutor(len(tasks), mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        for f in [pool.submit(train_group_task, **t, on_progress=_ignore) for t in tasks]:
            f.result()


def _ignore(n: int) -> None:
    pass


def threads(tasks: list[dict]) -> None:
    run_tasks(train_group_task, tasks, workers=len(tasks), advance=_ignore)


def sequential(tasks: list[dict]) -> None:
    run_tasks(train_group_task, tasks, workers=1, advance=_ignore)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)           # sequential and threads: one intra-op thread per group, as processes
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, overrides) in WORKLOADS.items():
            cfg = load_config(REPO / config, {"out": tmp, "name": name, **overrides})
            run = Run(cfg.run_dir)
            times: dict[str, list[float]] = {"processes": [], "threads": [], "sequential": []}
            with run.writer():
                prepare(run, cfg)
                tasks = [{"run_dir": str(run.root), "model_ids": ids} for ids in plan.groups(cfg)]
                for _ in range(args.rounds):
                    for mode, fn in (("processes", processes), ("threads", threads), ("sequential", sequential)):
                        t = time.perf_counter()
                        fn(tasks)
                        times[mode].append(time.perf_counter() - t)
            med = {k: round(statistics.median(v), 2) for k, v in times.items()}
            out[name] = {"groups": len(tasks), "seconds": med,
                         "threads_speedup_over_processes": round(med["processes"] / med["threads"], 2),
                         "threads_speedup_over_sequential": round(med["sequential"] / med["threads"], 2)}
    print(json.dumps({"rounds": args.rounds, "cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0],
                      "workloads": out}, indent=2))


if __name__ == "__main__":
    main()
