"""Over/under-represented mixtures (Choi et al. design) and image conversions."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from privaudit.data.mixtures import (
    GROUP_OVER, GROUP_UNDER, augment_images, make_mixture, ood_random, singletons,
    smallest_cluster, to_grayscale_resized)
from privaudit.errors import ConfigError, DataError


def _labelled_images(n, n_classes, shape, offset, seed):
    """Images whose pixel value encodes (offset + label), so that label consistency is checkable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    x = np.broadcast_to((offset + y)[:, None, None, None], (n,) + shape).astype(np.float32).copy()
    return x, y


def test_make_mixture_sizes_groups_labels_and_balance():
    base_x, base_y = _labelled_images(600, 10, (1, 4, 4), 0, seed=0)
    extra_x, extra_y = _labelled_images(500, 10, (1, 4, 4), 1000, seed=1)
    x, y, group = make_mixture(base_x, base_y, extra_x, extra_y, n_under=105, seed=3)
    assert x.shape == (705, 1, 4, 4) and y.shape == (705,) and group.shape == (705,)
    assert group.dtype == np.int8 and y.dtype == np.int64
    assert (group[:600] == GROUP_OVER).all() and (group[600:] == GROUP_UNDER).all()
    np.testing.assert_array_equal(x[:600], base_x)
    # every sample keeps the label it came with (pixel value = offset + label)
    np.testing.assert_array_equal(x[group == 0, 0, 0, 0], y[group == 0])
    np.testing.assert_array_equal(x[group == 1, 0, 0, 0] - 1000, y[group == 1])
    # class-balanced draw: 105 = 10 * 10 + 5 -> every class 10 or 11 times
    counts = np.bincount(y[group == 1], minlength=10)
    assert counts.sum() == 105 and set(counts.tolist()) <= {10, 11}
    # deterministic given the seed, different for another seed
    x2, y2, _ = make_mixture(base_x, base_y, extra_x, extra_y, n_under=105, seed=3)
    np.testing.assert_array_equal(x2, x)
    x3, _, _ = make_mixture(base_x, base_y, extra_x, extra_y, n_under=105, seed=4)
    assert not np.array_equal(x3, x)
    # no extra sample drawn twice
    extra_vals = x[group == 1, 0, 0, 0]
    assert extra_vals.size == 105


def test_make_mixture_label_map_and_errors():
    base_x, base_y = _labelled_images(200, 10, (1, 2, 2), 0, seed=0)
    # CIFAR-100-like extra set: 20 classes, only the first 10 are used, mapped c -> 9 - c
    extra_x, extra_y = _labelled_images(800, 20, (1, 2, 2), 1000, seed=1)
    mapping = {c: 9 - c for c in range(10)}
    x, y, group = make_mixture(base_x, base_y, extra_x, extra_y, n_under=50, seed=0,
                               extra_label_map=mapping)
    orig = x[group == 1, 0, 0, 0] - 1000
    assert (orig < 10).all()
    np.testing.assert_array_equal(y[group == 1], 9 - orig)
    np.testing.assert_array_equal(np.bincount(y[group == 1], minlength=10), 5)
    # array form of the map, -1 = unused
    table = np.full(20, -1)
    table[:10] = np.arange(10)
    _, y_arr, g_arr = make_mixture(base_x, base_y, extra_x, extra_y, n_under=50, seed=0,
                                   extra_label_map=table)
    assert (y_arr[g_arr == 1] < 10).all()
    with pytest.raises(DataError):      # extra labels 10..19 do not exist in the base set
        make_mixture(base_x, base_y, extra_x, extra_y, n_under=50, seed=0)
    with pytest.raises(DataError):      # shapes differ
        make_mixture(base_x, base_y, np.zeros((10, 3, 2, 2)), np.zeros(10, int), n_under=5, seed=0)
    with pytest.raises(DataError):      # a class too small for a balanced draw
        small_y = np.concatenate([[0], np.repeat(np.arange(1, 10), 10)])
        make_mixture(base_x, base_y, np.zeros((91, 1, 2, 2)), small_y, n_under=20, seed=0)
    with pytest.raises(ConfigError):
        make_mixture(base_x, base_y, extra_x, extra_y, n_under=10_000, seed=0,
                     extra_label_map=mapping)


def test_ood_random_masks():
    y = np.repeat(np.arange(4), 25)
    mask = ood_random(y, n=10, seed=0)
    assert mask.dtype == bool and mask.sum() == 10
    assert set(np.bincount(y[mask], minlength=4).tolist()) <= {2, 3}
    mask = ood_random(y, n=37, seed=1, balanced=False)
    assert mask.sum() == 37


def test_smallest_cluster_finds_the_smallest_blob():
    sizes = [200, 150, 100, 80, 20]
    centers = np.random.default_rng(0).uniform(-40, 40, size=(5, 32))
    x, blob = make_blobs(n_samples=sizes, centers=centers, cluster_std=1.0, random_state=0)
    order = np.random.default_rng(1).permutation(len(blob))
    x, blob = x[order], blob[order]
    mask, labels = smallest_cluster(x, pca_dim=10, k=5, seed=0, return_labels=True)
    assert mask.dtype == bool and mask.shape == (550,)
    np.testing.assert_array_equal(mask, blob == 4)
    assert sorted(np.bincount(labels).tolist()) == sorted(sizes)
    # features with fewer dimensions than pca_dim are used as they are
    x3, blob3 = make_blobs(n_samples=[60, 40, 10], centers=[[0, 0, 0], [20, 0, 0], [0, 20, 0]],
                           random_state=2)
    np.testing.assert_array_equal(smallest_cluster(x3, k=3, seed=0), blob3 == 2)
    with pytest.raises(ConfigError):
        smallest_cluster(x[:3], k=5)
    with pytest.raises(DataError):
        smallest_cluster(x[:, 0])


def test_singletons_threshold():
    mem = np.array([0.1, 0.4, 0.41, 0.9, np.nan, 1.0])
    np.testing.assert_array_equal(singletons(mem, 0.4), [False, False, True, True, False, True])
    np.testing.assert_array_equal(singletons(mem, 0.8), [False, False, False, True, False, True])


def test_to_grayscale_resized_shapes_and_values():
    rng = np.random.default_rng(0)
    # constant colour images -> constant BT.601 luma
    colours = rng.random((5, 3))
    x = np.broadcast_to(colours[:, :, None, None], (5, 3, 32, 32)).astype(np.float32)
    g = to_grayscale_resized(x)
    assert g.shape == (5, 1, 28, 28) and g.dtype == np.float32
    luma = colours @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(g, np.broadcast_to(luma[:, None, None, None], g.shape), atol=1e-6)
    red = np.zeros((1, 3, 32, 32), np.float32)
    red[:, 0] = 1.0
    np.testing.assert_allclose(to_grayscale_resized(red), 0.299, atol=1e-6)
    # area resize preserves the mean and the value range of arbitrary images
    x = rng.random((4, 3, 32, 32)).astype(np.float32)
    g = to_grayscale_resized(x)
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    np.testing.assert_allclose(g.mean(axis=(1, 2, 3)), gray.mean(axis=(1, 2)), atol=1e-5)
    assert g.min() >= gray.min() - 1e-6 and g.max() <= gray.max() + 1e-6
    # a left/right split image stays split (no transposition of axes)
    half = np.zeros((1, 3, 32, 32), np.float32)
    half[..., :4] = 1.0
    g = to_grayscale_resized(half)[0, 0]
    # output column 3 covers input [3.43, 4.57): half of it is lit
    np.testing.assert_allclose(g[:, :3], 1.0, atol=1e-6)
    np.testing.assert_allclose(g[:, 3], 0.5, atol=1e-6)
    np.testing.assert_allclose(g[:, 4:], 0.0, atol=1e-6)
    # zoom method: shape and constant preservation
    z = to_grayscale_resized(np.full((2, 3, 32, 32), 0.5, np.float32), method="zoom")
    assert z.shape == (2, 1, 28, 28)
    np.testing.assert_allclose(z, 0.5, atol=1e-6)
    # already gray input, other sizes
    assert to_grayscale_resized(rng.random((2, 1, 32, 32)), size=(16, 8)).shape == (2, 1, 16, 8)
    with pytest.raises(DataError):
        to_grayscale_resized(rng.random((2, 32, 32, 3)))
    with pytest.raises(DataError):
        to_grayscale_resized(rng.random((2, 32, 32)))
    with pytest.raises(ConfigError):
        to_grayscale_resized(x, method="bicubic")


def test_augment_images_deterministic_shifted_and_in_range():
    rng = np.random.default_rng(0)
    x = np.zeros((20, 1, 28, 28), np.float32)
    x[:, :, 6:22, 12:16] = 1.0                     # a vertical bar ("1")
    a = augment_images(x, seed=0)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, augment_images(x, seed=0))
    assert not np.array_equal(a, augment_images(x, seed=1))
    assert a.min() >= 0.0 and a.max() <= 1.0       # clipped to the input range
    diff = np.abs(a - x).mean(axis=(1, 2, 3))
    assert (diff > 0.01).all()                     # every image changed
    # ... but stays an image of a bar: most ink remains near the centre
    assert np.corrcoef(a.reshape(20, -1).mean(0), x[0].ravel())[0, 1] > 0.5
    light = augment_images(x, seed=0, kind="light")
    assert np.abs(light - x).mean() < np.abs(a - x).mean()
    # colour images, processed in several chunks
    c = rng.random((7, 3, 32, 32)).astype(np.float32)
    ac = augment_images(c, seed=3, chunk=3)
    assert ac.shape == c.shape and np.isfinite(ac).all()
    assert (ac.min(axis=(0, 2, 3)) >= c.min(axis=(0, 2, 3))).all()
    with pytest.raises(ConfigError):
        augment_images(x, seed=0, kind="pixmix")
    with pytest.raises(DataError):
        augment_images(x[:, 0], seed=0)
