"""The many-run DP audit (Tramèr, Terzis, Steinke, Song, Jagielski, Carlini, "Debugging Differential
Privacy: A Case Study for Privacy Auditing", 2022): train N small models with the stacked DP-SGD
trainer, half of them with one worst-case canary, and bound eps from the N independent IN/OUT
outcomes with Clopper–Pearson (Nasr et al. 2021, :func:`privaudit.evaluation.audit.eps_lower_bound`).

Modules: :mod:`.audit` (the experiment on arrays: population, canary, training, scores, bound),
:mod:`.render` (the table and the report section) and :mod:`.command` (``privaudit many-run``).
Importing this package stays cheap: the CLI imports it to register the command.
"""

from __future__ import annotations

from privaudit.studies import Study

NAME = "many_run"
DOCUMENT = "many_run.json"

STUDY = Study.lazy(NAME, __name__)
