"""cinic10: CINIC-10, Darlow, Crowley, Antoniou & Storkey, "CINIC-10 is not ImageNet or CIFAR-10",
arXiv:1810.03505, 2018: 270,000 32x32 RGB PNGs (CIFAR-10 plus downsampled ImageNet) in the
CIFAR-10 classes, as folders ``{train,valid,test}/<class>/*.png`` (90,000 images each).

Splits: ``train`` = ``train/``, ``test`` = ``test/``, ``all`` = both; ``valid/`` is not read.
Images are decoded with Pillow (a matplotlib dependency); any image that is not 32x32 is refused.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.loaders import check_hash, decode_images, download as _download, safe_extract
from privaudit.data.sources._common import (
    SPLITS,
    Source,
    _download_dir,
    _missing,
    _Req,
    _search_dirs,
)
from privaudit.data.sources.cifar10 import CIFAR10_CLASSES
from privaudit.errors import DataError

CINIC10_CLASSES = CIFAR10_CLASSES
CINIC10_MEAN = (0.47889522, 0.47227842, 0.43047404)
CINIC10_STD = (0.24205776, 0.23828046, 0.25874835)

_CINIC_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"
_CINIC_TGZ = "CINIC-10.tar.gz"
_CINIC_TGZ_MD5 = "6ee4d0c996905fe93221de577967a372"   # no sha256 is published for this archive
_CINIC_DIR = "CINIC-10"                               # where the archive is extracted


def _listing(base: Path, part: str) -> tuple[list[Path], np.ndarray]:
    """The PNGs of ``base/part/<class>/`` in class order (then file name), and their labels."""
    folder = base / part
    if not folder.is_dir():
        raise DataError(f"cinic10: missing folder {folder} (expected {part}/<class>/*.png)")
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in CINIC10_CLASSES)
    if extra:
        raise DataError(f"cinic10: unexpected class folder {folder / extra[0]}; expected "
                        f"{', '.join(CINIC10_CLASSES)}")
    files: list[Path] = []
    labels: list[int] = []
    for c, cname in enumerate(CINIC10_CLASSES):
        d = folder / cname
        ps = sorted(p for p in d.iterdir() if p.suffix.lower() == ".png") if d.is_dir() else []
        files += ps
        labels += [c] * len(ps)
    if not files:
        raise DataError(f"cinic10: {folder} has no images under <class>/*.png")
    return files, np.asarray(labels, np.int64)


def _extract(tgz: Path, dest: Path) -> Path:
    if all((dest / part).is_dir() for part in ("train", "test")):
        return dest                                   # extracted before
    check_hash(tgz, _CINIC_TGZ_MD5, "md5", "delete it and re-download (download=True)")
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            members = [m for m in tf.getmembers() if m.isfile()
                       and m.name.removeprefix("./").split("/")[0] in ("train", "valid", "test")]
            safe_extract(tf, dest, members)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cinic10: cannot extract {tgz}: {e}") from None
    return dest


def _locate(req: _Req) -> Path:
    """The folder holding ``train/``, ``valid/``, ``test/`` (extracting/downloading the archive)."""
    if req.root is not None and req.root.is_file():
        return _extract(req.root, req.root.parent / _CINIC_DIR)
    looked: list[Path] = []
    for d in _search_dirs(req, ("cinic10", "cinic-10", _CINIC_DIR)):
        for cand in (d, d / _CINIC_DIR):
            looked.append(cand / req.parts()[0])
            if all((cand / part).is_dir() for part in req.parts()):
                return cand
        looked.append(d / _CINIC_TGZ)
        if (d / _CINIC_TGZ).is_file():
            return _extract(d / _CINIC_TGZ, d / _CINIC_DIR)
    if req.download:
        tgz = _download([_CINIC_URL], _download_dir(req) / _CINIC_TGZ, md5=_CINIC_TGZ_MD5,
                        timeout=600)
        return _extract(tgz, tgz.parent / _CINIC_DIR)
    raise _missing(req, f"{req.parts()[0]}/<class>/*.png (or {_CINIC_TGZ})", looked,
                   f"get {_CINIC_URL} (extract it) or call load_dataset('cinic10', download=True)")


def _load_cinic10(req: _Req) -> Dataset:
    base = _locate(req)
    listings = [_listing(base, part) for part in req.parts()]
    files = [f for fs, _ in listings for f in fs]
    y = np.concatenate([lab for _, lab in listings])
    idx = req.select(y)
    if idx is not None:
        files, y = [files[i] for i in idx], y[idx]
    u8 = decode_images(lambda f: Path(f).read_bytes(), [str(f) for f in files],
                       shape=(3, 32, 32), where="")
    return req.build("cinic10", u8, y, 10, standard=(CINIC10_MEAN, CINIC10_STD))

CINIC10 = Source(DatasetInfo(
    "cinic10", "CINIC-10: 32x32 RGB PNGs (CIFAR-10 + downsampled ImageNet), 10 CIFAR-10 classes",
    "Darlow, Crowley, Antoniou & Storkey 2018, CINIC-10 is not ImageNet or CIFAR-10, "
    "arXiv:1810.03505",
    False, 90000, (3, 32, 32), 10,
    f"{_CINIC_TGZ} from {_CINIC_URL} (or its train/valid/test folders) in <root>, or download=True",
    n_test=90000, splits=SPLITS),
    _load_cinic10, order=43, aliases=("cinic-10", "cinic_10"))

SOURCES = (CINIC10,)
