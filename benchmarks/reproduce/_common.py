"""Shared pieces of the paper reproductions in ``benchmarks/reproduce/``.

* :func:`parser`: ``--scale ci|cpu|gpu`` (a scale changes only sizes: models, samples, widths,
  epochs, targets, bootstrap resamples; never the recipe or the analysis), ``--out DIR`` (the run
  folder; the pipeline stages resume in it), ``--json PATH`` and ``--figures DIR``;
* :func:`run_population`: the pipeline stages (``privaudit.stages.*``: prepare, train, query,
  curvature, evaluate) on one config, resumable, with wall times;
* :func:`resolvable_fpr`: the lowest FPR whose false positives can be counted (FPR x non-members
  >= 1), so no table reports a TPR at zero false positives;
* :func:`write_json`, :func:`save_figure` (matplotlib Agg), :func:`peak_memory_mb`.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # benchmarks/: json_output
from json_output import emit, jsonable as clean  # noqa: E402,F401

from privaudit.config import RunConfig  # noqa: E402
from privaudit.runtime.run import Layout, Run  # noqa: E402
from privaudit.stages.curvature import curvature  # noqa: E402
from privaudit.stages.evaluate import evaluate  # noqa: E402
from privaudit.stages.prepare import prepare  # noqa: E402
from privaudit.stages.query import query  # noqa: E402
from privaudit.stages.train import train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCALES = ("ci", "cpu", "gpu")
FPR_LADDER = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5)


def parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """The common command line of a reproduction called ``name``."""
    ap = argparse.ArgumentParser(description=(doc or name).strip().splitlines()[0])
    ap.add_argument("--scale", choices=SCALES, default="cpu",
                    help="ci: seconds; cpu: this machine (minutes); gpu: the paper's sizes. Changes only sizes")
    ap.add_argument("--out", default=f"/tmp/privaudit_reproduce/{name}",
                    help="parent of the run folders; an interrupted run resumes where it stopped")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / f"reproduce_{name}.json"))
    ap.add_argument("--figures", default=None, help="folder for the figures (default: next to --json)")
    return ap


def figure_dir(args: argparse.Namespace) -> Path:
    """``--figures``, else the folder of ``--json``."""
    return Path(args.figures) if args.figures else Path(args.json).resolve().parent


def run_population(cfg: RunConfig) -> tuple[Run, dict[str, float]]:
    """Train, query and attack the population of ``cfg`` through the pipeline stages (each stage
    skips what its run folder already holds) and return the run with each stage's wall seconds."""
    run = Run(cfg.run_dir)
    seconds: dict[str, float] = {}
    with run.writer():
        for stage in (prepare, train, query, curvature):
            t = time.perf_counter()
            stage(run, cfg)
            seconds[stage.__name__] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        if not run.has(Layout.epoch_metrics(cfg.training.epochs)):
            evaluate(run, cfg)
        seconds["evaluate"] = round(time.perf_counter() - t, 1)
    return run, seconds


def resolvable_fpr(n_nonmembers: int, ladder: Iterable[float] = FPR_LADDER) -> float:
    """The lowest FPR of ``ladder`` with ``FPR * n_nonmembers >= 1``: at least one false positive
    can be counted (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P
    2022, Sec. IV: a TPR at an FPR below 1 / non-members is a TPR at zero false positives)."""
    ok = [a for a in sorted(ladder) if a * max(int(n_nonmembers), 0) >= 1.0 - 1e-12]
    return ok[0] if ok else float("nan")


def min_nonmembers(keep_targets: np.ndarray, mask: np.ndarray) -> int:
    """The fewest non-members of ``mask`` over the target rows ``keep_targets`` [T, n]."""
    return int((~keep_targets[:, mask]).sum(axis=1).min()) if mask.any() else 0


def write_json(doc: dict[str, Any], path: str | Path | None) -> None:
    """Print ``doc`` (JSON-safe: :func:`json_output.jsonable`) and write it to ``path``."""
    emit(doc, path, indent=1)


def save_figure(fig: plt.Figure, path: str | Path) -> str:
    """Save ``fig`` as PNG (folders created), close it and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(p)


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory (MB) of this process and of its finished children (the training workers)."""
    return {"self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}
