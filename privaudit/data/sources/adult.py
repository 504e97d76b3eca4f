"""adult: UCI Adult census income (``adult.data`` / ``adult.test``), one-hot encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.loaders import check_hash, download as _download
from privaudit.data.sources._common import SPLITS, Source, _download_dir, _find, _missing, _Req
from privaudit.errors import DataError


_ADULT_FILES = {"train": "adult.data", "test": "adult.test"}
_ADULT_SHA256 = {"adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
                 "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"}
_ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
_ADULT_NUMERIC = (0, 2, 4, 10, 11, 12)      # age, fnlwgt, education-num, capital-gain/-loss, hours
_ADULT_CATEGORICAL = (1, 3, 5, 6, 7, 8, 9, 13)


def _adult_rows(path: Path) -> tuple[list[list[str]], np.ndarray]:
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise DataError(f"adult: cannot read {path}: {e.strerror or e}") from None
    rows, labels = [], []
    for ln, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("|"):   # blank lines; adult.test's junk first line
            continue
        f = [t.strip() for t in line.split(",")]
        if len(f) != 15:
            raise DataError(f"adult: {path} line {ln} has {len(f)} comma-separated fields, "
                            f"expected 15")
        lab = f[14].rstrip(".")                 # adult.test labels end in '.'
        if lab not in (">50K", "<=50K"):
            raise DataError(f"adult: {path} line {ln} has label {f[14]!r}, expected '>50K' or "
                            f"'<=50K'")
        rows.append(f[:14])
        labels.append(lab == ">50K")
    if not rows:
        raise DataError(f"adult: {path} has no data rows")
    return rows, np.asarray(labels, np.int64)


def _adult_numeric(rows: list[list[str]], path: Path) -> np.ndarray:
    try:
        return np.array([[float(r[i]) for i in _ADULT_NUMERIC] for r in rows], np.float64)
    except ValueError as e:
        raise DataError(f"adult: {path} has a non-numeric value in a numeric column: {e}") from None


def _load_adult(req: _Req) -> Dataset:
    paths: dict[str, Path] = {}
    for part, fname in _ADULT_FILES.items():     # adult.data is always needed (vocabulary, stats)
        if part == "test" and req.split == "train":
            continue
        p, looked = _find(req, ("adult",), (fname,))
        if p is None and req.download:
            p = _download([_ADULT_URL + fname], _download_dir(req) / fname,
                          sha256=_ADULT_SHA256[fname])
        if p is None:
            raise _missing(req, fname, looked, f"get it from {_ADULT_URL}{fname} or call "
                           f"load_dataset('adult', download=True)")
        check_hash(p, _ADULT_SHA256[fname], "sha256", "delete it and re-download (download=True)")
        paths[part] = p
    train_rows, train_y = _adult_rows(paths["train"])
    num_train = _adult_numeric(train_rows, paths["train"])
    mu, sd = num_train.mean(0), num_train.std(0)
    sd[sd == 0] = 1.0
    vocab = [sorted({r[i] for r in train_rows}) for i in _ADULT_CATEGORICAL]  # '?' is a category

    def encode(rows: list[list[str]], num: np.ndarray) -> np.ndarray:
        blocks = [((num - mu) / sd).astype(np.float32)]
        for j, i in enumerate(_ADULT_CATEGORICAL):
            pos = {v: k for k, v in enumerate(vocab[j])}
            onehot = np.zeros((len(rows), len(vocab[j])), np.float32)
            col = np.array([pos.get(r[i], -1) for r in rows])
            ok = col >= 0                       # a category unseen in adult.data: all zeros
            onehot[np.flatnonzero(ok), col[ok]] = 1.0
            blocks.append(onehot)
        return np.concatenate(blocks, axis=1)

    xs, ys = [], []
    for part in req.parts():
        if part == "train":
            xs.append(encode(train_rows, num_train))
            ys.append(train_y)
        else:
            rows, y = _adult_rows(paths["test"])
            xs.append(encode(rows, _adult_numeric(rows, paths["test"])))
            ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    x, y = req.take(x, y)
    return req.build("adult", x, y, 2)


ADULT = Source(DatasetInfo(
    "adult", "UCI Adult census income: 6 standardised numeric + one-hot categorical, binary label",
    "Becker & Kohavi 1996, UCI Machine Learning Repository, doi:10.24432/C5XW20",
    False, 32561, (108,), 2, f"adult.data and adult.test from {_ADULT_URL} in <root>, or "
    f"download=True", n_test=16281, splits=SPLITS),
    _load_adult, order=60)

SOURCES = (ADULT,)
