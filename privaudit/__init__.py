"""privaudit: measure how much a trained neural network leaks about its training data.

``privaudit.audit(factory, x, y, ...)`` audits a training recipe or a trained model and returns an
:class:`AuditResult`; ``privaudit.Run.open(path)`` opens an existing run directory
(``privaudit.AuditResult(privaudit.Run.open(path))`` reads its results). Imported on first use,
so ``import privaudit`` and the command line stay quick.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AuditResult", "Run", "audit"]


def __getattr__(name: str) -> Any:
    if name in ("audit", "AuditResult"):
        from privaudit import api

        return getattr(api, name)
    if name == "Run":
        from privaudit.runtime.run import Run

        return Run
    raise AttributeError(f"module 'privaudit' has no attribute {name!r}")
