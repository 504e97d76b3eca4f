"""npz: the user's own ``.npz`` (arrays ``x``, ``y``; optional ``x_test``/``y_test``,
``n_classes``, ``mean``/``std``), and :func:`save_npz`, which writes one.

Under ``normalize="auto"`` the arrays are used exactly as stored (cast to float32): a user's target
model must see exactly the inputs the user gives. A file that stores ``mean``/``std`` (written by
:func:`save_npz`) holds already-normalised images; those are the metadata for plots."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from privaudit.data.dataset import (
    LABEL_HINT,
    MAX_CLASSES,
    REMAP_HINT,
    Dataset,
    DatasetInfo,
    _describe,
)
from privaudit.data.loaders import atomic_write_bytes
from privaudit.data.sources._common import SPLITS, Source, _Req
from privaudit.errors import DataError


def _load_npz(req: _Req) -> Dataset:
    if req.root is None:
        raise DataError("npz: pass root=<path to a .npz file with arrays x and y>")
    path = req.root
    if not path.is_file():
        raise DataError(f"npz: missing file {path}; looked for: {path}; write one with "
                        f"numpy.savez(path, x=..., y=...) or privaudit.data.datasets.save_npz")
    keys = {"train": [("x", "y")], "test": [("x_test", "y_test")],
            "all": [("x", "y"), ("x_test", "y_test")]}[req.split]
    try:
        with np.load(path, allow_pickle=False) as f:
            have = set(f.files)
            for kx, ky in keys:
                if kx not in have or ky not in have:
                    raise DataError(f"npz: {path} lacks array {kx!r} or {ky!r} (has "
                                    f"{', '.join(sorted(have)) or 'nothing'})")
            arrs = [(f[kx], f[ky]) for kx, ky in keys]
            meta = {k: f[k] for k in ("n_classes", "mean", "std") if k in have}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise DataError(f"npz: unreadable file {path}: {type(e).__name__}: {e}") from None

    xs, ys = [], []
    for (x, y), (kx, ky) in zip(arrs, keys):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.dtype.kind == "c":
            raise DataError(f"npz: {path} array {kx!r} has dtype {x.dtype}, expected uint8 or float")
        if x.ndim == 3:                         # [n, H, W] greyscale
            x = x[:, None]
        if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)         # channels-last -> [n, C, H, W]
        if x.ndim not in (2, 4):
            raise DataError(f"npz: {path} array {kx!r} has shape {list(x.shape)}, expected "
                            f"[n, C, H, W] images or [n, d] tabular")
        if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(1) == 1):
            y = y.argmax(1)                     # one-hot labels
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"npz: {path} array {ky!r} has shape {list(y.shape)}, expected "
                            f"[{len(x)}] labels")
        if not np.issubdtype(y.dtype, np.integer):
            if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise DataError(f"npz: {path} array {ky!r} must hold integer class labels, "
                                f"got dtype {y.dtype}")
        x_is_float = x.dtype.kind == "f"
        if x_is_float:
            bad = int(np.count_nonzero(~np.isfinite(x)))
            if bad:
                raise DataError(f"npz: {path} array {kx!r} contains {bad} NaN/inf values")
        xs.append(x)
        ys.append(y.astype(np.int64))
    if len(xs) > 1 and xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(f"npz: {path} x {list(xs[0].shape)} and x_test {list(xs[1].shape)} "
                        f"have different sample shapes")
    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    if len(y) and y.min() < 0:
        raise DataError(f"npz: labels out of range in {path}: found {int(y.min())}..{int(y.max())}, "
                        f"expected 0..n_classes-1; {REMAP_HINT}")
    # Refuse an implausible label space before anything is sized by it (one-hot targets, the
    # model's output layer): at most MAX_CLASSES classes, and when n_classes is inferred from
    # the labels, at most 10 classes per sample (labels that are ids, not 0..C-1 classes).
    if "n_classes" in meta:
        nc = np.ravel(meta["n_classes"])
        if nc.size != 1 or nc.dtype.kind not in "iu" or int(nc[0]) < 1:
            raise DataError(f"npz: {path} 'n_classes' must be one positive int, got "
                            f"{_describe(meta['n_classes'])}")
        n_classes = int(nc[0])
        if n_classes > MAX_CLASSES:
            raise DataError(f"npz: {path} 'n_classes' is {n_classes}, more than {MAX_CLASSES} "
                            f"classes; {LABEL_HINT}")
    else:
        hi = int(y.max()) if len(y) else 0
        if len(y) and (hi >= MAX_CLASSES or hi >= 10 * len(y)):
            store = " (or store the true n_classes in the file)" if hi < MAX_CLASSES else ""
            raise DataError(f"npz: {path} has labels up to {hi} for {len(y)} samples, i.e. "
                            f"{hi + 1} classes; {LABEL_HINT}{store}")
        n_classes = hi + 1
    if len(y) and y.max() >= n_classes:
        raise DataError(f"npz: labels out of range in {path}: found {int(y.min())}..{int(y.max())}, "
                        f"expected 0..{n_classes - 1}")

    idx = req.select(y)
    if idx is not None:
        x, y = x[idx], y[idx]
    name = f"npz:{path.stem}"
    if x.dtype.kind == "f" and x.size and np.abs(x).max() > np.finfo(np.float32).max:
        raise DataError(f"npz: {path} x overflows float32 (values too large)")
    if x.ndim == 4 and "mean" in meta and "std" in meta:   # our own format: already normalised
        if req.normalize in ("per_channel", "given"):
            raise DataError(f"npz: {path} is already normalised (it stores mean/std); use "
                            f"normalize auto or none")
        mean = tuple(float(v) for v in np.ravel(meta["mean"]))
        std = tuple(float(v) for v in np.ravel(meta["std"]))
        if len(mean) != x.shape[1] or len(std) != x.shape[1]:
            raise DataError(f"npz: {path} mean/std have {len(mean)}/{len(std)} entries for "
                            f"{x.shape[1]} channels")
        return Dataset(name, np.ascontiguousarray(x, dtype=np.float32), y, n_classes, mean, std)
    # integers are pixels 0..255, floats are taken to be in [0, 1] already
    return req.build(name, x, y, n_classes, scale=255.0 if x.dtype.kind in "ui" else 1.0)


def save_npz(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a ``.npz`` that ``load_dataset("npz", root=path)`` reads back unchanged
    (x, y, n_classes, and mean/std for images). Written atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"x": ds.x, "y": ds.y, "n_classes": np.int64(ds.n_classes)}
    if ds.mean is not None:
        arrays["mean"] = np.asarray(ds.mean, np.float64)
        arrays["std"] = np.asarray(ds.std, np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, [buf.getvalue()])
    return path


NPZ = Source(DatasetInfo(
    "npz", "your own .npz with arrays x ([n,C,H,W] or [n,H,W,C] images, or [n,d]) and y "
           "(optional x_test/y_test, n_classes, mean/std)",
    "user data", False, None, (), None, "root=<path to the .npz file>", splits=SPLITS),
    _load_npz, order=50)

SOURCES = (NPZ,)
