"""The CIFAR reader shared by ``cifar10.py`` and ``cifar100.py`` (Krizhevsky 2009, Learning
Multiple Layers of Features from Tiny Images): the official python pickle files (or their
``.tar.gz``), or a zip of JPEG/PNG images ``{train,test}/<class name>/*``.

Pickles are read with :func:`privaudit.data.loaders.safe_unpickle` (numpy/builtins only: a
dataset file never executes code). Not a source itself (the leading underscore keeps the registry
from collecting it); each dataset describes itself with a :class:`CifarSpec`.
"""

from __future__ import annotations

import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from privaudit.data.dataset import Dataset, DataWarning, _describe
from privaudit.data.loaders import (
    atomic_save_npy,
    cache_dir,
    check_hash,
    decode_zip_images,
    download as _download,
    file_hash,
    safe_extract,
    safe_unpickle,
)
from privaudit.data.sources._common import _download_dir, _missing, _Req, _search_dirs
from privaudit.errors import DataError

_IMG_EXT = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant's files live and what they hold."""

    name: str
    folders: tuple[str, ...]             # dataset folders searched (see _common._search_dirs)
    batch_dir: str                       # the folder the official .tar.gz extracts to
    batches: dict[str, tuple[str, ...]]  # split -> pickle file names in batch_dir
    label_key: str                       # "labels" (CIFAR-10) or "fine_labels" (CIFAR-100)
    classes: tuple[str, ...]             # class names = zip folder names, in label order
    batch_md5: dict[str, str]            # md5 of the official pickle files
    url: str
    tgz: str
    tgz_hash: tuple[str, str]            # (algorithm, hex digest) of the official .tar.gz
    zip_name: str
    zip_sha256: str | None               # None: no official zip, structural checks only
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _read_batch(spec: CifarSpec, path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = safe_unpickle(path, encoding="bytes")
    if not isinstance(d, dict):
        raise DataError(f"{spec.name}: {path} is not a pickled dict (got {type(d).__name__})")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or spec.label_key not in d:
        raise DataError(f"{spec.name}: {path} lacks key 'data' or {spec.label_key!r} (has "
                        f"{sorted(map(str, d))})")
    data, labels = d["data"], np.asarray(d[spec.label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        raise DataError(f"{spec.name}: {path} 'data' is {_describe(data)}, expected uint8[n, 3072]")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{spec.name}: {path} has {labels.size} labels ({labels.dtype}) for "
                        f"{len(data)} images")
    top = len(spec.classes) - 1
    if len(labels) and (labels.min() < 0 or labels.max() > top):
        raise DataError(f"{spec.name}: labels out of range in {path}: found "
                        f"{int(labels.min())}..{int(labels.max())}, expected 0..{top}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _from_batches(spec: CifarSpec, req: _Req, batch_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, unofficial = [], [], []
    for part in req.parts():
        for b in spec.batches[part]:
            p = batch_dir / b
            if not p.is_file():
                raise DataError(f"{spec.name}: missing file {p} (the batch folder has "
                                f"{sorted(q.name for q in batch_dir.iterdir())})")
            x, y = _read_batch(spec, p)
            if file_hash(p, "md5") != spec.batch_md5[b]:
                unofficial.append(b)
            xs.append(x)
            ys.append(y)
    if unofficial:
        warnings.warn(f"{spec.name}: {', '.join(unofficial)} in {batch_dir} differ from the "
                      f"official release (md5); loaded after structural checks", DataWarning,
                      stacklevel=5)
    return np.concatenate(xs), np.concatenate(ys)


def _zip_listing(spec: CifarSpec, zf: zipfile.ZipFile, zpath: Path,
                 part: str) -> tuple[list[str], np.ndarray]:
    by_class: dict[str, list[str]] = {}
    for m in zf.namelist():
        bits = m.split("/")
        if len(bits) == 3 and bits[0] == part and bits[2].lower().endswith(_IMG_EXT):
            if bits[1] not in spec.classes:
                raise DataError(f"{spec.name}: unexpected class folder {part}/{bits[1]}/ in {zpath}; "
                                f"expected one of the {len(spec.classes)} {spec.name} class names")
            by_class.setdefault(bits[1], []).append(m)
    if not by_class:
        raise DataError(f"{spec.name}: {zpath} has no images under {part}/<class>/")
    members: list[str] = []
    labels: list[int] = []
    for c, cname in enumerate(spec.classes):
        ms = sorted(by_class.get(cname, []))
        members += ms
        labels += [c] * len(ms)
    return members, np.asarray(labels, np.int64)


def _decode_part(spec: CifarSpec, zf: zipfile.ZipFile, zpath: Path, sha: str, part: str,
                 members: list[str], rows: np.ndarray | None) -> np.ndarray:
    """uint8 images ``members[rows]`` (all when ``rows`` is None: then cached for next time)."""
    cache = cache_dir() / spec.name / f"jpeg-{sha[:16]}-{part}-u8.npy"
    if cache.is_file():
        try:
            full = np.load(cache, mmap_mode="r", allow_pickle=False)
            if full.shape == (len(members), 3, 32, 32) and full.dtype == np.uint8:
                return np.asarray(full if rows is None else full[rows])
        except (OSError, ValueError):
            pass
    if rows is not None:
        return decode_zip_images(zf, [members[i] for i in rows], shape=(3, 32, 32),
                                 where=str(zpath))
    arr = decode_zip_images(zf, members, shape=(3, 32, 32), where=str(zpath))
    try:
        atomic_save_npy(cache, arr)
    except OSError as e:
        warnings.warn(f"{spec.name}: could not write cache {cache}: {e}", DataWarning,
                      stacklevel=5)
    return arr


def _from_zip(spec: CifarSpec, req: _Req, zpath: Path) -> tuple[np.ndarray, np.ndarray]:
    if spec.zip_sha256 is not None:
        check_hash(zpath, spec.zip_sha256, "sha256", f"expected the {spec.name} zip {spec.zip_name}")
    sha = file_hash(zpath)
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{spec.name}: unreadable zip {zpath}: {e}") from None
    with zf:
        listings = [(part, *_zip_listing(spec, zf, zpath, part)) for part in req.parts()]
        y = np.concatenate([lab for _, _, lab in listings])
        idx = req.select(y)
        out, offset = [], 0
        for part, members, _ in listings:
            cnt = len(members)
            rows = None if idx is None else idx[(idx >= offset) & (idx < offset + cnt)] - offset
            offset += cnt
            out.append(_decode_part(spec, zf, zpath, sha, part, members, rows))
    return np.concatenate(out), (y if idx is None else y[idx])


def _extract_tgz(spec: CifarSpec, tgz: Path, dest: Path) -> Path:
    algo, digest = spec.tgz_hash
    check_hash(tgz, digest, algo, "delete it and re-download (download=True)")
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            members = [m for m in tf.getmembers()
                       if m.name.startswith(spec.batch_dir + "/") and m.isfile()]
            safe_extract(tf, dest, members)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{spec.name}: cannot extract {tgz}: {e}") from None
    return dest / spec.batch_dir


def _locate(spec: CifarSpec, req: _Req) -> tuple[Path | None, Path | None, list[Path]]:
    """``(batch_dir, zip, looked)``: the pickle folder or the image zip (extracting a .tar.gz
    found on the way), and every place looked."""
    first, last = spec.batches["train"][0], spec.batches["test"][-1]
    looked: list[Path] = []
    if req.root is not None and req.root.is_file():
        if not req.root.name.endswith((".tar.gz", ".tgz")):
            return None, req.root, looked
        done = req.root.parent / spec.batch_dir        # the official archive itself
        if (done / first).is_file() and (done / last).is_file():
            return done, None, looked
        return _extract_tgz(spec, req.root, req.root.parent), None, looked
    for d in _search_dirs(req, spec.folders):
        for cand in (d / spec.batch_dir, d):
            looked.append(cand / first)
            if (cand / first).is_file() or (cand / last).is_file():
                return cand, None, looked
        looked.append(d / spec.zip_name)
        if (d / spec.zip_name).is_file():
            return None, d / spec.zip_name, looked
        looked.append(d / spec.tgz)
        if (d / spec.tgz).is_file():
            return _extract_tgz(spec, d / spec.tgz, d), None, looked
    return None, None, looked


def load_cifar(spec: CifarSpec, req: _Req) -> Dataset:
    """The requested split of a CIFAR variant, from pickles, their .tar.gz, or the image zip."""
    batch_dir, zpath, looked = _locate(spec, req)
    if batch_dir is None and zpath is None and req.download:
        dl = _download_dir(req)
        algo, digest = spec.tgz_hash
        tgz = _download([spec.url], dl / spec.tgz, timeout=300, **{algo: digest})
        batch_dir = _extract_tgz(spec, tgz, dl)
    if batch_dir is None and zpath is None:
        raise _missing(req, f"{spec.batch_dir}/{spec.batches['train'][0]} or {spec.zip_name}",
                       looked, f"get {spec.url} (extract it) or call load_dataset({spec.name!r}, "
                       f"download=True)")
    if zpath is not None:
        u8, y = _from_zip(spec, req, zpath)
    else:
        u8, y = req.take(*_from_batches(spec, req, batch_dir))
    return req.build(spec.name, u8, y, len(spec.classes), standard=(spec.mean, spec.std))
