"""Plot helpers shared by the studies: every figure is written through the run (atomic, hashed)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from privaudit.runtime.run import Run


def save_line_plot(run: Run, rel: str, x: Iterable[float], series: dict[str, tuple[np.ndarray, np.ndarray | None]],
                   **kwargs) -> Path:
    """:func:`privaudit.report.plots.line_plot` of ``series``, saved as the run's artifact ``rel``."""
    from privaudit.report.plots import line_plot

    with tempfile.TemporaryDirectory() as tmp:
        png = line_plot(x, series, Path(tmp) / "plot.png", **kwargs)
        return run.save_bytes(rel, png.read_bytes())


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), in the report's colour-blind-safe
    palette (:mod:`privaudit.report.plots` sets both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import privaudit.report.plots  # noqa: F401  (the palette)

    return plt
