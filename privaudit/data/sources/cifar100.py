"""CIFAR-100 (Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images): 100 fine
classes, the official python pickles ``cifar-100-python/{train,test}`` (key ``fine_labels``) or
their .tar.gz, or a zip of images ``{train,test}/<fine label name>/*.jpg|png``; read by
:mod:`._cifar` (the same reader as CIFAR-10)."""

from __future__ import annotations

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.sources._cifar import CifarSpec, load_cifar
from privaudit.data.sources._common import SPLITS, Source, _Req

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# The fine label names in label order (``fine_label_names`` of the official ``meta`` file).
CIFAR100_CLASSES = tuple("""
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
    crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
    lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
    oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
    spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor
    train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split())

_CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
_CIFAR100_TGZ = "cifar-100-python.tar.gz"
# sha256 of the official archive (its md5 on the CIFAR page is eb9058c3a382ffc7106e4002c42a8d85)
_CIFAR100_TGZ_SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
_CIFAR100_FILE_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d",
                      "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}
_CIFAR100_ZIP = "CIFAR-100-images.zip"


def _spec() -> CifarSpec:
    return CifarSpec(
        name="cifar100", folders=("cifar100", "cifar-100", "cifar100_jpeg"),
        batch_dir="cifar-100-python", batches={"train": ("train",), "test": ("test",)},
        label_key="fine_labels", classes=CIFAR100_CLASSES, batch_md5=_CIFAR100_FILE_MD5,
        url=_CIFAR100_URL, tgz=_CIFAR100_TGZ, tgz_hash=("sha256", _CIFAR100_TGZ_SHA256),
        zip_name=_CIFAR100_ZIP, zip_sha256=None, mean=CIFAR100_MEAN, std=CIFAR100_STD)


def _load_cifar100(req: _Req) -> Dataset:
    return load_cifar(_spec(), req)


CIFAR100 = Source(DatasetInfo(
    "cifar100", "CIFAR-100 32x32 colour images, 100 fine classes: python pickles or an image zip",
    "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (tech report)",
    False, 50000, (3, 32, 32), 100,
    f"{_CIFAR100_URL} extracted in <root> (cifar-100-python/), "
    f"or {_CIFAR100_ZIP} in <root>, or download=True", n_test=10000, splits=SPLITS),
    _load_cifar100, order=41, aliases=("cifar-100", "cifar_100"))

SOURCES = (CIFAR100,)
