"""The dataset registry (one module per source under privaudit.data.sources) and the label-set
checks every load goes through (implausible class counts, negative labels, a single class)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from privaudit.data import dataset as dataset_mod
from privaudit.data import datasets as dsmod
from privaudit.data import sources
from privaudit.data.dataset import MAX_CLASSES, Dataset
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
        "digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "npz", "adult", "mnist1d",
        "purchase100", "texas100"]
    assert dsmod._ALIASES == {
        "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
        "cifar-10": "cifar10", "cifar_10": "cifar10", "mnist-5k": "mnist5k", "mnist_5k": "mnist5k",
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
