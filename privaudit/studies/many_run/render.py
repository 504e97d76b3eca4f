"""The many-run audit's table (console and HTML report) and its report section."""

from __future__ import annotations

from typing import Any

from privaudit.report.format import TextTable, number
from privaudit.runtime.run import Run
from privaudit.studies._render import study_section
from privaudit.studies.many_run import DOCUMENT, NAME


def audit_table(doc: dict[str, Any]) -> TextTable:
    """One row per audited setting: claim, Clopper–Pearson bound, bound/claim, verdict, N, time, memory."""
    t = TextTable(title="many-run DP audit (Tramèr et al. 2022): one canary, N independent models",
                  columns=["DP-SGD", "claim", "bound", "ratio", "verdict", "ideal", "N"],
                  caption="claim: the accountant's eps; bound: 95% Clopper–Pearson lower bound on eps (Nasr et al. "
                          "2021) from the IN/OUT canary scores, threshold chosen on one half of the models, bound on "
                          "the other; ratio: bound / claim; ideal: what a perfect attack on the correct mechanism's "
                          "worst case would certify with these counts; N: models (half with the canary). Time, "
                          "memory and the counts' ceiling are in the JSON.")
    for r in doc["rows"]:
        verdict = "REFUTED" if r["refuted"] else "holds"
        t.add_row(r["bug"] if r["bug"] != "none" else "correct", number(r["claimed_epsilon"], ".2f"),
                  number(r["eps_lower_bound"], ".2f"), number(r["ratio"], ".2f"), verdict,
                  number(r.get("ideal_bound"), ".2f"), str(r["n_models"]))
    return t


def report_section(run: Run) -> tuple[str, str] | None:
    """The audit table, or None when the run holds no many-run audit."""
    return study_section(run, NAME, DOCUMENT, (), "Many-run DP audit",
                         lambda doc: audit_table(doc).html(),
                         lambda doc, rel: f"every number, the settings and the counts in {rel}",
                         intro="Many models trained with DP-SGD, half of them with one worst-case canary; how well "
                               "the canary's presence can be told from the models bounds epsilon from below "
                               "(Tramèr et al. 2022). A bound above the claimed epsilon refutes the claim.")
