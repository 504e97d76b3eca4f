"""The dynamics study's tables, one rendering for the console and the HTML report
(:class:`privaudit.report.format.TextTable`), and its report section."""

from __future__ import annotations

from typing import Any

from privaudit.report.format import TextTable, interval_text, number
from privaudit.runtime.run import Run
from privaudit.studies._render import study_section
from privaudit.studies.dynamics import NAME

DOCUMENT = "dynamics.json"


def _pct(x: Any, fmt: str = ".2f") -> str:
    return number(None if x is None else 100 * x, fmt)


def checkpoint_table(doc: dict[str, Any]) -> TextTable:
    """One row per checkpoint: centroid, speed, entropy, occupancy, entry probability, early prediction."""
    ep, cross = doc["early_prediction"], doc.get("early_prediction_cross_model") or {}
    hv = doc.get("early_identification_hv") or {}
    t = TextTable(title=f"{doc['run']}: {doc['attack']} on {doc['n_targets']} targets, {doc['n_samples']} samples, "
                        f"FPR {doc['fpr']:g}, top {doc['top_frac']:.0%} (k={ep['k']})",
                  columns=["epoch", "CoM (FPR, TPR) %", "speed", "entropy", "HV % (share of final HV)", "P(enter HV)",
                           "top-k share (same models)", "Spearman vs final", "top-k share (half A->B)"],
                  caption="CoM = population centroid (FPR, TPR) in %; speed = mean ||step|| per epoch into this "
                          "checkpoint; HV = highly-vulnerable region; top-k share = final top-k already in the top-k "
                          f"(chance {ep['chance']:.3f}) [95% bootstrap CI]")
    for p, e in enumerate(doc["epochs"]):
        com = doc["center_of_mass"][p]
        t.add_row(str(int(e)), f"({_pct(com[0])}, {_pct(com[1])})",
                  "-" if p == 0 else number(doc["speed_per_step"][p - 1], ".4f"), number(doc["entropy"][p], ".2f"),
                  _pct(doc["occupancy"][p][2], ".1f") + (f" ({number(hv['recall'][p], '.2f')})"
                                                         if hv.get("available") else ""),
                  "-" if p == 0 else number(doc["entry_probability"][p - 1], ".4f"),
                  interval_text(ep["precision"][p], ep["precision_lo"][p], ep["precision_hi"][p], ".2f"),
                  interval_text(ep["spearman"][p], ep["spearman_lo"][p], ep["spearman_hi"][p], ".2f"),
                  interval_text(cross["precision"][p], cross["precision_lo"][p], cross["precision_hi"][p], ".2f")
                  if cross.get("available") else "-")
    return t


def summary_table(doc: dict[str, Any]) -> TextTable:
    """How the population moves over training, and the difficulty-vulnerability correlations."""
    c = doc["com_displacement"]
    t = TextTable(title=f"{doc['run']}: how your samples move on the FPR-TPR plane",
                  columns=["metric", "value"], caption="definitions: 'definitions' in dynamics.json")
    t.add_row("CoM displacement (pp, first -> last)", number(c["displacement_pp"], ".2f"))
    t.add_row("CoM path length (pp)", number(c["path_length_pp"], ".2f"))
    t.add_row("encoding speed (mean ||step|| / epoch)", number(doc["encoding_speed"], ".4f"))
    t.add_row("spatial entropy change dH (nats, 10x10 bins)", number(doc["entropy_change"], ".3f"))
    t.add_row("peak P(enter highly vulnerable)", number(doc["peak_entry_probability"], ".4f"))
    t.add_row("highly vulnerable at the end", number(doc["n_highly_vulnerable_final"], "d"))
    for name, r in doc["correlations"].items():
        value = interval_text(r["rho"], r["lo"], r["hi"])
        t.add_row(f"Spearman(difficulty={name}, final vuln.)", f"undefined: {r['note']}" if r.get("note") else value)
    return t


def findings_table(doc: dict[str, Any]) -> TextTable:
    """What the study finds about this run, with the measure and the 95% interval behind each answer."""
    t = TextTable(title=f"{doc['run']}: findings (questions of Chen et al. 2025)",
                  columns=["question", "measure", "value [95% CI]", "answer"],
                  caption="each answer's rule is in dynamics.json ('findings'); the measures and rules are privaudit's")
    for f in doc["findings"]:
        t.add_row(f["question"], f["measure"], interval_text(f["value"], *f["ci"]), f["answer"])
    return t


def report_section(run: Run) -> tuple[str, str] | None:
    """The findings, the tables and the plots, or None when the run has no dynamics results."""
    from privaudit.studies.dynamics.plots import PLOTS

    return study_section(
        run, NAME, DOCUMENT, PLOTS, "Privacy over training",
        lambda doc: findings_table(doc).html() + summary_table(doc).html() + checkpoint_table(doc).html(),
        lambda doc, rel: f"{doc['forgetting_resolution']}; every number and its definition in {rel}",
        intro="How each sample's exposure develops during training: the attack is scored at every checkpoint and "
              "each sample's (FPR, TPR) point is followed across them (Chen et al. 2025). It shows when the "
              "vulnerable samples become vulnerable, and whether an early checkpoint already predicts them.")
