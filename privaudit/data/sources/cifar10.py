"""CIFAR-10: the official python pickle batches (or their .tar.gz), or the JPEG zip."""

from __future__ import annotations

import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo, DataWarning, _describe
from privaudit.data.loaders import (
    atomic_save_npy,
    cache_dir,
    check_hash,
    decode_zip_images,
    download as _download,
    file_hash,
    safe_unpickle,
)
from privaudit.data.sources._common import (
    SPLITS,
    Source,
    _download_dir,
    _missing,
    _normalise_u8,
    _Req,
    _search_dirs,
)
from privaudit.errors import DataError

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


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


CIFAR10 = Source(DatasetInfo(
    "cifar10", "CIFAR-10 32x32 colour images: python pickle batches or the JPEG zip",
    "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (tech report)",
    False, 50000, (3, 32, 32), 10,
    f"{_CIFAR_URL} extracted in <root> (cifar-10-batches-py/), or {_CIFAR_ZIP} in <root>, "
    f"or download=True", n_test=10000, splits=SPLITS),
    _load_cifar10, order=40, aliases=("cifar-10", "cifar_10"))

SOURCES = (CIFAR10,)
