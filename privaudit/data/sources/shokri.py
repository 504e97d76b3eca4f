"""purchase100 and texas100: the tabular releases of Shokri, Stronati, Song & Shmatikov,
"Membership Inference Attacks against Machine Learning Models", IEEE S&P 2017, as distributed
by privacytrustlab/datasets (ML Privacy Meter) and ML-Leaks. The reader here also serves
``location.py`` (the same paper's Location data set)."""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo, _describe
from privaudit.data.loaders import download as _download, read_csv_numeric
from privaudit.data.sources._common import Source, _download_dir, _missing, _Req, _search_dirs
from privaudit.errors import DataError


_REPO = "https://github.com/privacytrustlab/datasets"


@dataclass(frozen=True)
class TabularSpec:
    """One Shokri et al. tabular release: published shape, file names, where to get it."""

    name: str
    n_rows: int                          # published rows (a file may hold a subset)
    n_features: int
    n_classes: int
    text_files: tuple[tuple[str, ...], ...]  # (table,) with the label first, or (feats, labels)
    tgz: str
    tgz_members: tuple[str, ...]
    npz: str
    url: str
    tgz_sha256: str | None = None        # set: download=True fetches url (verified)


def _tabular_from_npz(p: Path, spec: TabularSpec) -> tuple[np.ndarray, np.ndarray]:
    """``<name>.npz`` as redistributed with arrays ``features`` and ``labels`` (labels one-hot
    ``[n, n_classes]`` or int ``[n]`` in 0..n_classes-1)."""
    try:
        with np.load(p, allow_pickle=False) as f:
            if "features" not in f.files or "labels" not in f.files:
                raise DataError(f"{spec.name}: {p} lacks array 'features' or 'labels' (has "
                                f"{', '.join(sorted(f.files))})")
            x, y = f["features"], f["labels"]
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{spec.name}: unreadable file {p}: {type(e).__name__}: {e}") from None
    if y.ndim == 2:
        k = spec.n_classes
        if y.shape[1] != k or not np.all(y.sum(1) == 1) or not np.all((y == 0) | (y == 1)):
            raise DataError(f"{spec.name}: {p} 'labels' {_describe(y)} is not one-hot over {k} "
                            f"classes")
        y = y.argmax(1)
    return x, y + 1                        # 1-based, like the text releases


def _read_text(name: str, feats: Any, labels: Any | None,
               where: str) -> tuple[np.ndarray, np.ndarray]:
    """A table ``label,f1..fd`` (``labels`` None), or features plus a one-column label file."""
    t = read_csv_numeric(feats, where=where, dtype=np.float32)
    if labels is None:
        return t[:, 1:], t[:, 0]
    y = read_csv_numeric(labels, where=f"{where} labels", dtype=np.float64)[:, 0]
    if len(y) != len(t):
        raise DataError(f"{name}: {where} has {len(t)} rows but its label file has {len(y)} "
                        f"labels")
    return t, y


def _read_tgz(tgz: Path, spec: TabularSpec) -> tuple[np.ndarray, np.ndarray]:
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            files = [tf.extractfile(m) for m in spec.tgz_members]
            return _read_text(spec.name, files[0], files[1] if len(files) > 1 else None,
                              f"{tgz}::{spec.tgz_members[0]}")
    except KeyError as e:
        raise DataError(f"{spec.name}: {tgz} lacks member {e}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{spec.name}: unreadable archive {tgz}: {e}") from None


def _find_and_read(req: _Req, spec: TabularSpec) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x, labels 1..C, where)`` from the first file found: text release, its .tgz, or npz."""
    looked: list[Path] = []
    for d in _search_dirs(req, (spec.name,)):
        for files in spec.text_files:
            ps = [d / f for f in files]
            looked.append(ps[0])
            if all(p.is_file() for p in ps):
                x, y = _read_text(spec.name, ps[0], ps[1] if len(ps) > 1 else None, str(ps[0]))
                return x, y, str(ps[0])
        looked.append(d / spec.tgz)
        if (d / spec.tgz).is_file():
            return (*_read_tgz(d / spec.tgz, spec), str(d / spec.tgz))
        looked.append(d / spec.npz)
        if (d / spec.npz).is_file():
            return (*_tabular_from_npz(d / spec.npz, spec), str(d / spec.npz))
    if req.download and spec.tgz_sha256 is not None:
        tgz = _download([spec.url], _download_dir(req) / spec.tgz, sha256=spec.tgz_sha256)
        return (*_read_tgz(tgz, spec), str(tgz))
    how = f" or call load_dataset({spec.name!r}, download=True)" if spec.tgz_sha256 else \
        "; no automatic download"
    raise _missing(req, f"{spec.text_files[0][0]} (or {spec.tgz}, {spec.npz})", looked,
                   f"get it from {spec.url}{how}")


def load_tabular(req: _Req, spec: TabularSpec) -> Dataset:
    """The whole release (no official split: ``train``/``all``), labels shifted to 0-based.
    The feature count must be the published one; fewer rows (a subset) are fine."""
    if req.split == "test":
        raise DataError(f"{spec.name} has no test split: use split='train' and hold samples out "
                        f"yourself")
    x, y, where = _find_and_read(req, spec)
    if x.ndim != 2 or x.shape[1] != spec.n_features:
        raise DataError(f"{spec.name}: {where} has features of shape {list(x.shape)}, expected "
                        f"[n, {spec.n_features}] (the published release is {spec.n_rows} x "
                        f"{spec.n_features})")
    y = np.asarray(y)
    if y.ndim != 1 or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        raise DataError(f"{spec.name}: {where} labels must be integers")
    y = y.astype(np.int64) - 1                    # published labels are 1..C
    if len(y) and (y.min() < 0 or y.max() >= spec.n_classes):
        raise DataError(f"{spec.name}: labels out of range in {where}: found "
                        f"{int(y.min()) + 1}..{int(y.max()) + 1}, expected 1..{spec.n_classes} "
                        f"(0..{spec.n_classes - 1} once shifted)")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{spec.name}: {where} features contain NaN/inf")
    x, y = req.take(x, y)
    return req.build(spec.name, x, y, spec.n_classes)


PURCHASE100_SPEC = TabularSpec(
    "purchase100", 197324, 600, 100, (("dataset_purchase",),), "dataset_purchase.tgz",
    ("dataset_purchase",), "purchase100.npz", f"{_REPO} (dataset_purchase.tgz)")
TEXAS100_SPEC = TabularSpec(
    "texas100", 67330, 6169, 100, (("texas/100/feats", "texas/100/labels"), ("feats", "labels")),
    "dataset_texas.tgz", ("texas/100/feats", "texas/100/labels"), "texas100.npz",
    f"{_REPO} (dataset_texas.tgz)")



def _load_purchase100(req: _Req) -> Dataset:
    return load_tabular(req, PURCHASE100_SPEC)


def _load_texas100(req: _Req) -> Dataset:
    return load_tabular(req, TEXAS100_SPEC)


_CITE = "Shokri, Stronati, Song & Shmatikov 2017, Membership Inference Attacks against ML Models"

PURCHASE100 = Source(DatasetInfo(
    "purchase100", "Purchase100: 600 binary purchase features, 100 classes (no official split)",
    _CITE, False, 197324, (600,), 100, f"dataset_purchase (or its .tgz, or purchase100.npz) from "
    f"{PURCHASE100_SPEC.url} in <root>"),
    _load_purchase100, order=80, aliases=("purchase",))

TEXAS100 = Source(DatasetInfo(
    "texas100", "Texas100: 6169 binary hospital-discharge features, 100 procedure classes "
                "(no official split)",
    _CITE, False, 67330, (6169,), 100, f"texas/100/feats + texas/100/labels (or dataset_texas.tgz, "
    f"or texas100.npz) from {TEXAS100_SPEC.url} in <root>"),
    _load_texas100, order=81, aliases=("texas",))

SOURCES = (PURCHASE100, TEXAS100)
