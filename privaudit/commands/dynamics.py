"""``privaudit dynamics RUN_DIR``: per-sample membership vulnerability across training checkpoints
(Chen et al. 2025, arXiv 2507.23291; logic in :mod:`privaudit.runtime.dynamics_stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from privaudit.errors import PrivauditError


def _f(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _ci(v: Any, lo: Any, hi: Any, fmt: str = ".2f") -> str:
    return f"{_f(v, fmt)} [{_f(lo, fmt)}, {_f(hi, fmt)}]"


def checkpoint_table(doc: dict[str, Any]) -> Table:
    """One row per checkpoint: centroid, speed, entropy, occupancy, entry probability, early prediction."""
    ep, cross = doc["early_prediction"], doc.get("early_prediction_cross_model") or {}
    t = Table(title=f"{doc['run']}: {doc['attack']} on {doc['n_targets']} targets, {doc['n_samples']} samples, "
                    f"FPR {doc['fpr']:g}, top {doc['top_frac']:.0%} (k={ep['k']})",
              caption="CoM = population centroid (FPR, TPR) in %; speed = mean ||step|| per epoch into this "
                      "checkpoint; HV = highly-vulnerable region; prec = final top-k already in the top-k "
                      f"(chance {ep['chance']:.3f}) [95% bootstrap CI]")
    hv = doc.get("early_identification_hv") or {}
    for col in ("epoch", "CoM (FPR, TPR) %", "speed", "entropy", "HV % (recall of final HV)", "P(enter HV)",
                "prec (same models)",
                "Spearman vs final", "prec (half A->B)"):
        t.add_column(col)
    for p, e in enumerate(doc["epochs"]):
        com = doc["center_of_mass"][p]
        t.add_row(str(int(e)), f"({_f(com[0] and 100 * com[0], '.2f')}, {_f(com[1] and 100 * com[1], '.2f')})",
                  "-" if p == 0 else _f(doc["speed_per_step"][p - 1], ".4f"), _f(doc["entropy"][p], ".2f"),
                  _f(doc["occupancy"][p][2] * 100 if doc["occupancy"][p][2] is not None else None, ".1f")
                  + (f" ({_f(hv['recall'][p], '.2f')})" if hv.get("available") else ""),
                  "-" if p == 0 else _f(doc["entry_probability"][p - 1], ".4f"),
                  _ci(ep["precision"][p], ep["precision_lo"][p], ep["precision_hi"][p]),
                  _ci(ep["spearman"][p], ep["spearman_lo"][p], ep["spearman_hi"][p]),
                  _ci(cross["precision"][p], cross["precision_lo"][p], cross["precision_hi"][p])
                  if cross.get("available") else "-")
    return t


def summary_table(doc: dict[str, Any]) -> Table:
    c = doc["com_displacement"]
    t = Table(title="population dynamics [definitions reconstructed: see dynamics.json 'definitions']")
    t.add_column("metric")
    t.add_column("value")
    rows = [("CoM displacement (pp, first -> last)", _f(c["displacement_pp"], ".2f")),
            ("CoM path length (pp)", _f(c["path_length_pp"], ".2f")),
            ("encoding speed (mean ||step|| / epoch)", _f(doc["encoding_speed"], ".4f")),
            ("spatial entropy change dH (nats, 10x10 bins)", _f(doc["entropy_change"], ".3f")),
            ("peak P(enter highly vulnerable)", _f(doc["peak_entry_probability"], ".4f")),
            ("highly vulnerable at the end", str(doc["n_highly_vulnerable_final"]))]
    for name, r in doc["correlations"].items():
        rows.append((f"Spearman(difficulty={name}, final vuln.)", _ci(r["rho"], r["ci_low"], r["ci_high"], ".3f")))
    for row in rows:
        t.add_row(*row)
    return t


def claims_table(doc: dict[str, Any]) -> Table:
    t = Table(title="does our data reproduce the seed's claims? (Chen et al. 2025 abstract)",
              caption="every measure and rule is a privaudit RECONSTRUCTION; only the claims are from the abstract")
    for col in ("claim", "measure", "value [95% CI]", "verdict"):
        t.add_column(col)
    for c in doc["claims"]:
        t.add_row(c["claim"], c["measure"], _ci(c["value"], *c["ci"], ".3f"), c["verdict"])
    return t


def register(app: typer.Typer) -> None:
    @app.command()
    def dynamics(run_dir: Path = typer.Argument(..., help="a run directory trained with training.checkpoints"),
                 attack: str = typer.Option("lira_online", "--attack", help="attack scored at every checkpoint"),
                 fpr: float = typer.Option(0.01, "--fpr", help="global FPR of the per-target thresholds"),
                 top_frac: float = typer.Option(0.1, "--top-frac", help="size of the top-vulnerable set"),
                 targets: Optional[int] = typer.Option(None, "--targets", help="target models (default: all)"),
                 bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples for the CIs")) -> None:
        """Per-sample vulnerability on the FPR-TPR plane across checkpoints (Chen et al. 2025)."""
        from privaudit.runtime.dynamics_stage import run_dynamics

        console = Console()
        try:
            out = run_dynamics(run_dir, attack=attack, fpr=fpr, top_frac=top_frac, targets=targets,
                               n_boot=bootstrap)
        except PrivauditError as err:
            Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
            raise typer.Exit(2)
        doc = out.doc
        console.print(f"scored now: epochs {out.scored_epochs or 'none (all cached)'}; "
                      f"difficulty: {doc['forgetting_resolution']}")
        console.print(checkpoint_table(doc))
        console.print(summary_table(doc))
        console.print(claims_table(doc))
        console.print(f"written: {out.paths['json'].parent}/ (dynamics.json, trajectories.npy, "
                      f"trajectories.png, com_path.png, early_prediction.png)")
