"""``privaudit memorization RUN_DIR``: Feldman-Zhang memorization, privacy score, per-group attack
tables and the shadow-model budget on an existing run (Choi, Tople, Chandrasekaran, Jha, "Why Train
More? Effective and Efficient Membership Inference via Memorization", arXiv:2310.08015, 2023;
logic in :mod:`privaudit.studies.memorization.stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from privaudit.errors import ConfigError


def _sizes(text: Optional[str]) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--budget-sizes expects comma-separated integers (e.g. 1,2,4,8), got {text!r}") from None


def memorization(
        run_dir: Path = typer.Argument(..., help="an existing run directory (privaudit run)"),
        attack: str = typer.Option("lira_online", "--attack", help="attack for per-sample TPR and the budget curve"),
        fpr: float = typer.Option(1e-3, "--fpr", help="low FPR of the TPR metrics"),
        threshold: float = typer.Option(0.5, "--threshold", help="high memorization: mem > threshold"),
        budget_sizes: Optional[str] = typer.Option(None, "--budget-sizes",
                                                   help="reference-model counts, e.g. 1,2,4,8 "
                                                        "(default: powers of 2, then all)"),
        repeats: int = typer.Option(3, "--repeats", help="random reference draws per budget size"),
        budget_targets: int = typer.Option(4, "--budget-targets", help="target models of the budget curve"),
        targets: Optional[int] = typer.Option(None, "--targets",
                                              help="target models of the tables (default: the run's)"),
        tpr_targets: Optional[int] = typer.Option(None, "--tpr-targets",
                                                  help="target models of the per-sample TPR (default: all)"),
        epoch: Optional[int] = typer.Option(None, "--epoch", help="checkpoint epoch (default: final)"),
        bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples for the CIs"),
        seed: int = typer.Option(0, "--seed", help="seed of the draws and bootstraps")) -> None:
    """Memorization vs vulnerability: FZ scores, per-group tables, shadow-model budget (Choi et al.)."""
    from privaudit.commands.common import console, open_run, per_sample_attack, progress_console, user_errors
    from privaudit.runtime.plan import progress
    from privaudit.runtime.run import Layout
    from privaudit.stages.report import report
    from privaudit.studies.memorization import NAME
    from privaudit.studies.memorization.render import findings_table, group_table
    from privaudit.studies.memorization.stage import MemorizationOptions, run_memorization

    with user_errors(resume_hint=True):
        run, cfg = open_run(run_dir)
        opts = MemorizationOptions(attack=per_sample_attack(attack, "memorization"), fpr=fpr, threshold=threshold, budget_sizes=_sizes(budget_sizes),
                                   repeats=repeats, budget_targets=budget_targets, table_targets=targets,
                                   tpr_targets=tpr_targets, epoch=epoch, n_boot=bootstrap, seed=seed)
        with run.writer():
            with progress(progress_console, f"memorization study ({opts.attack})", None):
                doc = run_memorization(run, cfg, opts)
            with progress(progress_console, "write the report", None):
                page = report(run, cfg) if run.has(Layout.epoch_metrics(cfg.training.epochs)) else None
        console.print(group_table(doc).rich())
        console.print(findings_table(doc).rich())
        console.print(f"written: {run.path(Layout.study(NAME))}/ (memorization.json, *.npy, budget_*.png)"
                      + (f"\nreport: {page}" if page else ""))


def register(app: typer.Typer) -> None:
    app.command("memorization")(memorization)
