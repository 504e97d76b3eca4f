"""``privaudit audit RUN_DIR``: lower bounds on epsilon from an attack, next to the claimed eps
(Nasr et al. 2021; Steinke, Nasr, Jagielski 2023; logic in :mod:`privaudit.runtime.audit_stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from privaudit.runtime.notices import plural



def _eps(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def audit_table(doc: dict[str, Any]) -> Table:
    """One row per bound: eps lower bound, confidence, claimed eps, how it was obtained."""
    smp, claim = doc["samples"], doc["claimed"]
    claimed = "no DP" if claim is None else f"{claim['epsilon']:.3f} (delta {claim['delta']:g}, {claim['accountant']})"
    pooled = doc["attack_metrics_pooled"]
    t = Table(title=f"{doc['run']}: DP audit with {doc['attack']} on {_samples_text(smp['selection'])} "
                    f"({plural(smp['n_samples'], 'sample')} x {plural(smp['n_targets'], 'target model')}: "
                    f"{smp['n_in']} IN / {smp['n_out']} OUT trials), epoch {doc['epoch']}",
              caption=f"claimed eps: {claimed}; delta used: {doc['delta']:g}; pooled AUC {pooled['auc']:.3f}, "
                      f"TPR@0.1% FPR {100 * pooled['tpr@0.001']:.2f}%\n{doc['verdict']}\nbasis: "
                      f"{doc.get('verdict_basis', '-')}")
    names = {"one_run": "one-run (Steinke et al. 2023)",
             "clopper_pearson_per_model": "Clopper-Pearson, 1 trial/model (Nasr et al. 2021)",
             "clopper_pearson": "Clopper-Pearson, pooled (Nasr et al. 2021)"}
    t.add_column("bound", min_width=max(map(len, names.values())), no_wrap=True, overflow="fold")
    for col in ("eps lower bound", "confidence", "claimed eps", "exceeds claim", "valid for verdict",
                "power (perfect attack)", "assumptions", "how"):
        t.add_column(col, overflow="fold")
    bounds = doc["bounds"]
    claim_eps = None if claim is None else claim["epsilon"]
    for key, b in bounds.items():
        exceeds = "-" if b["violates_claim"] is None else ("[red]YES[/red]" if b["violates_claim"] else "no")
        valid = "yes" if b.get("valid_for_verdict") else "NO (not used)"
        t.add_row(names.get(key, key), _eps(b["eps_lb"]), f"{b['confidence']:.0%}", _eps(claim_eps), exceeds,
                  valid, _eps(b.get("power_eps")), _short(key, b), _how(key, b))
    return t


def _samples_text(selection: str) -> str:
    """``all samples``, ``the canaries``, ``the mislabeled canaries``, ``the poisoning targets``."""
    if selection in ("all", "canaries"):
        return "all samples" if selection == "all" else "the canaries"
    return "the poisoning targets" if selection == "poison_targets" else f"the {selection} canaries"


def _short(key: str, b: dict[str, Any]) -> str:
    """The assumptions in a few words (the full text is in audit.json)."""
    if key == "one_run":
        return "random IN/OUT per sample; k fixed in advance; Bonferroni over targets"
    if key == "clopper_pearson_per_model":
        return f"1 seeded trial per model ({b['counts']['n_pos'] + b['counts']['n_neg']}); models independent"
    return "samples independent (false: several per model)"


def _how(key: str, b: dict[str, Any]) -> str:
    c = b["counts"]
    if key == "one_run":
        return (f"k+={c['k_pos']}, k-={c['k_neg']} of m={c['m']}: {c['v']}/{c['r']} correct on target "
                f"{b['target']}; {b['selection']}")
    thr = "-" if b["threshold"] is None else f"{b['threshold']:.4g}"
    return f"threshold {b['details']['selection']} ({thr}); TP {c['tp']}/{c['n_pos']}, FP {c['fp']}/{c['n_neg']}"


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
    from privaudit.commands.common import console, open_run, per_sample_attack, user_errors
    from privaudit.runtime.run import Layout
    from privaudit.stages.dp_audit import audit as run_audit

    with user_errors():
        per_sample_attack(attack, "audit")
        run, cfg = open_run(run_dir)
        with run.writer():
            doc = run_audit(run, cfg, attack=attack, alpha=alpha, delta=delta, threshold=threshold,
                            samples="canaries" if canaries_only else samples, targets=targets, k_pos=k_pos,
                            k_neg=k_neg, two_sided=not one_sided, epoch=epoch)
            if run.has(Layout.epoch_metrics(doc["epoch"])):
                from privaudit.stages.report import report

                report(run, cfg, epoch=doc["epoch"])   # the report (of that epoch) shows the audit too
        console.print(audit_table(doc))
        e = doc["epoch"]
        console.print(f"audit: {run.path(Layout.audit if e == cfg.training.epochs else Layout.epoch_audit(e))}")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
