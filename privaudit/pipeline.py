"""The whole audit: the stages of :mod:`privaudit.stages` in order, under the run's lock.

prepare -> target (queried before training) -> train -> query -> curvature -> evaluate
-> target (attacked) -> report
"""


from __future__ import annotations

import time
from typing import Any

from privaudit.config import AttackConfig, RunConfig
from privaudit.runtime.run import Layout, Run
from privaudit.stages.curvature import curvature
from privaudit.stages.evaluate import evaluate
from privaudit.stages.prepare import prepare
from privaudit.stages.query import query
from privaudit.stages.report import report
from privaudit.stages.target import evaluate_target, prepare_target
from privaudit.stages.train import train


def run_all(cfg: RunConfig, *, attacks: list[AttackConfig] | None = None, console=None) -> dict[str, Any]:
    """The whole audit of ``cfg`` in ``cfg.out/cfg.name``, resuming whatever is already done.
    ``console`` (a rich Console) receives progress and tables; ``None`` keeps it quiet."""
    run = Run(cfg.run_dir)
    t0 = time.perf_counter()
    progress = None if console is None else _stderr_console()
    with run.writer():
        prepare(run, cfg, progress)
        prepare_target(run, cfg, progress)   # the user's files are checked before any training
        train(run, cfg, progress)
        query(run, cfg, progress)
        curvature(run, cfg, progress)
        results = score_and_report(run, cfg, console, attacks=attacks)
    if console is not None:
        console.print(f"done in {time.perf_counter() - t0:.1f} s: {run.root}")
    return results


def score_and_report(run: Run, cfg: RunConfig, console=None, *, attacks: list[AttackConfig] | None = None,
                     epoch: int | None = None) -> dict[str, Any]:
    """Evaluate, attack the target, write the report and print the tables (attacks, the target's
    with its notes, and the utility of the audited models); the lock must be held."""
    from privaudit.evaluation.results import MetricsDocument
    from privaudit.report import format as fmt
    from privaudit.report.table import metrics_table

    epoch = epoch or cfg.training.epochs
    progress = None if console is None else _stderr_console()
    results = evaluate(run, cfg, progress, attacks=attacks, epoch=epoch)
    final = epoch == cfg.training.epochs
    if final:
        evaluate_target(run, cfg, progress, attacks=attacks)
    path = report(run, cfg, progress, epoch=epoch)
    if console is not None:
        doc = MetricsDocument.from_json(run.load_json(Layout.epoch_metrics(epoch)))
        doc.attacks = {k: v for k, v in doc.attacks.items() if k in results}
        console.print(metrics_table(doc))
        target = None
        if final and cfg.target is not None and run.has(Layout.target_metrics):
            target = MetricsDocument.from_json(run.load_json(Layout.target_metrics))
            console.print(metrics_table(target, title=f"{target.run} ({cfg.population.n_models} reference models)"))
            for note in target.notes:
                console.print(f"note: {note}")
        rows = fmt.utility_rows(doc, target)
        if rows:
            console.print(fmt.utility_table(rows, epoch).rich())
        console.print(f"report: {path}\nmetrics: {run.path(Layout.epoch_metrics(epoch))}")
    return results


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
