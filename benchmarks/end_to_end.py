"""Wall time of the default audit (``privaudit run configs/digits.yaml``), stage by stage, for this
checkout and (``--before REV``) an earlier commit, in one run.

    python benchmarks/end_to_end.py [--config configs/digits.yaml] [--before REV] [--rounds 3] > result.json

Every measurement is a fresh Python process in a fresh temporary run directory (nothing resumed),
run from another working directory with the checkout on ``PYTHONPATH``; versions alternate round by
round (the machine is shared: compare within one run). Two kinds of process per version and round:

* ``command``: ``privaudit run CONFIG`` as a user types it (console output to a file), wall time
  from process start to exit: start-up, imports, every stage, the console tables;
* ``stages``: the same stages called one by one (:func:`privaudit.pipeline.run_all`'s order),
  each timed, plus ``imports`` (the package's modules a run needs, before any stage).

Prints the median over rounds of every number, per version, and the after/before ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import revisions  # benchmarks/revisions.py

STAGES = '''
import json, sys, time
t0 = time.perf_counter()
from privaudit.config import load_config
from privaudit.runtime.run import Run
from privaudit.stages.curvature import curvature
from privaudit.stages.evaluate import evaluate
from privaudit.stages.label_noise import label_noise
from privaudit.stages.prepare import prepare
from privaudit.stages.query import query
from privaudit.stages.report import report
from privaudit.stages.target import prepare_target
from privaudit.stages.train import train
times = {"imports": time.perf_counter() - t0}
cfg = load_config(sys.argv[1], {"out": sys.argv[2]})
run = Run(cfg.run_dir)
with run.writer():
    for name, stage in (("prepare", prepare), ("target", prepare_target), ("train", train), ("query", query),
                        ("curvature", curvature), ("label_noise", label_noise), ("evaluate", evaluate),
                        ("report", report)):
        t = time.perf_counter()
        stage(run, cfg)
        times[name] = time.perf_counter() - t
print(json.dumps(times))
'''

COMMAND = "import sys; from privaudit.cli import app; sys.argv = ['privaudit', 'run', sys.argv[1]]; app()"


def measure(tree: Path, config: Path, scratch: Path) -> dict[str, float]:
    """One round for the checkout ``tree``: the command's wall time and the stage times."""
    env = os.environ | {"PYTHONPATH": str(tree), "COLUMNS": "80"}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=scratch) as cwd:
        t = time.perf_counter()
        with open(Path(cwd) / "console.txt", "w") as console:
            subprocess.run([sys.executable, "-c", COMMAND, str(config)], cwd=cwd, env=env, check=True,
                           stdout=console, stderr=subprocess.STDOUT)
        out["command"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory(dir=scratch) as cwd:
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", STAGES, str(config), cwd], cwd=cwd, env=env, check=True,
                              capture_output=True, text=True)
        out["stages_process"] = time.perf_counter() - t
        out |= json.loads(done.stdout.strip().splitlines()[-1])
    return out


def median(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rounds), 2) for k in rounds[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/digits.yaml")
    ap.add_argument("--before", help="an earlier commit to time side by side (a git worktree of it)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    config = Path(args.config).resolve()
    with tempfile.TemporaryDirectory() as scratch_dir, revisions.trees(args.before, Path(scratch_dir)) as trees:
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                rounds[name].append(measure(tree, config, Path(scratch_dir)))
    result = {"config": args.config, "rounds": args.rounds, "cpus": os.cpu_count(),
              "seconds": {k: median(v) for k, v in rounds.items()}}
    if args.before:
        result["before_rev"] = revisions.resolve(args.before)
        b, a = result["seconds"]["before"], result["seconds"]["after"]
        result["after_over_before"] = {k: round(a[k] / b[k], 2) for k in a if b.get(k)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
