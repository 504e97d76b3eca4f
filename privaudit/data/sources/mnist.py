"""MNIST and Fashion-MNIST: the four IDX ``*-ubyte(.gz)`` files of each, one shared reader."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.loaders import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    check_hash,
    download as _download,
    file_hash,
    read_bytes_maybe_gz,
    read_idx,
)
from privaudit.data.sources._common import (
    MNIST_MEAN,
    MNIST_STD,
    SPLITS,
    Source,
    _download_dir,
    _find,
    _missing,
    _Req,
)
from privaudit.errors import DataError

FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# MNIST: sha256 of the .gz as distributed, and of the decompressed IDX content (so that a
# re-compressed .gz from another mirror, or an already-gunzipped file, is still accepted).
_MNIST_SHA256 = {
    "train-images-idx3-ubyte": ("db8f937d487057fb14a9f0fbe97f0bc8d311ab41b750d41e1ff37c43b9e55e19",
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
_MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://yann.lecun.com/exdb/mnist/"]

# Fashion-MNIST: the published MD5s of the official .gz files (the ones torchvision verifies,
# https://github.com/zalandoresearch/fashion-mnist). No SHA-256 is published and the files are not
# available offline here, so: .gz files are checked against these MD5s; already-gunzipped files
# get only the structural IDX checks (magic, dims, exact length, label range).
_FASHION_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
_FASHION_MIRRORS = ["https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]


def _idx_file(req: _Req, folders: Sequence[str], base: str, magic: int) -> np.ndarray:
    fashion = req.name == "fashion-mnist"
    mirrors = _FASHION_MIRRORS if fashion else _MNIST_MIRRORS
    path, looked = _find(req, folders, (base + ".gz", base))
    if path is None and req.download:
        dest = _download_dir(req) / (base + ".gz")
        if fashion:
            path = _download([m + base + ".gz" for m in mirrors], dest, md5=_FASHION_MD5[base])
        else:
            path = _download([m + base + ".gz" for m in mirrors], dest, sha256=_MNIST_SHA256[base][0])
    if path is None:
        raise _missing(req, base + ".gz", looked,
                       f"get it from {mirrors[0]}{base}.gz or call load_dataset({req.name!r}, "
                       f"download=True)")
    hint = "delete it and re-download (download=True)"
    gz = path.suffix == ".gz"
    if fashion and gz:
        check_hash(path, _FASHION_MD5[base], "md5", hint)
    if not fashion:
        gz_sha, raw_sha = _MNIST_SHA256[base]
        if not (gz and file_hash(path) == gz_sha):
            raw = read_bytes_maybe_gz(path)    # a re-compressed or gunzipped copy: check content
            got_raw = hashlib.sha256(raw).hexdigest()
            if got_raw != raw_sha:
                got = file_hash(path) if gz else got_raw
                exp = f"{gz_sha} (or {raw_sha} decompressed)" if gz else raw_sha
                raise DataError(f"sha256 mismatch for {path}: expected {exp}, got {got} "
                                f"(corrupt or not the official file; {hint})")
            return read_idx(path, magic, data=raw)
    return read_idx(path, magic)


def _load_idx_dataset(req: _Req, folders: Sequence[str], mean: tuple[float, ...],
                      std: tuple[float, ...]) -> Dataset:
    xs, ys = [], []
    for part in req.parts():
        img_base, lab_base = _IDX_FILES[part]
        imgs = _idx_file(req, folders, img_base, IDX_IMAGES_MAGIC)
        labs = _idx_file(req, folders, lab_base, IDX_LABELS_MAGIC)
        if imgs.ndim != 3 or imgs.shape[1:] != (28, 28):
            raise DataError(f"{req.name}: {img_base} has images of shape {list(imgs.shape[1:])}, "
                            f"expected [28, 28]")
        if labs.ndim != 1 or len(labs) != len(imgs):
            raise DataError(f"{req.name}: {lab_base} has {len(labs)} labels but {img_base} has "
                            f"{len(imgs)} images")
        if len(labs) and labs.max() > 9:
            raise DataError(f"{req.name}: labels out of range in {lab_base}: found "
                            f"0..{int(labs.max())}, expected 0..9")
        xs.append(imgs)
        ys.append(labs.astype(np.int64))
    u8 = np.concatenate(xs) if len(xs) > 1 else xs[0]
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    u8, y = req.take(u8, y)
    return req.build(req.name, u8[:, None], y, 10, standard=(mean, std))


def _load_mnist(req: _Req) -> Dataset:
    return _load_idx_dataset(req, ("mnist", "MNIST/raw"), MNIST_MEAN, MNIST_STD)


def _load_fashion(req: _Req) -> Dataset:
    return _load_idx_dataset(req, ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
                             FASHION_MEAN, FASHION_STD)


MNIST = Source(DatasetInfo(
    "mnist", "MNIST handwritten digits, IDX .gz files, sha256-verified",
    "LeCun, Bottou, Bengio & Haffner 1998; http://yann.lecun.com/exdb/mnist/",
    False, 60000, (1, 28, 28), 10,
    f"the four *-ubyte.gz files from {_MNIST_MIRRORS[0]} in <root>, or download=True",
    n_test=10000, splits=SPLITS),
    _load_mnist, order=30)

FASHION_MNIST = Source(DatasetInfo(
    "fashion-mnist", "Zalando Fashion-MNIST, IDX .gz files (md5 of the official .gz checked)",
    "Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747",
    False, 60000, (1, 28, 28), 10,
    f"the four *-ubyte.gz files from {_FASHION_MIRRORS[0]} in <root>, or download=True",
    n_test=10000, splits=SPLITS),
    _load_fashion, order=31, aliases=("fashion_mnist", "fashionmnist", "fmnist"))

SOURCES = (MNIST, FASHION_MNIST)
