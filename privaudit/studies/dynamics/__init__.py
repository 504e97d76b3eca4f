"""The dynamics study: how each sample's membership vulnerability develops across training
checkpoints (after Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of Membership
Privacy in Deep Learning", arXiv:2507.23291, 2025).

Modules: :mod:`.plane` (per-sample points on the FPR-TPR plane and how the population moves on
it), :mod:`.difficulty` (learning difficulty and its correlation with vulnerability),
:mod:`.early` (is the final vulnerability decided early?), :mod:`.analysis` (all of it on arrays,
and the findings), :mod:`.stage` (the study on a :class:`~privaudit.runtime.run.Run`),
:mod:`.plots`, :mod:`.render` (tables and the report section) and :mod:`.command`
(``privaudit dynamics``). Importing this package stays cheap: the CLI imports it to register the
command.
"""

from __future__ import annotations

from privaudit.studies import Study

NAME = "dynamics"

STUDY = Study.lazy(NAME, __name__)
