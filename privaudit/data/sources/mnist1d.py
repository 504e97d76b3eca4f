"""mnist1d: MNIST-1D (Greydanus 2020), the pickled 40-d sequences of its reference release."""

from __future__ import annotations

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo, _describe
from privaudit.data.loaders import download as _download, safe_unpickle
from privaudit.data.sources._common import SPLITS, Source, _download_dir, _find, _missing, _Req
from privaudit.errors import DataError


_MNIST1D_FILE = "mnist1d_data.pkl"
_MNIST1D_URL = "https://github.com/greydanus/mnist1d/raw/master/mnist1d_data.pkl"


def _load_mnist1d(req: _Req) -> Dataset:
    # Structural checks only (no checksum): the pickle can be regenerated with the mnist1d
    # package's make_dataset(), which gives the same arrays but not the same pickle bytes.
    if req.root is not None and req.root.is_file():
        p, looked = req.root, [req.root]
    else:
        p, looked = _find(req, ("mnist1d",), (_MNIST1D_FILE,))
    if p is None and req.download:
        p = _download([_MNIST1D_URL], _download_dir(req) / _MNIST1D_FILE)
    if p is None:
        raise _missing(req, _MNIST1D_FILE, looked, f"get it from {_MNIST1D_URL}, or pickle "
                       f"mnist1d.data.make_dataset(), or call load_dataset('mnist1d', download=True)")
    d = safe_unpickle(p, encoding="latin1")
    if not isinstance(d, dict):
        raise DataError(f"mnist1d: {p} is not a pickled dict (got {type(d).__name__})")
    xs, ys = [], []
    for part in req.parts():
        kx, ky = ("x", "y") if part == "train" else ("x_test", "y_test")
        if kx not in d or ky not in d:
            raise DataError(f"mnist1d: {p} lacks key {kx!r} or {ky!r} (has {sorted(map(str, d))})")
        x, y = np.asarray(d[kx]), np.asarray(d[ky])
        if x.ndim != 2 or x.dtype.kind not in "fiu":
            raise DataError(f"mnist1d: {p} {kx!r} is {_describe(x)}, expected float[n, 40]")
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise DataError(f"mnist1d: {p} {ky!r} is {_describe(y)}, expected int[{len(x)}]")
        xs.append(x.astype(np.float32))
        ys.append(y.astype(np.int64))
    if len(xs) > 1 and xs[0].shape[1] != xs[1].shape[1]:
        raise DataError(f"mnist1d: {p} train and test have {xs[0].shape[1]} vs {xs[1].shape[1]} "
                        f"features")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"mnist1d: labels out of range in {p}: found {int(y.min())}..{int(y.max())}, "
                        f"expected 0..9")
    x, y = req.take(x, y)
    return req.build("mnist1d", x, y, 10)


MNIST1D = Source(DatasetInfo(
    "mnist1d", "MNIST-1D: 40-d procedurally generated 1-D digit sequences (tabular)",
    "Greydanus 2020, Scaling down deep learning, arXiv:2011.14439",
    False, 4000, (40,), 10, f"{_MNIST1D_FILE} from {_MNIST1D_URL} in <root>, or download=True",
    n_test=1000, splits=SPLITS),
    _load_mnist1d, order=70, aliases=("mnist-1d",))

SOURCES = (MNIST1D,)
