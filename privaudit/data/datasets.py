"""The dataset layer: a validated in-memory ``Dataset`` and a registry of loaders.

One module per source in :mod:`privaudit.data.sources`, collected at import (adding a dataset is
adding one file there; see that package's docstring); ``Dataset``/``DatasetInfo`` live in
:mod:`privaudit.data.dataset` and are re-exported here.

>>> ds = load_dataset("digits")                      # ships with scikit-learn: always offline
>>> ds = load_dataset("cifar10", root="data/cifar10", n=10_000, seed=0)

Contract (see ``docs/ARCHITECTURE.md``): ``x`` is float32 ``[n, C, H, W]``, by default (``normalize=
"auto"``) normalised per channel with the dataset's standard constants, ``(v/255 - mean) / std``
(``v/16`` for ``digits``; a user's ``npz`` exactly as stored), or ``[n, d]`` for tabular data
(``normalize``: see :mod:`privaudit.data.sources._common`); ``y`` is int64
``[n]`` in ``0..n_classes-1``, with at least 2 classes present and ``n_classes`` at most 100000
(``npz`` without a stored ``n_classes``: also at most 10 classes per sample), so label ids that
are not classes are refused before anything is sized by them. Every problem raises
:class:`privaudit.errors.DataError` with a one-line message naming the file / field / shape.

Where files are looked for when ``root`` is None: ``$PRIVAUDIT_DATA/<name>/`` (a folder holding
one sub-folder per dataset; ``os.pathsep``-separated list allowed), then
``~/.cache/privaudit/<name>/`` (``$PRIVAUDIT_CACHE`` overrides ``~/.cache/privaudit``). When
``root`` is given it is the dataset's folder itself (or a parent holding ``<name>/``); for
``npz`` (and optionally ``cifar10``'s zip, ``mnist1d``'s pickle) it may be the file itself.

Splits: ``"train"``, ``"test"`` and ``"all"`` (train followed by test). Datasets without an
official test split (digits, mnist5k, purchase100, texas100) only have ``"train"``/``"all"``.
``n`` draws a seeded, class-stratified subset (largest-remainder quotas per class, indices kept
in file order); the same ``(n, seed)`` always gives the same samples.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Sequence

import numpy as np

from privaudit.data import sources as _sources
from privaudit.data.dataset import Dataset, DatasetInfo, DataWarning
from privaudit.data.sources._common import NORMALIZE, SPLITS, Source, _Req
from privaudit.data.sources.cifar10 import CIFAR10_CLASSES
from privaudit.data.sources.npz import save_npz
from privaudit.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "DataWarning",
    "Dataset",
    "DatasetInfo",
    "list_datasets",
    "load_dataset",
    "save_npz",
]


# ============================================================================================
# registry: every SOURCES of every module of privaudit.data.sources (one file per source)
# ============================================================================================

def _collect() -> tuple[dict[str, Source], dict[str, str]]:
    """``(name -> Source, alias -> name)`` from the ``SOURCES`` tuple of each module of
    :mod:`privaudit.data.sources` whose name does not start with ``_``, ordered by ``order``
    (then name). A module without ``SOURCES``, or a name registered twice, is a programming
    error and fails the import."""
    found: list[tuple[Source, str]] = []
    for mod in pkgutil.iter_modules(_sources.__path__):
        if mod.name.startswith("_"):
            continue
        full = f"{_sources.__name__}.{mod.name}"
        srcs = getattr(importlib.import_module(full), "SOURCES", None)
        if not isinstance(srcs, tuple) or not srcs or not all(isinstance(s, Source) for s in srcs):
            raise ImportError(f"{full} must define SOURCES = (Source(DatasetInfo(...), load), ...)")
        found += [(s, full) for s in srcs]
    registry: dict[str, Source] = {}
    aliases: dict[str, str] = {}
    origin: dict[str, str] = {}
    for s, full in sorted(found, key=lambda t: (t[0].order, t[0].info.name)):
        for key in (s.info.name, *s.aliases):
            if key in origin:
                raise ImportError(f"dataset name {key!r} is registered by both {origin[key]} "
                                  f"and {full}")
            origin[key] = full
        registry[s.info.name] = s
        aliases.update({a: s.info.name for a in s.aliases})
    return registry, aliases


_REGISTRY, _ALIASES = _collect()


def list_datasets() -> list[DatasetInfo]:
    """Every registered dataset, in registration order."""
    return [s.info for s in _REGISTRY.values()]


def _stats(key: str, what: str, v: Sequence[float] | None) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        out = tuple(float(t) for t in np.ravel(np.asarray(v, dtype=np.float64)))
    except (TypeError, ValueError):
        raise DataError(f"{key}: {what} must be a sequence of numbers, got {v!r}") from None
    if not out or not all(np.isfinite(out)) or (what == "std" and min(out) <= 0):
        raise DataError(f"{key}: {what} must be finite numbers{' > 0' if what == 'std' else ''}, "
                        f"got {v!r}")
    return out


def load_dataset(name: str, *, root: str | Path | None = None, split: str = "train",
                 n: int | None = None, seed: int = 0, download: bool = False,
                 normalize: str = "auto", mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> Dataset:
    """Load a registered dataset as a validated :class:`Dataset` (see the module docstring).

    ``n``: a seeded, class-stratified random subset of ``n`` samples (``seed`` picks it).
    ``download``: fetch missing files from the official URLs (never needed for digits/mnist5k).
    ``normalize``: ``auto`` | ``none`` | ``per_channel`` | ``given`` (with ``mean``/``std``, one
    value per channel); see :mod:`privaudit.data.sources._common`.
    """
    if not isinstance(name, str):
        raise DataError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}")
    if split not in SPLITS:
        raise DataError(f"{key}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise DataError(f"{key}: n must be a positive int or None, got {n!r}")
    if normalize not in NORMALIZE:
        raise DataError(f"{key}: unknown normalize {normalize!r}; use one of {', '.join(NORMALIZE)}")
    mean, std = _stats(key, "mean", mean), _stats(key, "std", std)
    if (normalize == "given") != (mean is not None and std is not None):
        raise DataError(f"{key}: normalize='given' needs both mean and std (one value per "
                        f"channel), and mean/std are used only with normalize='given'")
    rootp = Path(root).expanduser() if root is not None else None
    req = _Req(key, rootp, split, None if n is None else int(n), int(seed), bool(download),
               normalize, mean, std)
    return _REGISTRY[key].load(req)
