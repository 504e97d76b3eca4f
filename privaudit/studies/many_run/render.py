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
                  columns=["DP-SGD", "claimed eps", "eps lower bound (95%)", "bound / claim", "verdict",
                           "ideal", "ceiling", "N (IN/OUT)", "time s", "peak MiB"],
                  caption="bound: Nasr et al. 2021 Clopper–Pearson on the IN/OUT canary scores, threshold "
                          "chosen on one half of the models and the bound on the other; ideal: a perfect "
                          "attack on the correct mechanism's exact worst case (Gaussian shift) with those "
                          "counts; ceiling: the largest eps those counts can certify")
    for r in doc["rows"]:
        verdict = "REFUTED" if r["refuted"] else "consistent"
        t.add_row(r["bug"] if r["bug"] != "none" else "correct", number(r["claimed_epsilon"], ".3f"),
                  number(r["eps_lower_bound"], ".3f"), number(r["ratio"], ".3f"), verdict,
                  number(r.get("ideal_bound"), ".3f"), number(r["ceiling"], ".2f"), f"{r['n_models']} ({r['n_in']}/{r['n_out']})",
                  number(r["seconds"], ".1f"), number(r["peak_rss_mib"], ".0f"))
    return t


def report_section(run: Run) -> tuple[str, str] | None:
    """The audit table, or None when the run holds no many-run audit."""
    return study_section(run, NAME, DOCUMENT, (), "Many-run DP audit",
                         lambda doc: audit_table(doc).html(),
                         lambda doc, rel: f"every number, the settings and the counts in {rel}")
