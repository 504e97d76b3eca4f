"""Shared by the tests of ``benchmarks/reproduce/``: the data folder and a script loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


def needs_data(*folders: str) -> None:
    """Skip the test when a dataset folder is not next to the repository (``shared/data``)."""
    missing = [f for f in folders if not (DATA / f).is_dir()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found next to the repository (shared/data)")


def ci_argv(tmp: Path) -> list[str]:
    """The command line of a reproduction at the ``ci`` scale writing everything under ``tmp``."""
    return ["--scale", "ci", "--out", str(tmp / "runs"), "--json", str(tmp / "out.json"), "--figures", str(tmp)]
