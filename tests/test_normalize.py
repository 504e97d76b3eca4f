"""``data.normalize`` (``load_dataset(normalize=..., mean=..., std=...)``): auto | none |
per_channel | given, on tiny hand-computed npz files and on a built-in dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from privaudit.config import DataConfig, parse_config
from privaudit.data.datasets import load_dataset, save_npz
from privaudit.data.mixture_dataset import _normalisation_of, load_mixture
from privaudit.errors import DataError

# Two samples, two channels, 1x2 pixels. Channel 0 holds 0/255 (pixels 0, 1, 1, 0): mean 0.5,
# std 0.5. Channel 1 holds 51, 102, 153, 204 (pixels 0.2, 0.4, 0.6, 0.8): mean 0.5, std sqrt(0.05).
U8 = np.array([[[[0, 255]], [[51, 102]]],
               [[[255, 0]], [[153, 204]]]], dtype=np.uint8)
PIXELS = U8 / 255.0
R = 0.1 / np.sqrt(0.05)                                     # 0.4472...: one step in channel 1
PER_CHANNEL = np.array([[[[-1, 1]], [[-3 * R, -R]]],
                        [[[1, -1]], [[R, 3 * R]]]])
GIVEN_MEAN, GIVEN_STD = (0.5, 0.4), (0.5, 0.2)
GIVEN = np.array([[[[-1, 1]], [[-1, 0]]],                   # channel 1: (p - 0.4) / 0.2
                  [[[1, -1]], [[1, 2]]]])


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.delenv("PRIVAUDIT_DATA", raising=False)
    monkeypatch.setenv("PRIVAUDIT_CACHE", str(tmp_path / "cache"))


def npz(tmp_path: Path, name: str, x: np.ndarray, **extra) -> Path:
    p = tmp_path / f"{name}.npz"
    np.savez(p, x=x, y=np.arange(len(x)) % 2, **extra)
    return p


@pytest.fixture
def u8_file(tmp_path):
    return npz(tmp_path, "u8", U8)


@pytest.fixture
def float_file(tmp_path):
    return npz(tmp_path, "float", PIXELS)                    # float64 in [0, 1]


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"


# ================================================================== npz: each mode

def test_auto_and_none_give_the_arrays_exactly_as_stored(u8_file, float_file):
    for mode in ("auto", "none"):
        u = load_dataset("npz", root=u8_file, normalize=mode)
        assert u.x.dtype == np.float32 and np.array_equal(u.x, U8.astype(np.float32))
        assert u.normalization == "none"
        assert u.mean == (0.0, 0.0) and u.std == (1 / 255, 1 / 255)   # pixels = x / 255
        np.testing.assert_allclose(u.denormalize(), PIXELS, atol=1e-7)
        f = load_dataset("npz", root=float_file, normalize=mode)
        assert np.array_equal(f.x, PIXELS.astype(np.float32)) and f.normalization == "none"
        assert f.mean is None and f.std is None                        # already pixels
        assert np.array_equal(f.denormalize(), f.x)                    # identity


def test_none_keeps_values_outside_the_pixel_range(tmp_path):
    raw = np.array([[[[-3.5, 1000.0]]], [[[7.25, 0.0]]]])
    ds = load_dataset("npz", root=npz(tmp_path, "wide", raw))
    assert np.array_equal(ds.x, raw.astype(np.float32))               # not clipped, not scaled
    assert np.array_equal(ds.denormalize(), ds.x)


def test_per_channel_uses_the_pools_own_statistics(u8_file, float_file):
    for path in (u8_file, float_file):                                # integers /255 first
        ds = load_dataset("npz", root=path, normalize="per_channel")
        np.testing.assert_allclose(ds.x, PER_CHANNEL, atol=1e-5)
        np.testing.assert_allclose(ds.mean, (0.5, 0.5), atol=1e-7)
        np.testing.assert_allclose(ds.std, (0.5, np.sqrt(0.05)), atol=1e-7)
        assert ds.normalization == "per_channel"
        np.testing.assert_allclose(ds.denormalize(), PIXELS, atol=1e-6)


def test_given_uses_the_callers_mean_and_std(u8_file, float_file):
    for path in (u8_file, float_file):
        ds = load_dataset("npz", root=path, normalize="given", mean=GIVEN_MEAN, std=GIVEN_STD)
        np.testing.assert_allclose(ds.x, GIVEN, atol=1e-5)
        assert ds.mean == GIVEN_MEAN and ds.std == GIVEN_STD and ds.normalization == "given"


def test_given_with_the_wrong_number_of_channels(u8_file):
    with pytest.raises(DataError) as e:
        load_dataset("npz", root=u8_file, normalize="given", mean=(0.5,), std=(0.5,))
    one_line(e, "npz:u8", "given has 1 mean and 1 std values", "the images have 2 channels")


def test_tabular_npz_as_stored_and_image_modes_refused(tmp_path):
    x = np.array([[1.5, -2.0, 300.0], [0.0, 4.0, -1.0]])
    p = npz(tmp_path, "tab", x)
    for mode in ("auto", "none"):
        ds = load_dataset("npz", root=p, normalize=mode)
        assert np.array_equal(ds.x, x.astype(np.float32)) and ds.mean is None
    for mode, extra in (("per_channel", {}), ("given", {"mean": (0.0,), "std": (1.0,)})):
        with pytest.raises(DataError) as e:
            load_dataset("npz", root=p, normalize=mode, **extra)
        one_line(e, f"normalize: {mode} applies to images", "tabular [2, 3]", "auto or none")


def test_our_own_npz_format_is_used_as_stored(tmp_path):
    ds = load_dataset("digits", n=50, seed=1)
    p = save_npz(ds, tmp_path / "ours.npz")
    for mode in ("auto", "none"):
        back = load_dataset("npz", root=p, normalize=mode)
        assert np.array_equal(back.x, ds.x) and back.mean == ds.mean and back.std == ds.std
    with pytest.raises(DataError) as e:
        load_dataset("npz", root=p, normalize="per_channel")
    one_line(e, str(p), "already normalised", "auto or none")


def test_per_channel_statistics_are_those_of_the_subset(tmp_path):
    rng = np.random.default_rng(0)
    p = npz(tmp_path, "big", rng.integers(0, 256, (40, 3, 4, 4), dtype=np.uint8))
    ds = load_dataset("npz", root=p, n=10, seed=3, normalize="per_channel")
    axes = (0, 2, 3)
    np.testing.assert_allclose(ds.x.mean(axis=axes), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x.std(axis=axes), 1, atol=1e-4)


# ================================================================== argument checks

def test_bad_arguments_are_one_line_errors(u8_file):
    cases = [({"normalize": "zscore"}, "unknown normalize 'zscore'"),
             ({"normalize": "given"}, "needs both mean and std"),
             ({"normalize": "auto", "mean": (0.5,), "std": (0.5,)}, "used only with"),
             ({"normalize": "given", "mean": (0.5, 0.5), "std": (0.5, 0.0)}, "std must be"),
             ({"normalize": "given", "mean": ("a",), "std": (1.0,)}, "mean must be")]
    for kwargs, needle in cases:
        with pytest.raises(DataError) as e:
            load_dataset("npz", root=u8_file, **kwargs)
        one_line(e, needle)


# ================================================================== a built-in dataset

def test_builtin_modes_on_digits():
    auto = load_dataset("digits", n=300, seed=0)
    assert auto.normalization == "standard"                         # unchanged default numbers
    raw = load_dataset("digits", n=300, seed=0, normalize="none")
    assert raw.normalization == "none" and raw.std == (1 / 16,)
    assert raw.x.min() == 0 and raw.x.max() == 16 and np.array_equal(raw.x, np.round(raw.x))
    np.testing.assert_allclose(auto.x, (raw.x / 16 - auto.mean[0]) / auto.std[0], atol=1e-5)
    np.testing.assert_allclose(raw.denormalize(), auto.denormalize(), atol=1e-6)
    pc = load_dataset("digits", n=300, seed=0, normalize="per_channel")
    assert abs(pc.x.mean()) < 1e-5 and abs(pc.x.std() - 1) < 1e-4
    given = load_dataset("digits", n=300, seed=0, normalize="given", mean=(0.3,), std=(0.4,))
    np.testing.assert_allclose(given.x, (raw.x / 16 - 0.3) / 0.4, atol=1e-5)
    sub = given.subset([0, 1])
    assert sub.normalization == "given" and sub.mean == (0.3,)


def test_builtin_tabular_refuses_image_modes(tmp_path):
    d = tmp_path / "location"
    d.mkdir()
    (d / "bangkok").write_text("".join(f'"{1 + i % 30}",' + ",".join("01"[(i + j) % 2] for j in
                                                                    range(446)) + "\n"
                                       for i in range(60)))
    assert load_dataset("location", root=d, normalize="none").normalization == "none"
    with pytest.raises(DataError) as e:
        load_dataset("location", root=d, normalize="per_channel")
    one_line(e, "location", "applies to images")


# ================================================================== wiring: config, mixtures, the pool

def test_mixture_of_the_same_dataset_keeps_the_pools_normalisation():
    cfg = DataConfig(name="digits", n=800, normalize="per_channel",
                     mixture={"kind": "augmented", "n_under": 20, "augmentation": "light"})
    ds, group = load_mixture(cfg, seed=0)
    base = load_dataset("digits", n=800, seed=0, normalize="per_channel")
    assert ds.normalization == "per_channel" and ds.mean == base.mean
    np.testing.assert_array_equal(ds.x[group == 0], base.x)
    # more of the same dataset is loaded with the pool's numbers: shared samples are byte-equal
    more = load_dataset("digits", **_normalisation_of(base))
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}
    assert rows(base.x) <= rows(more.x)


def test_write_pool_passes_the_config_through(tmp_path, u8_file):
    from privaudit.runtime.run import Layout, Run
    from privaudit.stages.prepare import write_pool

    cfg = parse_config({"name": "n", "seed": 0, "data": {"name": "npz", "root": str(u8_file),
                                                         "normalize": "none"}})
    run = Run(tmp_path / "run")
    with run.writer():
        write_pool(run, cfg)
    assert np.array_equal(np.load(run.path(Layout.pool("x"))), U8.astype(np.float32))
    info = run.pool_info()
    assert info["mean"] == [0.0, 0.0] and info["std"] == [1 / 255, 1 / 255]
