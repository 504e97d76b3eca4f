"""CIFAR-10 (Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images): the official
python pickle batches (or their .tar.gz), or the JPEG zip; read by :mod:`._cifar`."""

from __future__ import annotations

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.sources._cifar import CifarSpec, load_cifar
from privaudit.data.sources._common import SPLITS, Source, _Req

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
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
_CIFAR_ZIP = "CIFAR-10-images.zip"
_CIFAR_ZIP_SHA256 = "3054c506d6b9c55863eb76490483f9f2d56b5a8850a262d6cfb7d6d71537273c"


def _spec() -> CifarSpec:
    """Built at load time from the module constants (tests point them at local mirrors)."""
    return CifarSpec(
        name="cifar10", folders=("cifar10", "cifar10_jpeg", "cifar-10"),
        batch_dir="cifar-10-batches-py",
        batches={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        label_key="labels", classes=CIFAR10_CLASSES, batch_md5=_CIFAR_BATCH_MD5,
        url=_CIFAR_URL, tgz="cifar-10-python.tar.gz", tgz_hash=("md5", _CIFAR_TGZ_MD5),
        zip_name=_CIFAR_ZIP, zip_sha256=_CIFAR_ZIP_SHA256, mean=CIFAR10_MEAN, std=CIFAR10_STD)


def _load_cifar10(req: _Req) -> Dataset:
    return load_cifar(_spec(), req)


CIFAR10 = Source(DatasetInfo(
    "cifar10", "CIFAR-10 32x32 colour images: python pickle batches or the JPEG zip",
    "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (tech report)",
    False, 50000, (3, 32, 32), 10,
    f"{_CIFAR_URL} extracted in <root> (cifar-10-batches-py/), or {_CIFAR_ZIP} in <root>, "
    f"or download=True", n_test=10000, splits=SPLITS),
    _load_cifar10, order=40, aliases=("cifar-10", "cifar_10"))

SOURCES = (CIFAR10,)
