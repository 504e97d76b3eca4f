"""Helpers shared by the dataset sources: the load request, subset selection, normalisation and
where files are looked for (see :mod:`privaudit.data.datasets` for the search order).

Normalisation (``load_dataset(normalize=...)``, config ``data.normalize``) is applied in one place,
:meth:`_Req.build`, which every source calls with its raw arrays:

* ``auto``: a built-in dataset's standard normalisation (``standard=``); where a source has none
  (a user's npz) the arrays exactly as stored (= ``none``).
* ``none``: the arrays as stored, cast to float32. Images keep ``mean = 0``, ``std = 1/scale``
  (for uint8 pixels ``std = 1/255``) as metadata: the map from pixels in [0, 1] to the inputs,
  used by plots, canaries and mixtures; float images are taken to be in [0, 1] already (no
  metadata, ``denormalize`` is the identity).
* ``per_channel``: ``v/scale``, then standardised per channel with the loaded pool's own
  mean/std (of the samples returned, after the ``n`` subset).
* ``given``: ``v/scale``, then standardised with the caller's ``mean``/``std`` (one per channel).

``per_channel``/``given`` apply to images only; tabular data is refused with one line.

Not a source itself (the leading underscore keeps the registry from collecting it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.loaders import cache_dir
from privaudit.errors import DataError

SPLITS = ("train", "test", "all")
NORMALIZE = ("auto", "none", "per_channel", "given")

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


@dataclass(frozen=True)
class Source:
    """One registered dataset: what ``list_datasets`` reports and the loader ``load_dataset`` calls.

    A module ``privaudit/data/sources/<name>.py`` registers its datasets by ending with
    ``SOURCES = (Source(DatasetInfo(...), load, order=...),)``. ``order`` places the dataset in
    ``list_datasets()`` (ties broken by name); ``aliases`` are other names ``load_dataset`` accepts.
    """

    info: DatasetInfo
    load: Callable[[_Req], Dataset]
    order: int = 1000
    aliases: tuple[str, ...] = ()


# ============================================================================================
# subset selection, normalisation, file search
# ============================================================================================

def _choose(y: np.ndarray, n: int | None, seed: int, name: str, split: str) -> np.ndarray | None:
    """Seeded class-stratified subset of size n (sorted indices), or None for everything."""
    if n is None:
        return None
    total = len(y)
    if n > total:
        raise DataError(f"{name}: n={n} is larger than the dataset ({total} samples in split "
                        f"{split!r})")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = n * counts / total
    quota = np.floor(exact).astype(np.int64)
    rest = n - int(quota.sum())
    if rest:
        frac = exact - quota
        order = np.lexsort((rng.random(len(classes)), -frac))  # largest remainder, random ties
        quota[order[:rest]] += 1
    quota = np.minimum(quota, counts)
    picks = []
    for c, q in zip(classes, quota):
        members = np.flatnonzero(y == c)
        picks.append(rng.permutation(members)[:q])
    idx = np.sort(np.concatenate(picks)) if picks else np.empty(0, np.int64)
    if len(idx) != n:  # cannot happen (quotas sum to n and never exceed counts); be loud anyway
        raise DataError(f"{name}: internal error drawing a stratified subset of {n}")
    return idx


def _normalise_u8(u8: np.ndarray, mean: Sequence[float], std: Sequence[float],
                  scale: float = 255.0) -> np.ndarray:
    """uint8/float ``[n, C, H, W]`` -> float32 ``(v/scale - mean) / std`` per channel."""
    x = u8.astype(np.float32)
    x *= np.float32(1.0 / scale)
    x -= np.asarray(mean, np.float32)[None, :, None, None]
    x /= np.asarray(std, np.float32)[None, :, None, None]
    return x


def _channel_stats(x: np.ndarray, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of ``x / scale`` (``[n, C, H, W]``); a constant channel gets std 1."""
    mean = tuple(float(x[:, c].mean(dtype=np.float64)) / scale for c in range(x.shape[1]))
    std = tuple(float(x[:, c].std(dtype=np.float64)) / scale or 1.0 for c in range(x.shape[1]))
    return mean, std


@dataclass(frozen=True)
class _Req:
    name: str
    root: Path | None
    split: str
    n: int | None
    seed: int
    download: bool
    normalize: str = "auto"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def build(self, name: str, x: np.ndarray, y: np.ndarray, n_classes: int, *,
              standard: tuple[Sequence[float], Sequence[float]] | None = None,
              scale: float = 255.0) -> Dataset:
        """The :class:`Dataset` of the raw samples ``x`` (pixel values ``0..scale`` for images
        ``[n, C, H, W]``, or features ``[n, d]``) normalised as requested (module docstring).
        ``standard``: the source's published ``(mean, std)``, used by ``auto``; None: ``auto`` is
        ``none``. The mode applied is recorded in ``Dataset.normalization``."""
        mode = self.normalize
        if x.ndim != 4:
            if mode in ("per_channel", "given"):
                raise DataError(f"{name}: normalize: {mode} applies to images, but the data is "
                                f"tabular {list(x.shape)}; use auto or none")
            return Dataset(name, np.ascontiguousarray(x, dtype=np.float32), y, n_classes)
        if mode == "auto":
            mode = "none" if standard is None else "standard"
        c = x.shape[1]
        if mode == "none":
            meta = (None, None) if scale == 1 else ((0.0,) * c, (1.0 / scale,) * c)
            return Dataset(name, np.ascontiguousarray(x, dtype=np.float32), y, n_classes, *meta,
                           normalization="none")
        if mode == "standard":
            mean, std = standard
        elif mode == "given":
            mean, std = self.mean, self.std
            if len(mean) != c or len(std) != c:
                raise DataError(f"{name}: normalize: given has {len(mean)} mean and {len(std)} std "
                                f"values, but the images have {c} channels")
        else:
            mean, std = _channel_stats(x, scale)
        return Dataset(name, _normalise_u8(x, mean, std, scale=scale), y, n_classes, mean, std,
                       normalization=mode)

    def select(self, y: np.ndarray) -> np.ndarray | None:
        """Indices of the requested subset of the labels ``y`` of the whole split (None: all).
        Every loader passes its full label set through here, so every dataset is checked to be
        usable for an audit (:func:`_check_label_set`) before it is built."""
        _check_label_set(self, y)
        return _choose(y, self.n, self.seed, self.name, self.split)

    def take(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` restricted to the requested subset (unchanged when no ``n`` was asked)."""
        idx = self.select(y)
        return (x, y) if idx is None else (x[idx], y[idx])

    def parts(self) -> tuple[str, ...]:
        return ("train", "test") if self.split == "all" else (self.split,)


def _check_label_set(req: _Req, y: np.ndarray) -> None:
    """Refuse labels no classifier can be trained on: no samples, or a single class."""
    in_file = req.root is not None and req.root.is_file()
    where = f"split {req.split!r}" + (f" of {req.root}" if in_file else "")
    if len(y) == 0:
        raise DataError(f"{req.name}: {where} has no samples")
    lo, hi = int(y.min()), int(y.max())
    if lo == hi:
        raise DataError(f"{req.name}: {where} has only one class (label {lo}); membership "
                        f"inference needs a classifier trained on at least 2 classes")


def _search_dirs(req: _Req, folders: Sequence[str]) -> list[Path]:
    """Folders to look in, in order (see the :mod:`privaudit.data.datasets` docstring)."""
    dirs: list[Path] = []
    if req.root is not None:
        r = req.root
        if r.is_file():
            dirs.append(r.parent)
        else:
            dirs.append(r)
            dirs += [r / f for f in folders]
    else:
        env = os.environ.get("PRIVAUDIT_DATA", "")
        for base in (b for b in env.split(os.pathsep) if b):
            dirs += [Path(base).expanduser() / f for f in folders]
        dirs += [cache_dir() / f for f in folders]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _download_dir(req: _Req) -> Path:
    if req.root is not None:
        return req.root.parent if req.root.is_file() else req.root
    env = [b for b in os.environ.get("PRIVAUDIT_DATA", "").split(os.pathsep) if b]
    return (Path(env[0]).expanduser() if env else cache_dir()) / req.name


def _missing(req: _Req, what: str, looked: Sequence[Path], how: str) -> DataError:
    where = ", ".join(str(p) for p in looked)
    hint = "" if req.root is not None or os.environ.get("PRIVAUDIT_DATA") else \
        " (or pass root=..., or set PRIVAUDIT_DATA)"
    return DataError(f"{req.name}: missing file {what}; looked for: {where}; {how}{hint}")


def _find(req: _Req, folders: Sequence[str], names: Sequence[str]) -> tuple[Path | None, list[Path]]:
    looked = [d / nm for d in _search_dirs(req, folders) for nm in names]
    for p in looked:
        if p.is_file():
            return p, looked
    return None, looked


def _single_split(req: _Req, total: int) -> None:
    if req.split == "test":
        raise DataError(f"{req.name} has no test split: use split='train' (all {total} samples) "
                        f"and hold samples out yourself")
