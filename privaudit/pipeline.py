"""The whole audit: the stages of :mod:`privaudit.stages` in order, under the run's lock.

prepare -> target (queried before training) -> train -> query -> curvature -> evaluate
-> target (attacked) -> report
"""


from __future__ import annotations

import time
from typing import Any

from privaudit.config import AttackConfig, RunConfig
from privaudit.evaluation.results import MetricsDocument
from privaudit.runtime import plan
from privaudit.runtime.notices import collected_warnings
from privaudit.runtime.run import Layout, Run
from privaudit.stages.curvature import curvature
from privaudit.stages.evaluate import evaluate
from privaudit.stages.label_noise import label_noise
from privaudit.stages.prepare import prepare
from privaudit.stages.query import query
from privaudit.stages.report import report
from privaudit.stages.target import curvature_note, evaluate_target, prepare_target
from privaudit.stages.train import train


def run_all(cfg: RunConfig, *, attacks: list[AttackConfig] | None = None, console=None) -> dict[str, Any]:
    """The whole audit of ``cfg`` in ``cfg.out/cfg.name``, resuming whatever is already done.
    ``console`` (a rich Console) receives the tables, progress goes to stderr; ``None`` keeps it quiet."""
    run = Run(cfg.run_dir)
    t0 = time.perf_counter()
    progress = None if console is None else _stderr_console()
    with run.writer():
        prepare(run, cfg, progress)
        with plan.progress(progress if cfg.target else None, "query your target model", None):
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
    epoch = epoch or cfg.training.epochs
    progress = None if console is None else _stderr_console()
    label_noise(run, cfg, progress, attacks=attacks, epoch=epoch)   # label-only signal: only when an attack reads it
    results = evaluate(run, cfg, progress, attacks=attacks, epoch=epoch)
    final = epoch == cfg.training.epochs
    if final and cfg.target is not None:
        attack_target(run, cfg, progress, attacks=attacks)
    with plan.progress(progress, "write the report", None):
        path = report(run, cfg, progress, epoch=epoch)
    if console is not None:
        print_tables(run, cfg, console, results, epoch)
        console.print(f"report: {path}\nmetrics: {run.path(Layout.epoch_metrics(epoch))}")
    return results


def attack_target(run: Run, cfg: RunConfig, console=None, *, attacks: list[AttackConfig] | None = None) -> None:
    """Attack the user's target model one attack at a time (progress in attacks); a Python warning
    raised while an attack is scored becomes a note naming it in ``results/target/metrics.json``."""
    attacks = list(cfg.attacks if attacks is None else attacks)
    notes: list[str] = []
    scored = False
    with plan.progress(console, "attacks on your target model", len(attacks), "attacks") as advance:
        for a in attacks:
            with collected_warnings() as caught:
                scored |= bool(evaluate_target(run, cfg, attacks=[a]))
            notes += [f"{a.key}: {line}" for line in caught]
            advance(1)
    if not scored and console is not None and curvature_note(cfg):
        console.print(f"target model: {curvature_note(cfg)}")
    if notes and run.has(Layout.target_metrics):
        doc = MetricsDocument.from_json(run.load_json(Layout.target_metrics))
        doc.notes = list(dict.fromkeys(doc.notes + notes))
        run.save_json(Layout.target_metrics, doc.to_json())


def print_tables(run: Run, cfg: RunConfig, console, results: dict[str, Any], epoch: int) -> None:
    """The attack table of ``results`` with the notes on those attacks, the target's table with its
    notes, and the utility of the audited models."""
    from privaudit.report import format as fmt
    from privaudit.report.table import metrics_table

    doc = MetricsDocument.from_json(run.load_json(Layout.epoch_metrics(epoch)))
    doc.attacks = {k: v for k, v in doc.attacks.items() if k in results}
    console.print(metrics_table(doc))
    for note in doc.notes:
        if note.split(": ", 1)[0] in results:
            console.print(f"note: {note}", soft_wrap=True)
    target = None
    if epoch == cfg.training.epochs and cfg.target is not None and run.has(Layout.target_metrics):
        target = MetricsDocument.from_json(run.load_json(Layout.target_metrics))
        console.print(metrics_table(target, title=f"{target.run} ({cfg.population.n_models} reference models)"))
        for note in target.notes:
            console.print(f"note: {note}", soft_wrap=True)
    rows = fmt.utility_rows(doc, target)
    if rows:
        console.print(fmt.utility_table(rows, epoch).rich())
    print_verdict(console, doc, target)


def print_verdict(console, doc: MetricsDocument, target: MetricsDocument | None) -> None:
    """The report's verdict in one paragraph: risk level and the attacker sentence, for the target
    model when there is one, else the training recipe (:mod:`privaudit.report.verdict`)."""
    from privaudit.report.verdict import verdict

    subject = "your target model" if target is not None else "the training recipe"
    v = verdict(subject, target or doc, recipe=doc if target is not None else None)
    console.print(f"verdict on {subject}: {v.level.upper()} risk. {v.sentence}", soft_wrap=False)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
