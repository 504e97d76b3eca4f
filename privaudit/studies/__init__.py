"""Studies: research analyses of an existing run (memorization, dynamics, ...), each a plugin.

A study is a module ``privaudit/studies/<name>/__init__.py`` (or ``<name>.py``) exposing
``STUDY = Study(...)``: its name, a ``register(app)`` that adds its command to the CLI, and a
``report_section(run)`` that returns its (heading, HTML) for the report or ``None`` when the run
holds no results of it. A study writes only through the :class:`~privaudit.runtime.run.Run`,
under ``Layout.study(name, ...)``. Adding one is adding one folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Study:
    name: str
    register: Callable[[Any], None]                   # register(typer_app): adds the study's command
    report_section: Callable[[Any], tuple[str, str] | None] = lambda run: None

    @classmethod
    def lazy(cls, name: str, package: str) -> Study:
        """The study of the package ``package`` whose ``register`` is ``<package>.command.register`` and
        whose ``report_section`` is ``<package>.render.report_section``, both imported only when called:
        importing the package stays cheap, and its submodules may import ``NAME`` from it without a cycle."""
        def register(app: Any) -> None:
            importlib.import_module(f"{package}.command").register(app)

        def report_section(run: Any) -> tuple[str, str] | None:
            return importlib.import_module(f"{package}.render").report_section(run)

        return cls(name, register, report_section)


def studies() -> list[Study]:
    """Every study found in this package, in name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "STUDY", None), Study):
            found.append(module.STUDY)
    return found
