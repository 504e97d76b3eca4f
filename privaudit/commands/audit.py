"""``privaudit audit RUN_DIR``: lower bounds on epsilon from an attack, next to the claimed eps
(Nasr et al. 2021; Steinke, Nasr, Jagielski 2023; logic in :mod:`privaudit.runtime.audit_stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table



def _eps(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def audit_table(doc: dict[str, Any]) -> Table:
    """One row per bound: eps lower bound, confidence, claimed eps, how it was obtained."""
    smp, claim = doc["samples"], doc["claimed"]
    claimed = "no DP" if claim is None else f"{claim['epsilon']:.3f} (delta {claim['delta']:g}, {claim['accountant']})"
    pooled = doc["attack_metrics_pooled"]
    t = Table(title=f"{doc['run']}: DP audit with {doc['attack']} on {smp['selection']} samples "
                    f"({smp['n_samples']} samples x {smp['n_targets']} target models: {smp['n_in']} IN / "
                    f"{smp['n_out']} OUT trials), epoch {doc['epoch']}",
              caption=f"claimed eps: {claimed}; delta used: {doc['delta']:g}; pooled AUC {pooled['auc']:.3f}, "
                      f"TPR@0.1% FPR {100 * pooled['tpr@0.001']:.2f}%\n{doc['verdict']}")
    for col in ("bound", "eps lower bound", "confidence", "claimed eps", "exceeds claim", "how"):
        t.add_column(col)
    cp, one = doc["bounds"]["clopper_pearson"], doc["bounds"]["one_run"]
    c = cp["counts"]
    how_cp = (f"threshold {cp['details']['selection']} ({cp['threshold']:.4g}); TP {c['tp']}/{c['n_pos']}, "
              f"FP {c['fp']}/{c['n_neg']}")
    o = one["counts"]
    how_one = (f"k+={o['k_pos']}, k-={o['k_neg']} of m={o['m']}: {o['v']}/{o['r']} correct on target "
               f"{one['target']}; {one['selection']}")
    claim_eps = None if claim is None else claim["epsilon"]
    for name, b, how in (("Clopper-Pearson (Nasr et al. 2021)", cp, how_cp),
                         ("one-run (Steinke et al. 2023)", one, how_one)):
        exceeds = "-" if b["violates_claim"] is None else ("[red]YES[/red]" if b["violates_claim"] else "no")
        t.add_row(name, _eps(b["eps_lb"]), f"{b['confidence']:.0%}", _eps(claim_eps), exceeds, how)
    return t


def audit(run_dir: Path = typer.Argument(..., help="an existing run directory"),
          attack: str = typer.Option("lira_online", "--attack", help="attack whose scores are audited"),
          alpha: float = typer.Option(0.05, "--alpha", help="significance: bounds hold at confidence 1 - alpha"),
          delta: Optional[float] = typer.Option(None, "--delta", help="delta of the bound (default: the claim's)"),
          threshold: str = typer.Option("bonferroni", "--threshold", help="bonferroni | split | a number"),
          samples: str = typer.Option("all", "--samples", help="all | canaries | mislabeled | blank | noise | "
                                      "natural | poison_targets"),
          canaries_only: bool = typer.Option(False, "--canaries-only", help="same as --samples canaries"),
          targets: Optional[int] = typer.Option(None, "--targets", help="target models (default: evaluation.targets)"),
          k_pos: Optional[int] = typer.Option(None, "--k-pos", help="one-run audit: guesses IN (default m/10)"),
          k_neg: Optional[int] = typer.Option(None, "--k-neg", help="one-run audit: guesses OUT (default m/10)"),
          one_sided: bool = typer.Option(False, "--one-sided", help="Clopper-Pearson on TPR/FPR only"),
          epoch: Optional[int] = typer.Option(None, "--epoch", help="checkpoint epoch (default: final)")) -> None:
    """Audit a DP claim: eps lower bounds from an attack's scores, next to the claimed eps."""
    from privaudit.commands.common import console, open_run, user_errors
    from privaudit.runtime.run import Layout
    from privaudit.stages.dp_audit import audit as run_audit

    with user_errors():
        run, cfg = open_run(run_dir)
        with run.writer():
            doc = run_audit(run, cfg, attack=attack, alpha=alpha, delta=delta, threshold=threshold,
                            samples="canaries" if canaries_only else samples, targets=targets, k_pos=k_pos,
                            k_neg=k_neg, two_sided=not one_sided, epoch=epoch)
        console.print(audit_table(doc))
        e = doc["epoch"]
        console.print(f"audit: {run.path(Layout.audit if e == cfg.training.epochs else Layout.epoch_audit(e))}")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
