"""svhn: the cropped-digits format of SVHN, Netzer, Wang, Coates, Bissacco, Wu & Ng, "Reading
Digits in Natural Images with Unsupervised Feature Learning", NIPS Workshop on Deep Learning and
Unsupervised Feature Learning 2011: ``train_32x32.mat`` / ``test_32x32.mat`` (MATLAB v5, read
with ``scipy.io.loadmat``, which parses data and never runs code), ``X`` uint8 ``[32, 32, 3, N]``,
``y`` ``[N, 1]`` in 1..10 where 10 is the digit 0 (mapped to labels 0..9)."""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo, DataWarning, _describe
from privaudit.data.loaders import download as _download, file_hash
from privaudit.data.sources._common import SPLITS, Source, _download_dir, _find, _missing, _Req
from privaudit.errors import DataError

SVHN_MEAN, SVHN_STD = (0.4377, 0.4438, 0.4728), (0.198, 0.201, 0.197)

_SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
_SVHN_SHA256 = {"train_32x32.mat": "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
                "test_32x32.mat": "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"}


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, 3, 32, 32]`` and labels 0..9 of one ``*_32x32.mat``."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        d = loadmat(path, variable_names=("X", "y"))
    except NotImplementedError:                     # MATLAB v7.3 (HDF5) files
        raise DataError(f"svhn: {path} is a MATLAB v7.3 file; expected the official v5 "
                        f"{path.name}") from None
    except (MatReadError, ValueError, TypeError, KeyError, IndexError, OSError, EOFError,
            zlib.error) as e:
        raise DataError(f"svhn: unreadable file {path}: {type(e).__name__}: {e}") from None
    if "X" not in d or "y" not in d:
        raise DataError(f"svhn: {path} lacks variable 'X' or 'y'")
    x, y = d["X"], np.asarray(d["y"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 \
            or x.shape[:3] != (32, 32, 3):
        raise DataError(f"svhn: {path} 'X' is {_describe(x)}, expected uint8[32, 32, 3, N]")
    n = x.shape[3]
    if y.size != n or y.dtype.kind not in "uif":
        raise DataError(f"svhn: {path} 'y' is {_describe(y)}, expected {n} labels")
    y = y.reshape(n)
    bad = not np.all(np.isfinite(y)) or np.any(y != np.round(y))
    if n and (bad or y.min() < 1 or y.max() > 10):
        lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
        raise DataError(f"svhn: labels out of range in {path}: found {lo:g}..{hi:g}, expected "
                        f"integers 1..10 (10 is the digit 0)")
    return x.transpose(3, 2, 0, 1), y.astype(np.int64) % 10


def _svhn_file(req: _Req, part: str) -> Path:
    fname = _SVHN_FILES[part]
    p, looked = _find(req, ("svhn", "SVHN"), (fname,))
    if p is None and req.download:
        p = _download([_SVHN_URL + fname], _download_dir(req) / fname, sha256=_SVHN_SHA256[fname],
                      timeout=300)
    if p is None:
        raise _missing(req, fname, looked, f"get it from {_SVHN_URL}{fname} or call "
                       f"load_dataset('svhn', download=True)")
    if file_hash(p) != _SVHN_SHA256[fname]:
        warnings.warn(f"svhn: {p} differs from the official release (sha256); loaded after "
                      f"structural checks", DataWarning, stacklevel=4)
    return p


def _load_svhn(req: _Req) -> Dataset:
    parts = [_read_mat(_svhn_file(req, part)) for part in req.parts()]
    u8 = np.concatenate([x for x, _ in parts])
    y = np.concatenate([lab for _, lab in parts])
    u8, y = req.take(u8, y)
    return req.build("svhn", u8, y, 10, standard=(SVHN_MEAN, SVHN_STD))


SVHN = Source(DatasetInfo(
    "svhn", "SVHN cropped 32x32 house-number digits (train_32x32.mat / test_32x32.mat)",
    "Netzer, Wang, Coates, Bissacco, Wu & Ng 2011, Reading Digits in Natural Images with "
    "Unsupervised Feature Learning (NIPS workshop)",
    False, 73257, (3, 32, 32), 10,
    f"train_32x32.mat and test_32x32.mat from {_SVHN_URL} in <root>, or download=True",
    n_test=26032, splits=SPLITS),
    _load_svhn, order=42)

SOURCES = (SVHN,)
