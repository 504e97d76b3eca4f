"""File-format readers for the dataset layer (no registry, no normalisation).

Every reader validates what it reads and raises :class:`privaudit.errors.DataError` with a one-line
message naming the file and the problem (missing, truncated, bad magic, checksum, shape, dtype).
The dataset registry in :mod:`privaudit.data.datasets` composes these readers.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Sequence

import numpy as np

from privaudit.errors import DataError

__all__ = [
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "atomic_write_bytes",
    "atomic_save_npy",
    "cache_dir",
    "check_hash",
    "decode_images",
    "decode_zip_images",
    "download",
    "file_hash",
    "read_bytes_maybe_gz",
    "read_csv_numeric",
    "read_idx",
    "safe_extract",
    "safe_unpickle",
]

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension


# --------------------------------------------------------------------------------------------
# cache folder, hashing, atomic writes
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """``$PRIVAUDIT_CACHE`` if set, else ``~/.cache/privaudit`` (resolved at call time)."""
    env = os.environ.get("PRIVAUDIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "privaudit"


_HASH_MEMO: dict[tuple[str, str, int, int], str] = {}


def file_hash(path: str | Path, algo: str = "sha256") -> str:
    """Hex digest of a file, memoised per process on (path, size, mtime)."""
    path = Path(path)
    try:
        st = path.stat()
        key = (algo, str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _HASH_MEMO:
            return _HASH_MEMO[key]
        h = hashlib.new(algo)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def check_hash(path: str | Path, expected: str, algo: str = "sha256", hint: str = "") -> None:
    """Raise DataError ``<algo> mismatch for FILE: expected X, got Y`` unless the digest matches."""
    got = file_hash(path, algo)
    if got != expected.lower():
        tail = f"; {hint}" if hint else ""
        raise DataError(f"{algo} mismatch for {path}: expected {expected}, got {got} "
                        f"(corrupt or not the official file{tail})")


def _tmp_path_in(directory: Path, name: str) -> tuple[int, str]:
    directory.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)


def _relax_mode(tmp: str) -> None:
    try:  # mkstemp creates 0600; a finished data/cache file is an ordinary 0644 file
        os.chmod(tmp, 0o644)
    except OSError:
        pass


def atomic_write_bytes(path: str | Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to a temp file next to ``path`` then ``os.replace`` it into place."""
    path = Path(path)
    fd, tmp = _tmp_path_in(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
        _relax_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_npy(path: str | Path, arr: np.ndarray) -> None:
    """``np.save`` to a temp file next to ``path`` then ``os.replace`` (readers never see half a file)."""
    path = Path(path)
    fd, tmp = _tmp_path_in(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        _relax_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------

def download(urls: Sequence[str], dest: str | Path, *, sha256: str | None = None,
             md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch the first URL that works into ``dest`` (atomically), verifying a checksum if given.

    Tries every URL in order (mirrors); a checksum mismatch counts as a failure of that URL.
    ``file://`` URLs work too (used by the tests: no network)."""
    dest = Path(dest)
    errors: list[str] = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed URLs)
                atomic_write_bytes(dest, iter(lambda: resp.read(1 << 20), b""))
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
            errors.append(f"{url} ({reason})")
            continue
        try:
            if sha256:
                check_hash(dest, sha256, "sha256")
            if md5:
                check_hash(dest, md5, "md5")
        except DataError as e:
            dest.unlink(missing_ok=True)
            errors.append(f"{url} ({e})")
            continue
        return dest
    raise DataError(f"could not download {dest.name} into {dest.parent}: " + "; ".join(errors))


def safe_extract(tf: tarfile.TarFile, dest: str | Path, members: Sequence[tarfile.TarInfo]) -> None:
    """Extract ``members`` into ``dest`` with the ``data`` filter (no absolute paths, links out of
    ``dest`` or special files); Python < 3.11.4 has no filters: callers check a checksum first."""
    try:
        tf.extractall(dest, members=members, filter="data")
    except TypeError:
        tf.extractall(dest, members=members)


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

def read_bytes_maybe_gz(path: str | Path) -> bytes:
    """The file's bytes, gunzipped if it ends in ``.gz``; truncated/corrupt gzip -> DataError."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"corrupt gzip file {path}: truncated or not gzip ({e})") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def read_idx(path: str | Path, expected_magic: int | None = None, *,
             data: bytes | None = None) -> np.ndarray:
    """Parse an IDX file (optionally ``.gz``): big-endian int32 magic, then one int32 per dimension,
    then the uint8 payload. Checks the magic, the dtype code and the exact payload length."""
    path = Path(path)
    raw = read_bytes_maybe_gz(path) if data is None else data
    if len(raw) < 4:
        raise DataError(f"corrupt IDX file {path}: {len(raw)} bytes, too short for a header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        kind = {IDX_IMAGES_MAGIC: "images", IDX_LABELS_MAGIC: "labels"}.get(expected_magic, "")
        raise DataError(f"bad IDX magic in {path}: expected {expected_magic} ({kind}), got {magic}")
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
        raise DataError(f"bad IDX magic in {path}: got {magic} (0x{magic:08x}), "
                        f"not an unsigned-byte IDX file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"corrupt IDX file {path}: truncated header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    need = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != need:
        what = "truncated" if len(raw) < need else "trailing bytes"
        raise DataError(f"corrupt IDX file {path}: {what}: header says dims {dims} "
                        f"({need} bytes), file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# --------------------------------------------------------------------------------------------
# pickle (CIFAR-10 batches, MNIST-1D): plain numpy/builtin pickles only
# --------------------------------------------------------------------------------------------

def _np_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _np_multiarray()._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _np_multiarray()._reconstruct,
    ("numpy.core.multiarray", "scalar"): lambda: _np_multiarray().scalar,
    ("numpy._core.multiarray", "scalar"): lambda: _np_multiarray().scalar,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals numpy arrays need: loading a dataset file must
    never execute code (pickle can call any importable function)."""

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return factory()


def safe_unpickle(path: str | Path, *, encoding: str = "bytes") -> Any:
    """Load a pickle of dicts/lists/numpy arrays; anything else (or a corrupt file) -> DataError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, encoding=encoding).load()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except pickle.UnpicklingError as e:
        raise DataError(f"unreadable pickle {path}: {e}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OSError) as e:
        raise DataError(f"unreadable pickle {path}: truncated or corrupt "
                        f"({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------------------------
# JPEG/PNG images, in a zip (CIFAR JPEG layouts) or in folders (CINIC-10)
# --------------------------------------------------------------------------------------------

def decode_images(read: Callable[[str], bytes], names: Sequence[str], *,
                  shape: tuple[int, int, int], where: str) -> np.ndarray:
    """Decode the images ``read(name)`` into uint8 ``[n, C, H, W]`` (shape = (C, H, W)) with Pillow
    (a matplotlib dependency); any other size, or an unreadable image -> DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    mode = {1: "L", 3: "RGB"}[c]
    out = np.empty((len(names), h, w, c), dtype=np.uint8)
    for i, m in enumerate(names):
        try:
            with Image.open(io.BytesIO(read(m))) as im:
                if im.size != (w, h):
                    raise DataError(f"image {where}{m} is {im.size[0]}x{im.size[1]}, "
                                    f"expected {w}x{h}")
                arr = np.asarray(im.convert(mode))
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, zipfile.BadZipFile, zlib.error, ValueError,
                SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(f"corrupt image {where}{m}: {e}") from None
        out[i] = arr.reshape(h, w, c)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def decode_zip_images(zf: zipfile.ZipFile, members: Sequence[str], *, shape: tuple[int, int, int],
                      where: str) -> np.ndarray:
    """Decode ``members`` of an open zip into uint8 ``[n, C, H, W]`` (see :func:`decode_images`)."""
    return decode_images(zf.read, members, shape=shape, where=f"{where}::")


# --------------------------------------------------------------------------------------------
# numeric CSV (Purchase100 / Texas100 text formats)
# --------------------------------------------------------------------------------------------

def read_csv_numeric(source: str | Path | BinaryIO, *, where: str, dtype: Any = np.float32) -> np.ndarray:
    """Parse a comma-separated all-numeric text table quickly into ``[rows, cols]``. Double quotes
    around fields are ignored (Location's labels are written ``"13"``).

    Every non-empty row must have the same number of fields; otherwise -> DataError naming the
    first malformed row."""
    try:
        if isinstance(source, (str, Path)):
            raw = Path(source).read_bytes()
        else:
            raw = source.read()
    except FileNotFoundError:
        raise DataError(f"missing file {where}") from None
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"cannot read {where}: {e}") from None
    lines = [ln for ln in raw.replace(b"\r", b"").replace(b'"', b"").split(b"\n") if ln.strip()]
    if not lines:
        raise DataError(f"empty table {where}")
    counts = np.fromiter((ln.count(b",") for ln in lines), dtype=np.int64, count=len(lines))
    cols = int(counts[0]) + 1
    bad = np.flatnonzero(counts != cols - 1)
    if bad.size:
        r = int(bad[0])
        raise DataError(f"malformed table {where}: row {r + 1} has {int(counts[r]) + 1} fields, "
                        f"row 1 has {cols}")
    text = b",".join(lines).decode("ascii", errors="replace")
    try:
        with warnings.catch_warnings():  # numpy < 2.3 warns (instead of raising) on bad fields
            warnings.simplefilter("error", DeprecationWarning)
            flat = np.fromstring(text, dtype=np.float64, sep=",")
    except (ValueError, DeprecationWarning):
        flat = np.empty(0)
    if flat.size != len(lines) * cols:
        raise DataError(f"malformed table {where}: a field is empty or not a number")
    return flat.reshape(len(lines), cols).astype(dtype, copy=False)
