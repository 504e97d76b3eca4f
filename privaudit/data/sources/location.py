"""location: the Location data set of Shokri, Stronati, Song & Shmatikov, "Membership Inference
Attacks against Machine Learning Models", IEEE S&P 2017 (Foursquare check-ins in Bangkok, Yang et
al. 2016): 5,010 users, 446 binary features (visited region/category), 30 classes. The file
``bangkok`` of ``dataset_location.tgz`` (privacytrustlab/datasets, ML Privacy Meter; also used by
ML-Leaks) holds rows ``"label",f1..f446`` with labels 1..30; read by :mod:`.shokri`."""

from __future__ import annotations

from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.sources._common import Source, _Req
from privaudit.data.sources.shokri import TabularSpec, load_tabular

_LOCATION_URL = "https://github.com/privacytrustlab/datasets/raw/master/dataset_location.tgz"
_LOCATION_TGZ_SHA256 = "927203f85a868f8ee17a0ded1dc61699efe602167beabe34fbf45b4b1de94b33"

LOCATION_SPEC = TabularSpec(
    "location", 5010, 446, 30, (("bangkok",), ("bangkok.csv",)), "dataset_location.tgz",
    ("bangkok",), "location.npz", _LOCATION_URL, tgz_sha256=_LOCATION_TGZ_SHA256)


def _load_location(req: _Req) -> Dataset:
    return load_tabular(req, LOCATION_SPEC)


LOCATION = Source(DatasetInfo(
    "location", "Location (Foursquare, Bangkok): 446 binary features, 30 classes "
                "(no official split)",
    "Shokri, Stronati, Song & Shmatikov 2017, Membership Inference Attacks against ML Models",
    False, 5010, (446,), 30, f"bangkok (or dataset_location.tgz, or location.npz) from "
    f"{_LOCATION_URL} in <root>, or download=True"),
    _load_location, order=82)

SOURCES = (LOCATION,)
