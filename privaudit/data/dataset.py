"""The validated in-memory :class:`Dataset`, and the :class:`DatasetInfo` each source reports.

The loaders (``privaudit.data.sources``) build these; :mod:`privaudit.data.datasets` is the public
entry point (``load_dataset``, ``list_datasets``) and re-exports both classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from privaudit.errors import DataError

# More classes than any real classification label space (ImageNet-21k has 21,841): a larger
# n_classes means labels that are ids, not classes, and would allocate n_classes-sized arrays
# (one-hot targets, per-class counts, the model's output layer) before anything else fails.
MAX_CLASSES = 100_000
# What load_dataset applied to the stored arrays (privaudit.data.sources._common._Req.build):
# none (as stored), standard (the dataset's published constants), per_channel, given.
NORMALIZATIONS = ("none", "standard", "per_channel", "given")
REMAP_HINT = "remap them with numpy.unique(y, return_inverse=True)"
LABEL_HINT = f"labels must be 0..C-1: {REMAP_HINT}"


class DataWarning(UserWarning):
    """Data loaded, but something about it deserves attention (e.g. not the official release)."""


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype}{list(a.shape)}"
    return type(a).__name__


def _check_arrays(name: str, x: Any, y: Any, n_classes: Any, mean: Any, std: Any,
                  normalization: Any) -> None:
    what = f"dataset {name!r}"
    if normalization not in NORMALIZATIONS:
        raise DataError(f"{what}: normalization must be one of {', '.join(NORMALIZATIONS)}, "
                        f"got {normalization!r}")
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim not in (2, 4):
        raise DataError(f"{what}: x must be float32 [n, C, H, W] or [n, d], got {_describe(x)}")
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
        raise DataError(f"{what}: y must be int64 [n], got {_describe(y)}")
    if len(x) != len(y):
        raise DataError(f"{what}: x has {len(x)} samples but y has {len(y)} labels")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise DataError(f"{what}: n_classes must be a positive int, got {n_classes!r}")
    if n_classes > MAX_CLASSES:
        raise DataError(f"{what}: n_classes={int(n_classes)} is more than {MAX_CLASSES} classes; "
                        f"{LABEL_HINT}")
    if len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            raise DataError(f"{what}: labels out of range: found {lo}..{hi}, "
                            f"expected 0..{int(n_classes) - 1}")
    if x.size and not np.isfinite(x.sum(dtype=np.float64)):  # NaN/inf propagate through the sum
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(f"{what}: x contains {bad} NaN/inf values")
    if (mean is None) != (std is None):
        raise DataError(f"{what}: give both mean and std, or neither")
    if mean is not None:
        if x.ndim == 4 and (len(mean) != x.shape[1] or len(std) != x.shape[1]):
            raise DataError(f"{what}: mean/std have {len(mean)}/{len(std)} entries, "
                            f"x has {x.shape[1]} channels")
        if not all(np.isfinite(s) and s > 0 for s in std):
            raise DataError(f"{what}: std must be finite and > 0, got {tuple(std)}")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled pool. ``x``: float32 ``[n, C, H, W]`` images or ``[n, d]`` (tabular); ``y``: int64
    ``[n]`` in ``0..n_classes-1``. Validated on construction. Equality is identity (arrays are not
    compared).

    For images, ``mean``/``std`` map pixels in [0, 1] to the inputs, ``x = (pixel - mean) / std``
    per channel (plots, canaries and mixtures use them; None: ``x`` is in pixel space).
    ``normalization`` records what the loader applied to the stored arrays (``NORMALIZATIONS``)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    normalization: str = "none"

    def __post_init__(self) -> None:
        for f in ("mean", "std"):
            v = getattr(self, f)
            if v is not None:
                try:
                    object.__setattr__(self, f, tuple(float(t) for t in np.ravel(v)))
                except (TypeError, ValueError):
                    raise DataError(f"dataset {self.name!r}: {f} must be a sequence of floats, "
                                    f"got {v!r}") from None
        if isinstance(self.n_classes, np.integer):
            object.__setattr__(self, "n_classes", int(self.n_classes))
        _check_arrays(self.name, self.x, self.y, self.n_classes, self.mean, self.std,
                      self.normalization)

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, n={len(self)}, x={_describe(self.x)}, "
                f"n_classes={self.n_classes})")

    def subset(self, idx: Any) -> "Dataset":
        """Samples ``idx`` (int indices, or a bool mask of length n), same normalisation."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise DataError(f"dataset {self.name!r}: bool mask has shape {list(idx.shape)}, "
                                f"expected [{len(self)}]")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise DataError(f"dataset {self.name!r}: subset indices must be a 1-D int array or bool "
                            f"mask, got {_describe(idx)}")
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(f"dataset {self.name!r}: subset index out of range "
                            f"[{int(idx.min())}, {int(idx.max())}] for n={len(self)}")
        return Dataset(self.name, self.x[idx], self.y[idx], self.n_classes, self.mean, self.std,
                       self.normalization)

    def denormalize(self) -> np.ndarray:
        """Images in pixel space (``x * std + mean``, roughly in [0, 1]; ``x`` itself without
        ``mean``/``std``), for plots and pixel-space edits. Not clipped: it is the exact inverse."""
        if self.mean is None or not self.is_image:
            return self.x.copy()
        m = np.asarray(self.mean, np.float32)[None, :, None, None]
        s = np.asarray(self.std, np.float32)[None, :, None, None]
        return self.x * s + m


@dataclass(frozen=True)
class DatasetInfo:
    """What ``list_datasets`` reports for one registered dataset. ``source`` is the citation."""

    name: str
    description: str
    source: str
    offline: bool                         # True: ships inside an installed package
    n_train: int | None                   # None: depends on the user's file (npz)
    input_shape: tuple[int, ...]          # (): depends on the user's file (npz)
    n_classes: int | None                 # None: depends on the user's file (npz)
    how_to_get: str
    n_test: int | None = None
    splits: tuple[str, ...] = ("train", "all")

    @property
    def citation(self) -> str:
        return self.source
