"""The memorization study's tables, one rendering for the console and the HTML report
(:class:`privaudit.report.format.TextTable`), and its report section."""

from __future__ import annotations

from typing import Any

import numpy as np

from privaudit.evaluation.results import Estimate
from privaudit.report.format import TIES, TIES_NOTE, TextTable, estimate_text, interval_text, number
from privaudit.runtime.run import Layout, Run
from privaudit.studies._render import study_section
from privaudit.studies.memorization import NAME
from privaudit.studies.memorization.groups import GROUP_NAMES

DOCUMENT = "memorization.json"


def _cell(stat: dict[str, float] | None, percent: bool) -> str:
    """mean [95% CI] (AUC as is, TPR in %)."""
    return estimate_text(Estimate.from_json(stat), percent, spread=False) if stat else "-"


def group_table(doc: dict[str, Any]) -> TextTable:
    """Per attack, AUC and TPR on All / Under-represented / high-memorization samples (the layout
    of Choi et al. 2023, Tables II/III)."""
    key = f"tpr@{doc['fpr']:g}"
    names = [g for g in GROUP_NAMES if any(g in t.get("groups", {}) for t in doc["tables"].values())]
    sizes = next((t["groups"] for t in doc["tables"].values() if "groups" in t), {})
    columns = ["attack"]
    for what in ("AUC", f"TPR % @ {doc['fpr'] * 100:g}%", "global thr. %"):
        columns += [f"{what}\n{GROUP_NAMES[g]} (n={sizes.get(g, {}).get('n', '?')})" for g in names]
    t = TextTable(title=f"{doc['run']}: attacks per sample group (epoch {doc['epoch']}, {doc['n_models']} models)",
                  columns=columns,
                  caption="mean [95% bootstrap CI] over targets; TPR strict at FPR <= "
                          f"{doc['fpr']:g} on the group's own ROC; 'global thr.' = TPR at the threshold set on all "
                          "non-members")
    for label, res in doc["tables"].items():
        if "skipped" in res:
            t.add_row(label, *(["skipped"] + ["-"] * (3 * len(names) - 1)))
            continue
        gs = res["groups"]
        t.add_row(label, *[_cell(gs[g].get("auc"), False) for g in names],
                  *[_cell(gs[g].get(key), True) if "skipped" not in gs[g] else "skipped" for g in names],
                  *[number(100 * gs[g]["tpr_global"]["mean"], ".2f") if "tpr_global" in gs[g] else "-"
                    for g in names])
    if any("needs ≥" in c for r in t.rows for c in r):
        t.caption += "; needs ≥ N non-members: the group has fewer than 1/FPR non-members, no TPR"
    if any(TIES in c for r in t.rows for c in r):
        t.caption += f"; {TIES_NOTE}"
    return t


def findings_table(doc: dict[str, Any]) -> TextTable:
    """What the study found on this run: memorization per group, its correlation with
    vulnerability, and how many reference models the attack needs (measured and predicted)."""
    t = TextTable(title=f"{doc['run']}: memorization and vulnerability of your samples "
                        "(method: Choi et al. 2023)", columns=["finding", "value"],
                  caption="Spearman: rho [95% bootstrap CI] (band, p-value); predicted reductions use "
                          "N = c / H² and 2c / mem² with an unknown constant c (docs/studies.md)")
    m = doc["memorization"]["all_models"]
    t.add_row("memorization (Feldman-Zhang), all samples", f"mean {number(m['mean'])}, median "
              f"{number(m['median'])}, q99 {number(m['q99'])}, mean s.e. {number(m['mean_se'])}")
    above = f"frac_above_{doc['threshold']:g}"
    for g, s in doc["memorization"]["by_group"].items():
        t.add_row(f"  memorization in group '{g}' (n={s['n']})",
                  f"mean {number(s['mean'])}, share > {doc['threshold']:g}: {number(s[above])}")
    for key, what in (("mem_vs_privacy_score", "privacy score d(x)"), ("mem_vs_per_sample_tpr", "per-sample TPR")):
        r = doc["correlations"].get(key)
        if r:
            t.add_row(f"Spearman(memorization, {what})", f"{interval_text(r['rho'], r['lo'], r['hi'])} "
                      f"({r['band']}, {p_text(r['p_value'])}, n={r['n']})")
    b = doc["budget"]
    for s in b["reductions"]["saturation"]:
        t.add_row(f"reference models for '{s['group']}' {s['metric']}",
                  f"{number(s['final'])} at R={s['r_max']}; "
                  f"{reduction_text(s.get('r_needed'), s.get('factor'), s.get('capped'))}")
    for c in b["reductions"]["high_mem_vs_random"]:
        t.add_row(f"high_mem vs random, {c['metric']}",
                  f"random reaches {number(c['level'])} at R={c.get('r_max')}; high_mem "
                  f"{reduction_text(c.get('r_needed_a'), c.get('factor'), c.get('capped'))}")
    for kind in ("h2", "mem"):
        if f"predicted_reduction_{kind}" in b["bound"]:
            t.add_row(f"predicted reduction, median N (1/{'H²' if kind == 'h2' else 'mem²'})",
                      f"{number(b['bound'][f'predicted_reduction_{kind}'], '.1f')}x")
    return t


def p_text(p: float | None) -> str:
    """A p-value in words: ``p < 1e-16`` where it underflows to 0, ``p undefined`` when missing."""
    if p is None or not np.isfinite(p):
        return "p undefined"
    return "p < 1e-16" if p == 0 else f"p = {p:.2g}"


def reduction_text(r_needed: int | None, factor: float | None, capped: bool | None) -> str:
    """How many reference models reach the level, and the saving: words instead of ``∞x``/``-x``."""
    if r_needed is None or factor is None or not np.isfinite(factor):
        return "does not reach it with the available reference models"
    return f"reaches it with R={r_needed}: {'at least ' if capped else ''}{factor:.1f}x fewer reference models"


def report_section(run: Run) -> tuple[str, str] | None:
    """The tables and the budget plots, or None when the run has no memorization results."""
    if not run.has(Layout.study(NAME, DOCUMENT)):
        return None                   # before importing the plots (scipy.stats: half a second)
    from privaudit.studies.memorization.plots import PLOTS

    return study_section(
        run, NAME, DOCUMENT, PLOTS, "Memorization and vulnerability",
        lambda doc: group_table(doc).html() + findings_table(doc).html(),
        lambda doc, rel: f"{doc['attack']} at FPR {doc['fpr']:g}, epoch {doc['epoch']}; every number and its "
                         f"definition in {rel}",
        intro="Memorization (Feldman & Zhang 2020) is how much more often a model classifies a sample correctly "
              "when it trained on it than when it did not. Highly memorized samples are the ones membership "
              "inference exposes most, and they need fewer reference models to attack (Choi et al. 2023).")
