"""Tests of the dataset layer (privaudit.data.datasets / sources / loaders).

Real files are read from the shared data folder next to the repository (../shared/data); tests
that need it are skipped with a reason when it is absent. Everything else uses small synthetic
files written to tmp_path. No network: the download test uses a file:// mirror.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _errors import raises_data_error

from privaudit.data import loaders
from privaudit.data.sources import _cifar as cifar_common
from privaudit.data.sources import cifar10 as cifar_src
from privaudit.data.sources import mnist as mnist_src
from privaudit.data.datasets import (
    CIFAR10_CLASSES,
    Dataset,
    DatasetInfo,
    DataWarning,
    list_datasets,
    load_dataset,
    save_npz,
)
from privaudit.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
CIFAR_ZIP = SHARED / "cifar10_jpeg" / "CIFAR-10-images.zip"
ADULT_DIR = SHARED / "adult"
MNIST1D_DIR = SHARED / "mnist1d"

needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                                 reason=f"real MNIST files not found in {MNIST_DIR}")
needs_cifar_zip = pytest.mark.skipif(not CIFAR_ZIP.is_file(),
                                     reason=f"CIFAR-10 JPEG zip not found at {CIFAR_ZIP}")
needs_adult = pytest.mark.skipif(not (ADULT_DIR / "adult.test").is_file(),
                                 reason=f"UCI Adult files not found in {ADULT_DIR}")
needs_mnist1d = pytest.mark.skipif(not (MNIST1D_DIR / "mnist1d_data.pkl").is_file(),
                                   reason=f"MNIST-1D pickle not found in {MNIST1D_DIR}")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test sees the developer's PRIVAUDIT_DATA or writes into ~/.cache/privaudit."""
    monkeypatch.delenv("PRIVAUDIT_DATA", raising=False)
    monkeypatch.setenv("PRIVAUDIT_CACHE", str(tmp_path / "cache"))


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    return x.mean(axis=axes, dtype=np.float64), x.std(axis=axes, dtype=np.float64)


def check_contract(ds: Dataset, n: int, shape: tuple[int, ...], n_classes: int) -> None:
    assert isinstance(ds, Dataset)
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.x.shape == (n, *shape) and ds.y.shape == (n,)
    assert ds.input_shape == shape and len(ds) == n
    assert ds.n_classes == n_classes
    assert ds.y.min() >= 0 and ds.y.max() < n_classes
    assert np.isfinite(ds.x).all()
    assert ds.is_image == (len(shape) == 3)


# ------------------------------------------------------------------ synthetic file builders

def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    arr = np.asarray(arr, np.uint8)
    magic = (0x0800 | arr.ndim) if magic is None else magic
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def write_idx_pair(folder: Path, prefix: str, n: int, *, gz: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labs = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3", imgs), ("labels-idx1", labs)):
        data = idx_bytes(arr)
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return imgs


def write_cifar_batches(root: Path, per_batch: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    bdir = root / "cifar-10-batches-py"
    bdir.mkdir(parents=True)
    out = {}
    for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        d = {b"batch_label": b.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"{b}_{i}.png".encode() for i in range(per_batch)]}
        (bdir / b).write_bytes(pickle.dumps(d, protocol=2))
        out[b] = (data, labels)
    return bdir, out


# ================================================================== registry / contract

def test_list_datasets_describes_every_registered_dataset():
    infos = list_datasets()
    names = [i.name for i in infos]
    for want in ("digits", "mnist5k", "mnist", "fashion-mnist", "cifar10", "npz", "adult",
                 "mnist1d", "purchase100", "texas100"):
        assert want in names
    by = {i.name: i for i in infos}
    assert all(isinstance(i, DatasetInfo) and i.description and i.source and i.how_to_get
               for i in infos)
    assert by["digits"].offline and by["mnist5k"].offline
    assert not by["mnist"].offline and not by["cifar10"].offline
    assert by["cifar10"].input_shape == (3, 32, 32) and by["cifar10"].n_train == 50000
    assert by["digits"].n_train == 1797 and by["digits"].n_classes == 10


def test_unknown_name_lists_known_datasets():
    with raises_data_error("unknown dataset 'imagenet'", "digits", "cifar10", "mnist5k"):
        load_dataset("imagenet")


def test_bad_split_and_bad_n_rejected():
    with raises_data_error("unknown split 'valid'"):
        load_dataset("digits", split="valid")
    with raises_data_error("n must be a positive int"):
        load_dataset("digits", n=0)
    with raises_data_error("digits has no test split"):
        load_dataset("digits", split="test")


# ================================================================== packaged datasets

def test_digits_shapes_and_normalisation():
    ds = load_dataset("digits")
    check_contract(ds, 1797, (1, 8, 8), 10)
    assert ds.name == "digits"
    m, s = channel_stats(ds.x)
    assert np.allclose(m, 0.0, atol=1e-4) and np.allclose(s, 1.0, atol=1e-4)
    assert len(ds.mean) == len(ds.std) == 1
    raw = ds.denormalize()                            # undoes it: back to v/16 in [0, 1]
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    assert np.allclose(np.round(raw * 16), raw * 16, atol=1e-3)
    assert set(np.unique(ds.y)) == set(range(10))


def test_mnist5k_shapes_and_normalisation():
    ds = load_dataset("mnist5k")
    check_contract(ds, 5000, (1, 28, 28), 10)
    assert ds.mean == (0.1307,) and ds.std == (0.3081,)
    m, s = channel_stats(ds.x)
    assert abs(m[0]) < 0.05 and abs(s[0] - 1) < 0.05
    assert np.bincount(ds.y).tolist() == [500] * 10
    raw = ds.denormalize()
    assert np.allclose(np.round(raw * 255), raw * 255, atol=2e-3)  # exact uint8 pixels back


def test_subset_is_seeded_stratified_and_deterministic():
    a = load_dataset("digits", n=200, seed=3)
    b = load_dataset("digits", n=200, seed=3)
    c = load_dataset("digits", n=200, seed=4)
    check_contract(a, 200, (1, 8, 8), 10)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    full = np.bincount(load_dataset("digits").y)                  # class-stratified:
    assert np.all(np.abs(np.bincount(a.y) - 200 * full / full.sum()) < 1)  # proportional quotas
    assert a.mean == load_dataset("digits").mean   # normalisation does not depend on the subset
    odd = load_dataset("digits", n=7, seed=0)      # quotas not divisible: still exactly n
    assert len(odd) == 7 and len(set(odd.y.tolist())) == 7
    with raises_data_error("n=1798 is larger than the dataset", "1797"):
        load_dataset("digits", n=1798)


def test_dataset_subset_and_validation():
    ds = load_dataset("digits", n=50)
    sub = ds.subset([3, 1, 4])
    assert np.array_equal(sub.x, ds.x[[3, 1, 4]]) and sub.mean == ds.mean
    mask = np.zeros(len(ds), bool)
    mask[:5] = True
    assert len(ds.subset(mask)) == 5
    with raises_data_error("subset index out of range"):
        ds.subset([0, 50])
    with raises_data_error("x must be float32"):
        Dataset("t", ds.x.astype(np.float64), ds.y, 10)
    with raises_data_error("y must be int64"):
        Dataset("t", ds.x, ds.y.astype(np.int32), 10)
    with raises_data_error("labels out of range", "expected 0..4"):
        Dataset("t", ds.x, ds.y, 5)
    bad = ds.x.copy()
    bad[0, 0, 0, 0] = np.nan
    with raises_data_error("NaN/inf"):
        Dataset("t", bad, ds.y, 10)
    assert "float32[50, 1, 8, 8]" in repr(ds)      # repr does not dump arrays


# ================================================================== MNIST / Fashion-MNIST (IDX)

@needs_mnist
def test_mnist_real_files():
    ds = load_dataset("mnist", root=MNIST_DIR)
    check_contract(ds, 60000, (1, 28, 28), 10)
    m, s = channel_stats(ds.x)
    assert abs(m[0]) < 0.01 and abs(s[0] - 1) < 0.01     # 0.1307 / 0.3081 are MNIST's own stats
    assert ds.y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the famous first training labels
    test = load_dataset("mnist", root=MNIST_DIR.parent, split="test", n=1000, seed=1)
    check_contract(test, 1000, (1, 28, 28), 10)           # root = parent holding mnist/


@needs_mnist
def test_mnist_found_through_PRIVAUDIT_DATA(monkeypatch):
    monkeypatch.setenv("PRIVAUDIT_DATA", str(SHARED))
    ds = load_dataset("mnist", split="test")
    check_contract(ds, 10000, (1, 28, 28), 10)


@needs_mnist
def test_mnist_recompressed_gz_accepted_via_decompressed_sha(tmp_path):
    for base in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress((MNIST_DIR / (base + ".gz")).read_bytes())
        (tmp_path / (base + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1, mtime=123))
    ref = load_dataset("mnist", root=MNIST_DIR, split="test", n=100)
    got = load_dataset("mnist", root=tmp_path, split="test", n=100)
    assert np.array_equal(ref.x, got.x) and np.array_equal(ref.y, got.y)


@needs_mnist
def test_mnist_download_from_file_mirror(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_src, "_MNIST_MIRRORS", [MNIST_DIR.as_uri() + "/"])
    dest = tmp_path / "dl"
    ds = load_dataset("mnist", root=dest, split="test", download=True)
    check_contract(ds, 10000, (1, 28, 28), 10)
    assert (dest / "t10k-images-idx3-ubyte.gz").is_file()
    # a mirror serving the wrong bytes: rejected by the checksum, nothing left behind
    fake = tmp_path / "fake"
    write_idx_pair(fake, "train", 10, gz=True)
    monkeypatch.setattr(mnist_src, "_MNIST_MIRRORS", [fake.as_uri() + "/"])
    with raises_data_error("could not download train-images-idx3-ubyte.gz", "sha256 mismatch"):
        load_dataset("mnist", root=tmp_path / "dl2", download=True)
    assert not (tmp_path / "dl2" / "train-images-idx3-ubyte.gz").exists()


def test_mnist_sha256_mismatch_on_fake_file(tmp_path):
    write_idx_pair(tmp_path, "train", 20, gz=True)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    with raises_data_error("sha256 mismatch", str(f), mnist_src._MNIST_SHA256["train-images-idx3-ubyte"][0],
                           loaders.file_hash(f)):
        load_dataset("mnist", root=tmp_path)


def test_missing_file_message_lists_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVAUDIT_DATA", str(tmp_path / "data"))
    with raises_data_error("mnist: missing file train-images-idx3-ubyte.gz",
                           str(tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz"),
                           str(tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"),
                           str(tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz"),
                           "https://", "download=True"):
        load_dataset("mnist")
    with raises_data_error("cifar10: missing file", str(tmp_path / "x" / "CIFAR-10-images.zip"),
                           str(tmp_path / "x" / "cifar-10-batches-py" / "data_batch_1"),
                           "download=True"):
        load_dataset("cifar10", root=tmp_path / "x")


def test_read_idx_rejects_corrupt_files(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(idx_bytes(imgs)))
    assert np.array_equal(loaders.read_idx(good, loaders.IDX_IMAGES_MAGIC), imgs)

    cut = tmp_path / "cut.gz"                           # truncated gzip stream
    cut.write_bytes(good.read_bytes()[:-30])
    with raises_data_error("corrupt gzip file", str(cut), "truncated"):
        loaders.read_idx(cut, loaders.IDX_IMAGES_MAGIC)

    wrong = tmp_path / "wrong.gz"                       # labels magic where images expected
    wrong.write_bytes(gzip.compress(idx_bytes(imgs, magic=2049)))
    with raises_data_error("bad IDX magic", str(wrong), "expected 2051", "got 2049"):
        loaders.read_idx(wrong, loaders.IDX_IMAGES_MAGIC)

    short = tmp_path / "short.gz"                       # valid gzip, payload shorter than header says
    short.write_bytes(gzip.compress(idx_bytes(imgs)[:-100]))
    with raises_data_error("corrupt IDX file", "truncated", "(2, 28, 28)"):
        loaders.read_idx(short, loaders.IDX_IMAGES_MAGIC)

    notgz = tmp_path / "plain.gz"
    notgz.write_bytes(b"this is not gzip at all")
    with raises_data_error("corrupt gzip file", str(notgz)):
        loaders.read_idx(notgz)


def test_fashion_mnist_structural_checks_and_md5(tmp_path):
    imgs = write_idx_pair(tmp_path / "ok", "train", 30, gz=False)   # uncompressed: structural only
    ds = load_dataset("fashion-mnist", root=tmp_path / "ok")
    check_contract(ds, 30, (1, 28, 28), 10)
    assert ds.mean == (0.2860,) and ds.std == (0.3530,)
    assert np.allclose(np.round(ds.denormalize()[:, 0] * 255), imgs, atol=0)

    bad = tmp_path / "bad"
    write_idx_pair(bad, "train", 30, gz=False)
    f = bad / "train-images-idx3-ubyte"
    f.write_bytes((2049).to_bytes(4, "big") + f.read_bytes()[4:])
    with raises_data_error("bad IDX magic", str(f), "expected 2051"):
        load_dataset("fashion_mnist", root=bad)                     # alias accepted

    gz = tmp_path / "gz"                                             # .gz: official md5 checked
    write_idx_pair(gz, "train", 30, gz=True)
    with raises_data_error("md5 mismatch", "train-images-idx3-ubyte.gz",
                           "8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        load_dataset("fashion-mnist", root=gz)

    lab = tmp_path / "lab"
    write_idx_pair(lab, "train", 30, gz=False)
    (lab / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(30, 12, np.uint8)))
    with raises_data_error("labels out of range", "0..12"):
        load_dataset("fashion-mnist", root=lab)


# ================================================================== CIFAR-10

@needs_cifar_zip
def test_cifar10_jpeg_zip_subset(tmp_path):
    ds = load_dataset("cifar10", root=CIFAR_ZIP.parent, n=200, seed=0)
    check_contract(ds, 200, (3, 32, 32), 10)
    assert np.bincount(ds.y).tolist() == [20] * 10
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)
    m, s = channel_stats(ds.x)
    assert np.all(np.abs(m) < 0.15) and np.all(np.abs(s - 1) < 0.15)
    raw = ds.denormalize()
    assert raw.min() >= -1e-4 and raw.max() <= 1 + 1e-4
    again = load_dataset("cifar10", root=CIFAR_ZIP, n=200, seed=0)   # root = the zip itself
    assert np.array_equal(ds.x, again.x) and np.array_equal(ds.y, again.y)
    assert not (tmp_path / "cache" / "cifar10").exists()   # subsets do not write the full cache
    both = load_dataset("cifar10", root=CIFAR_ZIP.parent, split="all", n=60, seed=2)
    check_contract(both, 60, (3, 32, 32), 10)


def test_cifar10_zip_sha256_mismatch(tmp_path):
    z = tmp_path / "CIFAR-10-images.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("train/airplane/0000.jpg", b"not really a jpeg")
    with raises_data_error("sha256 mismatch", str(z), cifar_src._CIFAR_ZIP_SHA256):
        load_dataset("cifar10", root=tmp_path)


def test_decode_zip_images_and_corrupt_member(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")       # lossless, so pixels must match exactly
    z = tmp_path / "imgs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("train/cat/0000.png", buf.getvalue())
        zf.writestr("train/cat/0001.jpg", b"garbage")
        small = io.BytesIO()
        Image.fromarray(img[:16, :16]).save(small, format="PNG")
        zf.writestr("train/cat/0002.png", small.getvalue())
    with zipfile.ZipFile(z) as zf:
        out = loaders.decode_zip_images(zf, ["train/cat/0000.png"], shape=(3, 32, 32), where=str(z))
        assert out.shape == (1, 3, 32, 32) and np.array_equal(out[0].transpose(1, 2, 0), img)
        with raises_data_error("corrupt image", "train/cat/0001.jpg"):
            loaders.decode_zip_images(zf, ["train/cat/0001.jpg"], shape=(3, 32, 32), where=str(z))
        with raises_data_error("is 16x16, expected 32x32"):
            loaders.decode_zip_images(zf, ["train/cat/0002.png"], shape=(3, 32, 32), where=str(z))
        members, labels = cifar_common._zip_listing(cifar_src._spec(), zf, z, "train")
        assert labels.tolist() == [CIFAR10_CLASSES.index("cat")] * 3


def test_cifar10_pickle_batches(tmp_path):
    bdir, raw = write_cifar_batches(tmp_path)
    with pytest.warns(DataWarning, match="differ from the official release"):
        ds = load_dataset("cifar10", root=tmp_path)
    check_contract(ds, 20, (3, 32, 32), 10)
    want = np.concatenate([raw[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert np.array_equal(np.round(ds.denormalize() * 255).astype(np.uint8), want)
    assert ds.y.tolist() == sum((raw[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    with pytest.warns(DataWarning):
        test = load_dataset("cifar10", root=bdir, split="test")      # root = the batch folder
    assert len(test) == 4 and test.y.tolist() == raw["test_batch"][1]
    with pytest.warns(DataWarning):
        assert len(load_dataset("cifar10", root=tmp_path, split="all")) == 24


def test_cifar10_pickle_batches_rejected_when_broken(tmp_path):
    bdir, _ = write_cifar_batches(tmp_path)
    (bdir / "data_batch_3").unlink()
    with raises_data_error("missing file", str(bdir / "data_batch_3")):
        load_dataset("cifar10", root=tmp_path)

    bdir2, _ = write_cifar_batches(tmp_path / "t")
    b = bdir2 / "data_batch_1"
    b.write_bytes(b.read_bytes()[:200])
    with raises_data_error("unreadable pickle", str(b)):
        load_dataset("cifar10", root=tmp_path / "t")

    bdir3, _ = write_cifar_batches(tmp_path / "l")
    d = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}
    (bdir3 / "data_batch_2").write_bytes(pickle.dumps(d, protocol=2))
    with raises_data_error("labels out of range", "data_batch_2", "expected 0..9"):
        load_dataset("cifar10", root=tmp_path / "l")

    bdir4, _ = write_cifar_batches(tmp_path / "s")
    d = {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}
    (bdir4 / "data_batch_1").write_bytes(pickle.dumps(d, protocol=2))
    with raises_data_error("expected uint8[n, 3072]"):
        load_dataset("cifar10", root=tmp_path / "s")


def test_cifar10_official_tgz_extracted_and_downloaded(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _, raw = write_cifar_batches(src, per_batch=3)
    tgz = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    tgz.parent.mkdir()
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cifar_src, "_CIFAR_TGZ_MD5", loaders.file_hash(tgz, "md5"))
    monkeypatch.setattr(cifar_src, "_CIFAR_URL", tgz.as_uri())
    with pytest.warns(DataWarning):
        ds = load_dataset("cifar10", root=tmp_path / "dl", split="test", download=True)
    assert ds.y.tolist() == raw["test_batch"][1]
    assert (tmp_path / "dl" / "cifar-10-batches-py" / "data_batch_5").is_file()
    with pytest.warns(DataWarning):                     # root = the archive itself
        assert len(load_dataset("cifar10", root=tgz)) == 15
    monkeypatch.setattr(cifar_src, "_CIFAR_TGZ_MD5", "0" * 32)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "cifar-10-python.tar.gz").write_bytes(tgz.read_bytes())
    with raises_data_error("md5 mismatch", "cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=tmp_path / "other")


class _Evil:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_pickles_never_execute_code(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"x": _Evil()}))
    with raises_data_error("unreadable pickle", "refusing global", "getcwd"):
        loaders.safe_unpickle(p)


# ================================================================== npz

def test_npz_round_trip(tmp_path):
    ds = load_dataset("digits", n=100, seed=5)
    p = save_npz(ds, tmp_path / "digits_sub.npz")
    back = load_dataset("npz", root=p)
    assert back.name == "npz:digits_sub"
    assert np.array_equal(back.x, ds.x) and np.array_equal(back.y, ds.y)
    assert back.mean == ds.mean and back.std == ds.std and back.n_classes == ds.n_classes

    tab = tmp_path / "tab.npz"
    rng = np.random.default_rng(0)
    np.savez(tab, x=rng.normal(size=(40, 5)), y=np.arange(40) % 4)
    t = load_dataset("npz", root=tab, n=20, seed=1)
    check_contract(t, 20, (5,), 4)
    assert t.mean is None and not t.is_image

    img = tmp_path / "img.npz"                      # uint8 channels-last -> [n, C, H, W]
    u8 = rng.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    np.savez(img, x=u8, y=np.arange(30) % 3)
    im = load_dataset("npz", root=img)              # auto: exactly as stored
    check_contract(im, 30, (3, 6, 6), 3)
    assert np.array_equal(im.x, u8.transpose(0, 3, 1, 2)) and im.normalization == "none"
    pc = load_dataset("npz", root=img, normalize="per_channel")
    m, s = channel_stats(pc.x)
    assert np.allclose(m, 0, atol=1e-4) and np.allclose(s, 1, atol=1e-4)


def test_npz_rejects_bad_content(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3)).astype(np.float32)

    nan = tmp_path / "nan.npz"
    xn = x.copy()
    xn[2, 1] = np.nan
    np.savez(nan, x=xn, y=np.arange(10) % 2)
    with raises_data_error("NaN/inf", str(nan)):
        load_dataset("npz", root=nan)

    oor = tmp_path / "oor.npz"
    np.savez(oor, x=x, y=np.arange(10) % 5, n_classes=3)
    with raises_data_error("labels out of range", "found 0..4", "expected 0..2"):
        load_dataset("npz", root=oor)

    neg = tmp_path / "neg.npz"
    np.savez(neg, x=x, y=np.arange(10) - 1)
    with raises_data_error("labels out of range", "found -1"):
        load_dataset("npz", root=neg)

    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, data=x, y=np.zeros(10, int))
    with raises_data_error("lacks array 'x'", "data"):
        load_dataset("npz", root=nokey)

    shape = tmp_path / "shape.npz"
    np.savez(shape, x=x, y=np.zeros(7, int))
    with raises_data_error("expected [10] labels"):
        load_dataset("npz", root=shape)

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip")
    with raises_data_error("unreadable file", str(junk)):
        load_dataset("npz", root=junk)

    with raises_data_error("missing file", str(tmp_path / "nope.npz")):
        load_dataset("npz", root=tmp_path / "nope.npz")
    with raises_data_error("pass root="):
        load_dataset("npz")


# ================================================================== tabular datasets

@needs_adult
def test_adult_real_files():
    tr = load_dataset("adult", root=ADULT_DIR)
    te = load_dataset("adult", root=ADULT_DIR.parent, split="test")   # junk line, trailing '.'
    check_contract(tr, 32561, (108,), 2)
    check_contract(te, 16281, (108,), 2)
    assert tr.y.sum() == 7841 and te.y.sum() == 3846      # >50K counts of the UCI release
    m, s = channel_stats(tr.x[:, :6])                      # numeric columns standardised
    assert np.allclose(m, 0, atol=1e-3) and np.allclose(s, 1, atol=1e-3)
    assert np.all(tr.x[:, 6:].sum(1) == 8)                 # one-hot: 8 categorical columns


def test_adult_sha256_mismatch(tmp_path):
    line = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, " \
           "White, Male, 2174, 0, 40, United-States, <=50K\n"
    (tmp_path / "adult.data").write_text(line * 3)
    with raises_data_error("sha256 mismatch", "adult.data"):
        load_dataset("adult", root=tmp_path)


@needs_mnist1d
def test_mnist1d_real_file():
    ds = load_dataset("mnist1d", root=MNIST1D_DIR)
    check_contract(ds, 4000, (40,), 10)
    te = load_dataset("mnist1d", root=MNIST1D_DIR / "mnist1d_data.pkl", split="test")
    check_contract(te, 1000, (40,), 10)


def test_mnist1d_synthetic_and_broken(tmp_path):
    rng = np.random.default_rng(0)
    d = {"x": rng.normal(size=(50, 40)), "y": np.arange(50) % 10,
         "x_test": rng.normal(size=(20, 40)), "y_test": np.arange(20) % 10, "t": np.arange(40.0)}
    (tmp_path / "mnist1d_data.pkl").write_bytes(pickle.dumps(d))
    ds = load_dataset("mnist1d", root=tmp_path, split="all")
    check_contract(ds, 70, (40,), 10)
    d["y"] = np.arange(50) % 11
    (tmp_path / "mnist1d_data.pkl").write_bytes(pickle.dumps(d))
    with raises_data_error("labels out of range", "expected 0..9"):
        load_dataset("mnist1d", root=tmp_path)


def _purchase_rows(n: int, rng) -> tuple[str, np.ndarray, np.ndarray]:
    x = rng.integers(0, 2, (n, 600))
    y = np.arange(n) % 100 + 1                      # published labels are 1..100
    text = "\n".join(",".join(map(str, [lab, *row])) for lab, row in zip(y, x)) + "\n"
    return text, x, y


def test_purchase100_text_tgz_and_npz_formats(tmp_path):
    rng = np.random.default_rng(0)
    text, x, y = _purchase_rows(30, rng)
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "dataset_purchase").write_text(text)
    ds = load_dataset("purchase100", root=tmp_path / "txt")
    check_contract(ds, 30, (600,), 100)
    assert np.array_equal(ds.x, x) and np.array_equal(ds.y, y - 1)

    (tmp_path / "tgz").mkdir()
    with tarfile.open(tmp_path / "tgz" / "dataset_purchase.tgz", "w:gz") as tf:
        data = text.encode()
        info = tarfile.TarInfo("dataset_purchase")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert np.array_equal(load_dataset("purchase100", root=tmp_path / "tgz").x, x)

    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "purchase100.npz", features=x, labels=np.eye(100)[y - 1])
    z = load_dataset("purchase100", root=tmp_path / "npz")
    assert np.array_equal(z.y, y - 1)


def test_purchase100_rejects_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    text, _, _ = _purchase_rows(5, rng)
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "dataset_purchase").write_text("0" + text[1:])  # label 0 is not 1..100
    with raises_data_error("labels out of range"):
        load_dataset("purchase100", root=tmp_path / "zero")
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "dataset_purchase").write_text(
        "\n".join(",".join(["1"] + ["0"] * 599) for _ in range(3)))
    with raises_data_error("expected [n, 600]"):
        load_dataset("purchase100", root=tmp_path / "short")
    (tmp_path / "ragged").mkdir()
    (tmp_path / "ragged" / "dataset_purchase").write_text(text + "1,0,1\n")
    with raises_data_error("malformed table", "row 6"):
        load_dataset("purchase100", root=tmp_path / "ragged")
    with raises_data_error("purchase100: missing file dataset_purchase", str(tmp_path / "none")):
        load_dataset("purchase100", root=tmp_path / "none")


def test_texas100_feats_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (12, 6169))
    y = np.arange(12) * 8 + 1
    d = tmp_path / "texas" / "100"
    d.mkdir(parents=True)
    (d / "feats").write_text("\n".join(",".join(map(str, r)) for r in x) + "\n")
    (d / "labels").write_text("\n".join(map(str, y)) + "\n")
    ds = load_dataset("texas100", root=tmp_path, n=6, seed=0)
    check_contract(ds, 6, (6169,), 100)
    full = load_dataset("texas100", root=tmp_path)
    assert np.array_equal(full.x, x) and np.array_equal(full.y, y - 1)
    (d / "labels").write_text("\n".join(map(str, y[:-1])) + "\n")
    with raises_data_error("texas100", "12 rows but its label file has 11 labels"):
        load_dataset("texas100", root=tmp_path)
    (d / "feats").write_text("\n".join(",".join(map(str, r[:50])) for r in x) + "\n")
    (d / "labels").write_text("\n".join(map(str, y)) + "\n")
    with raises_data_error("expected [n, 6169]"):
        load_dataset("texas100", root=tmp_path)


def test_digits_read_without_importing_sklearn_equal_load_digits():
    from sklearn.datasets import load_digits

    from privaudit.data.sources.digits import digits_arrays

    images, labels = digits_arrays()
    d = load_digits()
    np.testing.assert_array_equal(images, d.images)
    np.testing.assert_array_equal(labels, d.target)
