"""The dataset registry (one module per source under privaudit.data.sources), the label-set
checks every load goes through (implausible class counts, negative labels, a single class), and
the CIFAR-100, SVHN, Location and CINIC-10 sources on small synthetic files in their real formats
(including hostile ones: a pickle that would run a shell command, truncated files, wrong shapes)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import io
import os
import pickle
import pkgutil
import sys
import tarfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _errors import raises_data_error

from privaudit.data import dataset as dataset_mod
from privaudit.data import datasets as dsmod
from privaudit.data import loaders, sources
from privaudit.data.dataset import MAX_CLASSES, Dataset, DataWarning
from privaudit.data.sources import cifar100 as c100_src
from privaudit.data.sources import cinic10 as cinic_src
from privaudit.data.sources import location as loc_src
from privaudit.data.sources import svhn as svhn_src
from privaudit.data.sources.cifar100 import CIFAR100_CLASSES
from privaudit.data.datasets import list_datasets, load_dataset
from privaudit.errors import DataError

REMAP = "numpy.unique(y, return_inverse=True)"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.delenv("PRIVAUDIT_DATA", raising=False)
    monkeypatch.setenv("PRIVAUDIT_CACHE", str(tmp_path / "cache"))


def one_line_error(fn, *needles: str, budget_s: float = 2.0, budget_mb: float = 20.0) -> str:
    """Run ``fn``, expect a one-line DataError containing ``needles``, raised within the time and
    memory budgets (nothing sized by the bogus label space may be allocated first)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DataError) as info:
            fn()
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert elapsed < budget_s, f"took {elapsed:.2f}s"
    assert peak < budget_mb * 2**20, f"peak {peak / 2**20:.1f} MiB"
    return msg


def tab(tmp_path: Path, name: str, y, **extra) -> Path:
    y = np.asarray(y)
    x = np.random.default_rng(0).normal(size=(len(y), 3)).astype(np.float32)
    p = tmp_path / f"{name}.npz"
    np.savez(p, x=x, y=y, **extra)
    return p


# ================================================================== registry

def source_modules() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(sources.__path__) if not m.name.startswith("_")]


def test_registry_order_names_and_aliases_unchanged():
    assert [i.name for i in list_datasets()] == [
        "digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "cinic10",
        "npz", "adult", "mnist1d", "purchase100", "texas100", "location"]
    assert dsmod._ALIASES == {
        "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
        "cifar-10": "cifar10", "cifar_10": "cifar10", "mnist-5k": "mnist5k", "mnist_5k": "mnist5k",
        "cifar-100": "cifar100", "cifar_100": "cifar100", "cinic-10": "cinic10", "cinic_10": "cinic10",
        "mnist-1d": "mnist1d", "purchase": "purchase100", "texas": "texas100"}
    assert load_dataset("MNIST_5K", n=20).name == "mnist5k"


def test_every_source_module_registers_its_datasets():
    names = {i.name for i in list_datasets()}
    seen = set()
    for mod in source_modules():
        m = importlib.import_module(f"privaudit.data.sources.{mod}")
        assert m.SOURCES, mod
        seen |= {s.info.name for s in m.SOURCES}
    assert seen == names


def test_sources_never_import_the_registry():
    """datasets.py imports the sources; a source importing datasets.py would be a cycle."""
    for path in Path(sources.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            assert "privaudit.data.datasets" not in mods, f"{path.name} imports the registry"
    init = ast.parse(Path(sources.__file__).read_text())          # the package imports nothing
    assert not [n for n in ast.walk(init) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _fake_source(folder: Path, name: str, dataset: str, order: int) -> None:
    (folder / f"{name}.py").write_text(f'''
import numpy as np
from privaudit.data.dataset import Dataset, DatasetInfo
from privaudit.data.sources._common import Source


def _load(req):
    y = np.arange(12) % 3
    x = np.eye(12, dtype=np.float32)
    x, y = req.take(x, y)
    return Dataset({dataset!r}, x, y, 3)


SOURCES = (Source(DatasetInfo({dataset!r}, "toy", "none", True, 12, (12,), 3, "nothing"), _load,
                  order={order}, aliases=({dataset + "-alias"!r},)),)
''')


def test_adding_a_dataset_is_one_file(tmp_path, monkeypatch):
    extra = tmp_path / "more_sources"
    extra.mkdir()
    _fake_source(extra, "toy_source", "toy", 15)
    monkeypatch.setattr(sources, "__path__", [*sources.__path__, str(extra)])
    try:
        registry, aliases = dsmod._collect()
        assert list(registry)[:3] == ["digits", "toy", "mnist5k"]       # placed by its order
        assert aliases["toy-alias"] == "toy"
        monkeypatch.setattr(dsmod, "_REGISTRY", registry)
        monkeypatch.setattr(dsmod, "_ALIASES", aliases)
        ds = load_dataset("toy-alias", n=6, seed=1)
        assert ds.name == "toy" and len(ds) == 6 and sorted(np.bincount(ds.y)) == [2, 2, 2]

        _fake_source(extra, "toy_again", "digits", 99)                   # a name taken twice
        with pytest.raises(ImportError, match="'digits' is registered by both"):
            dsmod._collect()
    finally:
        for k in [k for k in sys.modules if k.startswith("privaudit.data.sources.toy_")]:
            del sys.modules[k]


# ================================================================== implausible label spaces

def test_huge_labels_refused_before_allocating(tmp_path):
    p = tab(tmp_path, "ids", np.array([0, 1, 2, 10**9] * 5))
    one_line_error(lambda: load_dataset("npz", root=p), "npz", str(p), "labels up to 1000000000",
                   "1000000001 classes", "labels must be 0..C-1", REMAP)


def test_labels_sparser_than_ten_classes_per_sample_refused(tmp_path):
    p = tab(tmp_path, "sparse", np.array([0, 7, 500, 3] * 2))
    one_line_error(lambda: load_dataset("npz", root=p), "labels up to 500 for 8 samples", REMAP,
                   "store the true n_classes")
    # a stored n_classes says the gaps are real (e.g. a subset of a larger label space)
    ok = tab(tmp_path, "sparse_ok", np.array([0, 7, 500, 3] * 2), n_classes=501)
    assert load_dataset("npz", root=ok).n_classes == 501
    dense = tab(tmp_path, "dense", np.arange(20) % 10)
    assert load_dataset("npz", root=dense).n_classes == 10


def test_stored_n_classes_too_large_refused(tmp_path):
    p = tab(tmp_path, "stored", np.arange(10) % 2, n_classes=np.int64(10**9))
    one_line_error(lambda: load_dataset("npz", root=p), "'n_classes' is 1000000000",
                   f"more than {MAX_CLASSES} classes", REMAP)


def test_dataset_refuses_implausible_n_classes():
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    one_line_error(lambda: Dataset("big", x, y, 10**9), "dataset 'big'", "n_classes=1000000000",
                   REMAP)
    assert Dataset("ok", x, y, MAX_CLASSES).n_classes == MAX_CLASSES
    assert dataset_mod.MAX_CLASSES == MAX_CLASSES


def test_negative_labels_refused(tmp_path):
    p = tab(tmp_path, "neg", np.array([-1, 0, 1, 2] * 3))
    one_line_error(lambda: load_dataset("npz", root=p), "labels out of range", "found -1..2", REMAP)
    x = np.zeros((2, 2), np.float32)
    one_line_error(lambda: Dataset("neg", x, np.array([-1, 0]), 2), "labels out of range")


# ================================================================== one class

def test_one_class_refused_at_load(tmp_path):
    p = tab(tmp_path, "one", np.full(30, 3))
    msg = one_line_error(lambda: load_dataset("npz", root=p), "npz", str(p),
                         "has only one class (label 3)",
                         "membership inference needs a classifier trained on at least 2 classes")
    assert msg.startswith("npz: split 'train' of ")
    one_line_error(lambda: load_dataset("npz", root=p, n=10), "only one class (label 3)")
    # with a stored n_classes too: what matters is the classes present
    q = tab(tmp_path, "one_nc", np.zeros(8, int), n_classes=10)
    one_line_error(lambda: load_dataset("npz", root=q), "only one class (label 0)")


def test_one_class_checked_on_the_whole_split_not_the_subset(tmp_path):
    p = tab(tmp_path, "two", np.arange(10) % 2)
    assert len(load_dataset("npz", root=p, n=1)) == 1     # a 1-sample subset of 2-class data


def test_empty_file_refused(tmp_path):
    p = tmp_path / "empty.npz"
    np.savez(p, x=np.zeros((0, 3), np.float32), y=np.zeros(0, np.int64))
    one_line_error(lambda: load_dataset("npz", root=p), "npz", "has no samples")


# ================================================================== new sources: CIFAR-100, SVHN,
# Location, CINIC-10 (small synthetic files in the real formats; no network)


raises = raises_data_error   # pytest.raises(DataError) whose message is one line containing every needle


def check_images(ds: Dataset, n: int, n_classes: int) -> None:
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.x.shape == (n, 3, 32, 32) and ds.n_classes == n_classes
    assert 0 <= ds.y.min() and ds.y.max() < n_classes


def png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def pixels_back(ds: Dataset) -> np.ndarray:
    return np.round(ds.denormalize() * 255).astype(np.uint8)


# ------------------------------------------------------------------ CIFAR-100

def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict:
    """``cifar-100-python/{train,test,meta}`` as the official (python 2, protocol 2) pickles."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    out = {}
    for part, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [i % 100 for i in range(n)]
        batch = {b"batch_label": part.encode(), b"fine_labels": fine,
                 b"coarse_labels": [f // 5 for f in fine], b"data": data,
                 b"filenames": [f"{part}_{i}.png".encode() for i in range(n)]}
        (d / part).write_bytes(pickle.dumps(batch, protocol=2))
        out[part] = (data, fine)
    meta = {b"fine_label_names": [c.encode() for c in CIFAR100_CLASSES]}
    (d / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


def test_cifar100_pickles(tmp_path):
    raw = write_cifar100(tmp_path)
    with pytest.warns(DataWarning, match="differ from the official release"):
        ds = load_dataset("cifar100", root=tmp_path)
    check_images(ds, 200, 100)
    assert ds.mean == c100_src.CIFAR100_MEAN and ds.normalization == "standard"
    assert np.array_equal(pixels_back(ds), raw["train"][0].reshape(-1, 3, 32, 32))
    assert ds.y.tolist() == raw["train"][1]
    with pytest.warns(DataWarning):
        sub = load_dataset("CIFAR-100", root=tmp_path, split="test", n=50, seed=1)
    check_images(sub, 50, 100)
    with pytest.warns(DataWarning):
        assert len(load_dataset("cifar100", root=tmp_path / "cifar-100-python", split="all")) == 300
    with pytest.warns(DataWarning):
        none = load_dataset("cifar100", root=tmp_path, normalize="none")
    assert np.array_equal(none.x, raw["train"][0].reshape(-1, 3, 32, 32).astype(np.float32))


def test_cifar100_image_zip(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    names = ("apple", "worm", "bear")
    with zipfile.ZipFile(tmp_path / "CIFAR-100-images.zip", "w") as zf:
        for i, img in enumerate(imgs):
            zf.writestr(f"{'train' if i < 4 else 'test'}/{names[i % 3]}/{i:04d}.png", png(img))
    ds = load_dataset("cifar100", root=tmp_path)
    check_images(ds, 4, 100)
    order = [0, 3, 2, 1]                                   # class order: apple, bear, worm
    assert ds.y.tolist() == [CIFAR100_CLASSES.index(names[i % 3]) for i in order]
    assert np.array_equal(pixels_back(ds), imgs[order].transpose(0, 3, 1, 2))
    assert len(load_dataset("cifar100", root=tmp_path, split="test")) == 2
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("train/airplane/0.png", png(imgs[0]))
    with raises("cifar100", "unexpected class folder train/airplane/", "bad.zip"):
        load_dataset("cifar100", root=tmp_path / "bad.zip")


def test_cifar100_tgz_download_is_checked_by_sha256(tmp_path, monkeypatch):
    write_cifar100(tmp_path / "src", n_train=100, n_test=100)
    tgz = tmp_path / "mirror" / "cifar-100-python.tar.gz"
    tgz.parent.mkdir()
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-100-python", arcname="cifar-100-python")
    monkeypatch.setattr(c100_src, "_CIFAR100_URL", tgz.as_uri())
    with raises("could not download cifar-100-python.tar.gz", "sha256 mismatch"):
        load_dataset("cifar100", root=tmp_path / "dl0", download=True)
    monkeypatch.setattr(c100_src, "_CIFAR100_TGZ_SHA256", loaders.file_hash(tgz))
    with pytest.warns(DataWarning):
        ds = load_dataset("cifar100", root=tmp_path / "dl", split="test", download=True)
    assert len(ds) == 100 and (tmp_path / "dl" / "cifar-100-python" / "train").is_file()


class _Shell:
    """Unpickling this would run a shell command (``os.system``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar100_hostile_pickles_never_run_code(tmp_path):
    write_cifar100(tmp_path)
    marker = tmp_path / "pwned"
    train = tmp_path / "cifar-100-python" / "train"
    train.write_bytes(pickle.dumps({b"data": _Shell(marker), b"fine_labels": [0]}, protocol=2))
    with raises("unreadable pickle", str(train), "refusing global", "system"):
        load_dataset("cifar100", root=tmp_path)
    assert not marker.exists()                              # nothing ran
    train.write_bytes(pickle.dumps(_Shell(marker)))         # the payload at the top level too
    with raises("refusing global"):
        load_dataset("cifar100", root=tmp_path)
    assert not marker.exists()

    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 5]}, 2)
    train.write_bytes(good[:100])                           # truncated
    with raises("unreadable pickle", str(train)):
        load_dataset("cifar100", root=tmp_path)
    train.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                    b"fine_labels": [0, 100]}, protocol=2))
    with raises("cifar100", "labels out of range", "found 0..100", "expected 0..99"):
        load_dataset("cifar100", root=tmp_path)
    train.write_bytes(pickle.dumps({b"data": np.zeros((2, 1024), np.uint8),
                                    b"fine_labels": [0, 1]}, protocol=2))
    with raises("cifar100", "expected uint8[n, 3072]"):
        load_dataset("cifar100", root=tmp_path)
    train.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, 2))
    with raises("lacks key 'data' or 'fine_labels'"):
        load_dataset("cifar100", root=tmp_path)


# ------------------------------------------------------------------ SVHN

def write_svhn(folder: Path, n: int, name: str = "train_32x32.mat", seed: int = 0,
               labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8) if labels is None else labels
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / name, {"X": X, "y": y.reshape(-1, 1)})
    return X, y


def test_svhn_mat_files(tmp_path):
    X, y = write_svhn(tmp_path, 40)
    write_svhn(tmp_path, 20, "test_32x32.mat", seed=1)
    with pytest.warns(DataWarning, match="differs from the official release"):
        ds = load_dataset("svhn", root=tmp_path)
    check_images(ds, 40, 10)
    assert ds.mean == svhn_src.SVHN_MEAN and ds.std == svhn_src.SVHN_STD
    assert ds.y.tolist() == (y % 10).tolist() and ds.y[9] == 0      # 10 is the digit 0
    assert np.array_equal(pixels_back(ds), X.transpose(3, 2, 0, 1))
    with pytest.warns(DataWarning):
        sub = load_dataset("svhn", root=tmp_path, split="all", n=30, seed=2)
    check_images(sub, 30, 10)
    assert np.bincount(sub.y).tolist() == [3] * 10
    with pytest.warns(DataWarning):
        assert len(load_dataset("svhn", root=tmp_path, split="test")) == 20


def test_svhn_download_checked_and_bad_files_refused(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_svhn(mirror, 20)
    monkeypatch.setattr(svhn_src, "_SVHN_URL", mirror.as_uri() + "/")
    with raises("could not download train_32x32.mat", "sha256 mismatch"):
        load_dataset("svhn", root=tmp_path / "dl", download=True)
    monkeypatch.setitem(svhn_src._SVHN_SHA256, "train_32x32.mat",
                        loaders.file_hash(mirror / "train_32x32.mat"))
    assert len(load_dataset("svhn", root=tmp_path / "dl", download=True)) == 20   # no warning

    bad = tmp_path / "bad"
    write_svhn(bad, 20)
    f = bad / "train_32x32.mat"
    f.write_bytes(f.read_bytes()[:3000])                                  # truncated
    with pytest.warns(DataWarning), raises("svhn: unreadable file", str(f)):
        load_dataset("svhn", root=bad)
    f.write_bytes(b"not a MATLAB file at all" * 10)
    with pytest.warns(DataWarning), raises("svhn", str(f)):
        load_dataset("svhn", root=bad)
    write_svhn(bad, 20, labels=np.arange(20, dtype=np.uint8) % 11 + 1)     # label 11
    with pytest.warns(DataWarning), raises("svhn: labels out of range", "found 1..11",
                                           "1..10 (10 is the digit 0)"):
        load_dataset("svhn", root=bad)
    from scipy.io import savemat
    savemat(f, {"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1), np.uint8)})
    with pytest.warns(DataWarning), raises("svhn", "expected uint8[32, 32, 3, N]"):
        load_dataset("svhn", root=bad)
    with raises("svhn: missing file test_32x32.mat", "download=True"):
        load_dataset("svhn", root=bad, split="test")


# ------------------------------------------------------------------ Location

def bangkok_text(n: int, n_features: int = 446, first_label: int = 1) -> tuple[str, np.ndarray]:
    """Rows ``"label",f1..fd`` like the released file (labels quoted, 1..30)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (n, n_features))
    labels = (np.arange(n) % 30) + first_label
    rows = [f'"{lab}",' + ",".join(map(str, r)) for lab, r in zip(labels, x)]
    return "\n".join(rows) + "\n", x


def test_location_text_and_tgz(tmp_path):
    text, x = bangkok_text(90)
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "bangkok").write_text(text)
    ds = load_dataset("location", root=tmp_path / "txt")
    assert ds.x.shape == (90, 446) and ds.x.dtype == np.float32 and ds.n_classes == 30
    assert np.array_equal(ds.x, x) and ds.y.tolist() == [i % 30 for i in range(90)]
    sub = load_dataset("location", root=tmp_path / "txt", n=30, seed=0)
    assert np.bincount(sub.y).tolist() == [1] * 30
    with raises("location has no test split"):
        load_dataset("location", root=tmp_path / "txt", split="test")
    (tmp_path / "tgz").mkdir()
    with tarfile.open(tmp_path / "tgz" / "dataset_location.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("bangkok")
        info.size = len(text.encode())
        tf.addfile(info, io.BytesIO(text.encode()))
    assert np.array_equal(load_dataset("location", root=tmp_path / "tgz").x, x)


def test_location_download_checked(tmp_path, monkeypatch):
    text, x = bangkok_text(60)
    src = tmp_path / "src.tgz"
    with tarfile.open(src, "w:gz") as tf:
        info = tarfile.TarInfo("bangkok")
        info.size = len(text.encode())
        tf.addfile(info, io.BytesIO(text.encode()))
    spec = dataclasses.replace(loc_src.LOCATION_SPEC, url=src.as_uri())
    monkeypatch.setattr(loc_src, "LOCATION_SPEC", spec)
    with raises("could not download dataset_location.tgz", "sha256 mismatch"):
        load_dataset("location", root=tmp_path / "dl", download=True)
    monkeypatch.setattr(loc_src, "LOCATION_SPEC",
                        dataclasses.replace(spec, tgz_sha256=loaders.file_hash(src)))
    assert np.array_equal(load_dataset("location", root=tmp_path / "dl", download=True).x, x)
    with raises("location: missing file bangkok", "download=True"):
        load_dataset("location", root=tmp_path / "nothing")


def test_location_wrong_shape_and_labels(tmp_path):
    (tmp_path / "short").mkdir()
    f = tmp_path / "short" / "bangkok"
    f.write_text(bangkok_text(40, n_features=445)[0])
    with raises("location", str(f), "expected [n, 446]", "published release is 5010 x 446"):
        load_dataset("location", root=tmp_path / "short")
    f.write_text(bangkok_text(40, first_label=2)[0])                     # labels 2..31
    with raises("location: labels out of range", "found 2..31", "expected 1..30"):
        load_dataset("location", root=tmp_path / "short")
    f.write_text(bangkok_text(40, first_label=0)[0])                     # labels 0..29
    with raises("location: labels out of range", "found 0..29"):
        load_dataset("location", root=tmp_path / "short")
    f.write_text(bangkok_text(40)[0] + '"3",1,0\n')
    with raises("malformed table", "row 41"):
        load_dataset("location", root=tmp_path / "short")


def test_purchase_and_texas_feature_counts_checked_against_the_published_shape(tmp_path):
    (tmp_path / "p").mkdir()
    f = tmp_path / "p" / "dataset_purchase"
    f.write_text("\n".join("1," + ",".join(["0"] * 599) for _ in range(4)) + "\n")
    with raises("purchase100", str(f), "[4, 599]", "expected [n, 600]",
                "published release is 197324 x 600"):
        load_dataset("purchase100", root=tmp_path / "p")
    np.savez(tmp_path / "p" / "purchase100.npz", features=np.zeros((3, 600)),
             labels=np.eye(100)[[0, 1, 2]])
    f.unlink()
    assert load_dataset("purchase100", root=tmp_path / "p").y.tolist() == [0, 1, 2]
    d = tmp_path / "t"
    d.mkdir()
    (d / "feats").write_text("\n".join(",".join(["1"] * 6170) for _ in range(3)) + "\n")
    (d / "labels").write_text("1\n2\n3\n")
    with raises("texas100", str(d / "feats"), "expected [n, 6169]", "67330 x 6169"):
        load_dataset("texas100", root=d)


# ------------------------------------------------------------------ CINIC-10

CINIC_CLASSES = cinic_src.CINIC10_CLASSES


def write_cinic(root: Path, per_class: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """``{train,valid,test}/<class>/*.png``; returns the images per split in load order."""
    rng = np.random.default_rng(seed)
    out = {}
    for part in ("train", "valid", "test"):
        imgs = rng.integers(0, 256, (10 * per_class, 32, 32, 3), dtype=np.uint8)
        for i, img in enumerate(imgs):
            d = root / part / CINIC_CLASSES[i // per_class]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"img{i:05d}.png").write_bytes(png(img))
        out[part] = imgs
    return out


def test_cinic10_folders(tmp_path):
    imgs = write_cinic(tmp_path)
    ds = load_dataset("cinic10", root=tmp_path)
    check_images(ds, 20, 10)
    assert ds.mean == cinic_src.CINIC10_MEAN and ds.std == cinic_src.CINIC10_STD
    assert ds.y.tolist() == [i // 2 for i in range(20)]
    assert np.array_equal(pixels_back(ds), imgs["train"].transpose(0, 3, 1, 2))
    test = load_dataset("cinic-10", root=tmp_path, split="test", normalize="none")
    assert np.array_equal(test.x, imgs["test"].transpose(0, 3, 1, 2).astype(np.float32))
    sub = load_dataset("cinic10", root=tmp_path, split="all", n=10, seed=0)
    check_images(sub, 10, 10)
    assert np.bincount(sub.y).tolist() == [1] * 10


def test_cinic10_refuses_bad_images_and_folders(tmp_path):
    write_cinic(tmp_path, per_class=1)
    small = tmp_path / "train" / "cat" / "small.png"
    small.write_bytes(png(np.zeros((16, 16, 3), np.uint8)))
    with raises("image", str(small), "is 16x16, expected 32x32"):
        load_dataset("cinic10", root=tmp_path)
    small.write_bytes(b"\x89PNG garbage")
    with raises("corrupt image", str(small)):
        load_dataset("cinic10", root=tmp_path)
    small.unlink()
    (tmp_path / "test" / "unicorn").mkdir()
    with raises("cinic10: unexpected class folder", "unicorn"):
        load_dataset("cinic10", root=tmp_path, split="test")
    with raises("cinic10: missing file", "download=True"):
        load_dataset("cinic10", root=tmp_path / "none")


def test_cinic10_archive_extracted_after_md5_check(tmp_path, monkeypatch):
    imgs = write_cinic(tmp_path / "src", per_class=1)
    tgz = tmp_path / "data" / "CINIC-10.tar.gz"
    tgz.parent.mkdir()
    with tarfile.open(tgz, "w:gz") as tf:
        for part in ("train", "valid", "test"):
            tf.add(tmp_path / "src" / part, arcname=f"./{part}")
    with raises("md5 mismatch", str(tgz)):
        load_dataset("cinic10", root=tmp_path / "data")
    monkeypatch.setattr(cinic_src, "_CINIC_TGZ_MD5", loaders.file_hash(tgz, "md5"))
    ds = load_dataset("cinic10", root=tmp_path / "data")
    assert np.array_equal(pixels_back(ds), imgs["train"].transpose(0, 3, 1, 2))
    assert (tmp_path / "data" / "CINIC-10" / "valid" / "truck").is_dir()
    assert len(load_dataset("cinic10", root=tgz, split="test")) == 10     # root = the archive


# ------------------------------------------------------------------ the CLI lists them

def test_privaudit_datasets_lists_the_new_sources():
    from typer.testing import CliRunner

    from privaudit.cli import app

    out = CliRunner().invoke(app, ["datasets"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    for name in ("cifar100", "svhn", "cinic10", "location"):
        assert name in out.output
