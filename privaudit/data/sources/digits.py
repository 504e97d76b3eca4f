"""digits: scikit-learn's 8x8 handwritten digits (ships with scikit-learn: always offline)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.sources._common import Source, _Req, _single_split
from privaudit.errors import DataError


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images float64[1797, 8, 8], labels int64[1797])``, as ``sklearn.datasets.load_digits``
    returns them: read from the csv.gz scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``)
    without importing scikit-learn, whose import costs more than the default audit's attacks; its
    loader where the file is not found."""
    spec = importlib.util.find_spec("sklearn")
    csv = None if spec is None or not spec.submodule_search_locations else \
        Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits

        d = load_digits()
        return np.asarray(d.images, np.float64), np.asarray(d.target, np.int64)
    with gzip.open(csv, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def _load_digits(req: _Req) -> Dataset:
    _single_split(req, 1797)
    imgs, y = digits_arrays()
    if imgs.shape != (1797, 8, 8) or y.shape != (1797,):
        raise DataError(f"digits: scikit-learn returned images {list(imgs.shape)}, labels "
                        f"{list(y.shape)}; expected [1797, 8, 8] and [1797]")
    v = imgs / 16.0
    mean, std = (float(v.mean()),), (float(v.std()),)  # the dataset's own statistics (all 1797)
    imgs, y = req.take(imgs, y)
    return req.build("digits", imgs[:, None], y, 10, standard=(mean, std), scale=16.0)


DIGITS = Source(DatasetInfo(
    "digits", "8x8 handwritten digits (scikit-learn), values/16 normalised with its own mean/std",
    "Alpaydin & Kaynak 1998, UCI Optical Recognition of Handwritten Digits (via sklearn load_digits)",
    True, 1797, (1, 8, 8), 10, "ships with scikit-learn: nothing to get"),
    _load_digits, order=10)

SOURCES = (DIGITS,)
