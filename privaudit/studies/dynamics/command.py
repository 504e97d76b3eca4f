"""``privaudit dynamics RUN_DIR``: per-sample membership vulnerability across training checkpoints
(after Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of Membership Privacy in Deep
Learning", arXiv:2507.23291, 2025; logic in :mod:`privaudit.studies.dynamics.stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def dynamics(run_dir: Path = typer.Argument(..., help="a run directory trained with training.checkpoints"),
             attack: str = typer.Option("lira_online", "--attack", help="attack scored at every checkpoint"),
             fpr: float = typer.Option(0.01, "--fpr", help="global FPR of the per-target thresholds"),
             top_frac: float = typer.Option(0.1, "--top-frac", help="size of the top-vulnerable set"),
             targets: Optional[int] = typer.Option(None, "--targets", help="target models (default: all)"),
             bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples for the CIs"),
             seed: int = typer.Option(0, "--seed", help="seed of the bootstraps and the split-half draw")) -> None:
    """Per-sample vulnerability on the FPR-TPR plane across checkpoints (Chen et al. 2025)."""
    from privaudit.commands.common import console, open_run, per_sample_attack, progress_console, user_errors
    from privaudit.runtime.plan import progress
    from privaudit.runtime.run import Layout
    from privaudit.stages.report import report
    from privaudit.studies.dynamics import NAME
    from privaudit.studies.dynamics.render import checkpoint_table, findings_table, summary_table
    from privaudit.studies.dynamics.stage import run_dynamics

    with user_errors(resume_hint=True):
        per_sample_attack(attack, "dynamics", every_checkpoint=True)
        run, cfg = open_run(run_dir)
        with run.writer():
            with progress(progress_console, f"dynamics study ({attack})", None):
                out = run_dynamics(run, cfg, attack=attack, fpr=fpr, top_frac=top_frac, targets=targets,
                                   n_boot=bootstrap, seed=seed, console=progress_console)
            with progress(progress_console, "write the report", None):
                page = report(run, cfg) if run.has(Layout.epoch_metrics(cfg.training.epochs)) else None
        doc = out.doc
        console.print(f"difficulty: {doc['forgetting_resolution']}")
        console.print(checkpoint_table(doc).rich())
        console.print(summary_table(doc).rich())
        console.print(findings_table(doc).rich())
        console.print(f"written: {run.path(Layout.study(NAME))}/ (dynamics.json, trajectories.npy, "
                      f"trajectories.png, com_path.png, early_prediction.png)" + (f"\nreport: {page}" if page else ""))


def register(app: typer.Typer) -> None:
    app.command("dynamics")(dynamics)
