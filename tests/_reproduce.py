"""Shared by the tests of ``benchmarks/reproduce/``: the data folder and a script loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "benchmarks" / "reproduce"
DATA = REPO.parent / "shared" / "data"


def load(name: str) -> ModuleType:
    """``benchmarks/reproduce/<name>.py`` as a fresh module (its folder on ``sys.path`` for
    ``_common``)."""
    if str(FOLDER) not in sys.path:
        sys.path.insert(0, str(FOLDER))
    spec = importlib.util.spec_from_file_location(f"reproduce_{name}", FOLDER / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
