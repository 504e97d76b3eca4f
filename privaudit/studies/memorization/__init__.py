"""The memorization study: does memorization explain which samples are vulnerable, and how many
reference (shadow) models does an attack on them need? (Choi, Tople, Chandrasekaran, Jha, "Why
Train More? Effective and Efficient Membership Inference via Memorization", arXiv:2310.08015, 2023.)

Modules: :mod:`.estimators` (Feldman-Zhang memorization and influence, correlation report: arrays
in, arrays out), :mod:`.budget` (the shadow-model budget curve and its predicted sample
complexity), :mod:`.groups` (the sample groups compared), :mod:`.stage` (the study on a
:class:`~privaudit.runtime.run.Run`), :mod:`.plots`, :mod:`.render` (tables and the report
section) and :mod:`.command` (``privaudit memorization``). Importing this package stays cheap:
the CLI imports it to register the command.
"""

from __future__ import annotations

from privaudit.studies import Study

NAME = "memorization"

STUDY = Study.lazy(NAME, __name__)
