"""``privaudit report RUN_DIR [--pdf]``: rebuild the report from everything the run holds (every
command that adds results rebuilds it too), and print it to PDF with headless Chromium."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def report(run_dir: Path = typer.Argument(..., help="an existing run directory"),
           pdf: bool = typer.Option(False, "--pdf", help="also print the report to PDF (needs Chromium)"),
           epoch: Optional[int] = typer.Option(None, "--epoch", help="checkpoint epoch (default: final)")) -> None:
    """Build the HTML report (verdict, attacks, target, studies, DP audit) and optionally its PDF."""
    from privaudit.commands.common import console, open_run, user_errors
    from privaudit.errors import ConfigError
    from privaudit.runtime.run import Layout
    from privaudit.stages.report import report as build

    with user_errors():
        run, cfg = open_run(run_dir)
        epoch = epoch or cfg.training.epochs
        if not run.has(Layout.epoch_metrics(epoch)):
            raise ConfigError(f"{run.root} has no metrics at epoch {epoch} to report; run `privaudit run` "
                              f"(or `privaudit attack {run_dir} --epoch {epoch}`) first")
        if pdf:
            from privaudit.report.pdf import find_chromium

            find_chromium()   # before any work: one line if there is no browser
        t0 = time.perf_counter()
        with run.writer():
            path = build(run, cfg, epoch=epoch, pdf=pdf)
        console.print(f"report: {path}")
        if pdf:
            final = epoch == cfg.training.epochs
            console.print(f"pdf: {run.path(Layout.report_pdf(None if final else epoch))} "
                          f"({time.perf_counter() - t0:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
