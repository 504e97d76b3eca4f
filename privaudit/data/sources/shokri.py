"""purchase100 and texas100: the tabular releases of Shokri, Stronati, Song & Shmatikov,
"Membership Inference Attacks against Machine Learning Models", IEEE S&P 2017."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo, _describe
from privaudit.data.loaders import read_csv_numeric
from privaudit.data.sources._common import Source, _missing, _Req, _search_dirs
from privaudit.errors import DataError


_P100_URL = "https://github.com/privacytrustlab/datasets (dataset_purchase.tgz)"
_T100_URL = "https://github.com/privacytrustlab/datasets (dataset_texas.tgz)"


def _tabular_from_npz(p: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``purchase100.npz`` / ``texas100.npz`` as redistributed with arrays ``features`` and
    ``labels`` (labels one-hot [n, 100] or int [n] in 0..99)."""
    try:
        with np.load(p, allow_pickle=False) as f:
            if "features" not in f.files or "labels" not in f.files:
                raise DataError(f"{name}: {p} lacks array 'features' or 'labels' (has "
                                f"{', '.join(sorted(f.files))})")
            x, y = f["features"], f["labels"]
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{name}: unreadable file {p}: {type(e).__name__}: {e}") from None
    if y.ndim == 2:
        if y.shape[1] != 100 or not np.all(y.sum(1) == 1) or not np.all((y == 0) | (y == 1)):
            raise DataError(f"{name}: {p} 'labels' {_describe(y)} is not one-hot over 100 classes")
        y = y.argmax(1)
    return x, y


def _tabular_text(source: Any, where: str, label_col: bool) -> tuple[np.ndarray, np.ndarray | None]:
    t = read_csv_numeric(source, where=where, dtype=np.float32)
    if not label_col:
        return t, None
    return t[:, 1:], t[:, 0]


def _load_shokri(req: _Req, name: str, folder: str, n_features: int | None,
                 text_files: Sequence[Sequence[str]], tgz: str, tgz_members: Sequence[str],
                 npz: str, url: str) -> Dataset:
    """Purchase100: ``dataset_purchase`` = CSV rows ``label,f1..f600`` (labels 1..100).
    Texas100: ``texas/100/feats`` (CSV, binary features) + ``texas/100/labels`` (1..100 per line).
    Also accepted: the ``.tgz`` these come in, and the ``<name>.npz`` redistribution."""
    if req.split == "test":
        raise DataError(f"{name} has no test split: use split='train' and hold samples out yourself")
    dirs = _search_dirs(req, (folder,))
    looked: list[Path] = []
    x = y = None
    for d in dirs:
        for files in text_files:                  # plain text release
            ps = [d / f for f in files]
            looked.append(ps[0])
            if all(p.is_file() for p in ps):
                if len(ps) == 1:
                    x, y = _tabular_text(ps[0], str(ps[0]), True)
                else:
                    x, _ = _tabular_text(ps[0], str(ps[0]), False)
                    y = read_csv_numeric(ps[1], where=str(ps[1]))[:, 0]
                    if len(y) != len(x):
                        raise DataError(f"{name}: {ps[1]} has {len(y)} labels for {len(x)} rows "
                                        f"in {ps[0]}")
                y = y - 1                         # published labels are 1..100
                break
        if x is not None:
            break
        looked.append(d / tgz)
        if (d / tgz).is_file():
            try:
                with tarfile.open(d / tgz, "r:gz") as tf:
                    fx = tf.extractfile(tgz_members[0])
                    if len(tgz_members) == 1:
                        x, y = _tabular_text(fx, f"{d / tgz}::{tgz_members[0]}", True)
                    else:
                        x, _ = _tabular_text(fx, f"{d / tgz}::{tgz_members[0]}", False)
                        y = read_csv_numeric(tf.extractfile(tgz_members[1]),
                                             where=f"{d / tgz}::{tgz_members[1]}")[:, 0]
            except KeyError as e:
                raise DataError(f"{name}: {d / tgz} lacks member {e}") from None
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"{name}: unreadable archive {d / tgz}: {e}") from None
            if len(y) != len(x):
                raise DataError(f"{name}: {d / tgz} has {len(y)} labels for {len(x)} rows")
            y = y - 1
            break
        looked.append(d / npz)
        if (d / npz).is_file():
            x, y = _tabular_from_npz(d / npz, name)
            break
    if x is None:
        raise _missing(req, f"{text_files[0][0]} (or {tgz}, {npz})", looked,
                       f"get it from {url}; no automatic download")
    if x.ndim != 2 or (n_features is not None and x.shape[1] != n_features):
        raise DataError(f"{name}: features have shape {list(x.shape)}, expected [n, "
                        f"{n_features or 'd'}]")
    y = np.asarray(y)
    if y.ndim != 1 or np.any(y != np.round(y)):
        raise DataError(f"{name}: labels must be integers")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() > 99):
        raise DataError(f"{name}: labels out of range: found {int(y.min())}..{int(y.max())} "
                        f"(0-based), expected 0..99 (1..100 in the text release)")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name}: features contain NaN/inf")
    x, y = req.take(x, y)
    return Dataset(name, np.ascontiguousarray(x, dtype=np.float32), y, 100)


def _load_purchase100(req: _Req) -> Dataset:
    return _load_shokri(req, "purchase100", "purchase100", 600, [("dataset_purchase",)],
                        "dataset_purchase.tgz", ("dataset_purchase",), "purchase100.npz", _P100_URL)


def _load_texas100(req: _Req) -> Dataset:
    return _load_shokri(req, "texas100", "texas100", 6169,
                        [("texas/100/feats", "texas/100/labels"), ("feats", "labels")],
                        "dataset_texas.tgz", ("texas/100/feats", "texas/100/labels"),
                        "texas100.npz", _T100_URL)


PURCHASE100 = Source(DatasetInfo(
    "purchase100", "Purchase100: 600 binary purchase features, 100 classes (no official split)",
    "Shokri, Stronati, Song & Shmatikov 2017, Membership Inference Attacks against ML Models",
    False, 197324, (600,), 100, f"dataset_purchase (or its .tgz, or purchase100.npz) from "
    f"{_P100_URL} in <root>"),
    _load_purchase100, order=80, aliases=("purchase",))

TEXAS100 = Source(DatasetInfo(
    "texas100", "Texas100: binary hospital-discharge features, 100 procedure classes "
                "(no official split)",
    "Shokri, Stronati, Song & Shmatikov 2017, Membership Inference Attacks against ML Models",
    False, 67330, (6169,), 100, f"texas/100/feats + texas/100/labels (or dataset_texas.tgz, or "
    f"texas100.npz) from {_T100_URL} in <root>"),
    _load_texas100, order=81, aliases=("texas",))

SOURCES = (PURCHASE100, TEXAS100)
