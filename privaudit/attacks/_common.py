"""Shared helpers of the attack functions: input validation and masked per-example statistics.

Everything here is vectorised over samples (and augmented queries); the only Python loops run
over a handful of options, never over samples. Arrays follow the attack calling convention of
``docs/ARCHITECTURE.md``: ``target [n, A(, C)]``, ``ref [R, n, A(, C)]``, ``ref_keep bool [R, n]``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from privaudit.errors import ConfigError, SignalError

#: LiRA's std floor: the reference code adds 1e-30 to every standard deviation (plot.py).
STD_FLOOR = 1e-30


def validate(target, ref, ref_keep, labels, *, name: str, vector: bool = False,
             kind: str = "real", need_ref: bool = True):
    """Check the calling convention and return (float64 target, float64 ref, bool ref_keep,
    int64 labels); arrays already of those dtypes are not copied.

    ``vector``: the signal carries a trailing class axis (``probs``: ``target [n, A, C]``).
    ``kind``: ``"real"`` (any finite value), ``"nonneg"`` (finite and >= 0, e.g. curvature,
    confidences), ``"prob"`` (finite, in [0, 1]) or ``"bool"`` (a label-only signal: every value
    exactly 0 or 1; target and ref are then returned as ``bool`` arrays, so an attack on them
    cannot see anything but the predicted labels' correctness).
    Raises :class:`SignalError` with a one-line message on any inconsistency.
    """
    target = np.asarray(target, dtype=np.float64)
    ndim = 3 if vector else 2
    layout = "[n, A, C]" if vector else "[n, A]"
    if target.ndim != ndim:
        raise SignalError(f"{name}: target must have shape {layout}, got {target.shape}")
    n = target.shape[0]
    if target.shape[1] < 1:
        raise SignalError(f"{name}: target has no augmented query (shape {target.shape})")
    if ref is None:
        ref = np.zeros((0,) + target.shape)
    ref = np.asarray(ref, dtype=np.float64)
    if ref.ndim != ndim + 1 or ref.shape[1:] != target.shape:
        raise SignalError(f"{name}: ref must have shape [R, {', '.join(map(str, target.shape))}] "
                          f"to match target {target.shape}, got {ref.shape}")
    r = ref.shape[0]
    if ref_keep is None:
        ref_keep = np.zeros((r, n), dtype=bool)
    ref_keep = np.asarray(ref_keep)
    if ref_keep.shape != (r, n):
        raise SignalError(f"{name}: ref_keep must have shape ({r}, {n}) to match ref {ref.shape}, "
                          f"got {ref_keep.shape}")
    if ref_keep.dtype != bool:
        if not np.isin(ref_keep, (0, 1)).all():
            raise SignalError(f"{name}: ref_keep must be boolean, got dtype {ref_keep.dtype}")
        ref_keep = ref_keep.astype(bool)
    if need_ref and r == 0:
        raise SignalError(f"{name}: needs at least one reference model, got ref with R=0")
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise SignalError(f"{name}: labels must have shape ({n},), got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if (labels.dtype.kind != "f" or not np.all(np.isfinite(labels))
                or not np.all(labels == np.round(labels))):
            raise SignalError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if vector and labels.size and (labels.min() < 0 or labels.max() >= target.shape[2]):
        raise SignalError(f"{name}: labels must lie in 0..{target.shape[2] - 1}")
    for what, arr in (("target", target), ("ref", ref)):
        if not np.isfinite(arr).all():
            raise SignalError(f"{name}: {what} contains NaN or inf")
        if kind in ("nonneg", "prob") and arr.size and arr.min() < 0:
            raise SignalError(f"{name}: {what} must be non-negative, minimum is {arr.min():.3g}")
        if kind == "prob" and arr.size and arr.max() > 1 + 1e-6:
            raise SignalError(f"{name}: {what} must be probabilities in [0, 1], "
                              f"maximum is {arr.max():.6g}")
        if kind == "bool" and not np.isin(arr, (0.0, 1.0)).all():
            raise SignalError(f"{name}: {what} must be a label-only boolean signal (0/1 correctness of the "
                              f"predicted label), got other values; pass signals.transforms.correct(...)")
    if kind == "bool":
        target, ref = target.astype(bool), ref.astype(bool)
    return target, ref, ref_keep, labels


@contextmanager
def single_threaded() -> Iterator[None]:
    """BLAS and OpenMP limited to one thread for small scikit-learn fits (QMIA's boosting, the
    label-only attack models): with PyTorch's own libgomp and OpenBLAS in the same process their
    thread pools contend, and small fits ran 8-14x slower on 2 cores (measured)."""
    with threadpool_limits(limits=1):
        yield


def choice(name: str, option: str, value, allowed) -> None:
    """One-line ConfigError for an option value outside ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{name}: {option} must be one of {', '.join(map(repr, allowed))}, "
                          f"got {value!r}")


def require_counts(count: np.ndarray, *, name: str, side: str, minimum: int = 1) -> None:
    """Every sample needs ``minimum`` reference observations on ``side`` ("IN"/"OUT")."""
    bad = np.flatnonzero(count < minimum)
    if bad.size:
        raise SignalError(f"{name}: {bad.size} sample(s) (first: index {bad[0]}) have fewer than "
                          f"{minimum} {side} reference model(s)")


def expand(mask: np.ndarray, ndim: int) -> np.ndarray:
    """bool [R, n] -> [R, n, 1, ...] broadcastable against an array with ``ndim`` dims."""
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def first_k(mask: np.ndarray, k: int) -> np.ndarray:
    """Keep only the first ``k`` True entries of each column (in reference-model order):
    LiRA's equal-count truncation ``x[:in_size]`` (plot.py)."""
    rank = np.cumsum(mask, axis=0) - 1
    return mask & (rank < k)


def masked_mean_var(values: np.ndarray, mask: np.ndarray):
    """Per-sample mean and (ddof=0) variance over the reference axis 0 restricted to ``mask``.

    values: [R, n, ...]; mask: bool [R, n]. Returns (count [n], mean [n, ...], var [n, ...]);
    mean/var are NaN where count == 0.
    """
    w = expand(mask, values.ndim).astype(np.float64)
    count = mask.sum(axis=0)
    denom = expand(count, values.ndim - 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (values * w).sum(axis=0) / denom
        var = (w * (values - mean) ** 2).sum(axis=0) / denom
    return count, mean, var


def _sorted_masked(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked-out entries set to +inf, sorted along the reference axis (moved last)."""
    filled = np.where(expand(mask, values.ndim), values, np.inf)
    return np.sort(np.moveaxis(filled, 0, -1), axis=-1)


def masked_quantile(values: np.ndarray, mask: np.ndarray, q: float) -> np.ndarray:
    """Per-sample ``q``-quantile over the masked reference axis with NumPy's default ``linear``
    interpolation (equals ``np.nanpercentile(x, 100 q)`` on the masked values; ``q=0.5`` is the
    median). values [R, n, ...], mask [R, n] -> [n, ...]; NaN where a sample has no entry."""
    srt = _sorted_masked(values, mask)                     # [n, ..., R]
    count = expand(mask.sum(axis=0), values.ndim - 1)      # [n, 1, ...]
    count = np.broadcast_to(count, srt.shape[:-1])
    pos = q * (count - 1.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.ceil(pos).astype(np.int64)
    valid = count > 0
    lo = np.where(valid, lo, 0)
    hi = np.where(valid, hi, 0)
    v_lo = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0]
    frac = pos - lo
    with np.errstate(invalid="ignore"):
        out = v_lo + (v_hi - v_lo) * frac
        out = np.where(hi == lo, v_lo, out)
    return np.where(valid, out, np.nan)


def trim_mean(values: np.ndarray, trim: float) -> np.ndarray:
    """Trimmed mean over axis 0, cutting ``int(trim * R)`` observations from each end: the same
    partition and mean as :func:`scipy.stats.trim_mean` (equal to it bit for bit, tested), without
    importing ``scipy.stats`` (about half a second of every default audit)."""
    values = np.asarray(values)
    low = int(trim * values.shape[0])
    high = values.shape[0] - low
    if low >= high:
        raise ValueError(f"trim {trim} leaves no observation of {values.shape[0]}")
    return np.partition(values, (low, high - 1), axis=0)[low:high].mean(axis=0)


def masked_trim_mean(values: np.ndarray, mask: np.ndarray, trim: float) -> np.ndarray:
    """Per-sample trimmed mean over the masked reference axis, cutting ``int(trim * count)``
    observations from each end, as :func:`scipy.stats.trim_mean` does. ``trim=0``: plain mean.
    values [R, n, ...], mask [R, n] -> [n, ...]; NaN where a sample has no entry."""
    if trim == 0:
        return masked_mean_var(values, mask)[1]
    srt = _sorted_masked(values, mask)                     # [n, ..., R]
    count = np.broadcast_to(expand(mask.sum(axis=0), values.ndim - 1), srt.shape[:-1])
    cut = np.floor(trim * count).astype(np.int64)
    keep_n = count - 2 * cut
    idx = np.arange(srt.shape[-1])
    sel = (idx >= cut[..., None]) & (idx < (count - cut)[..., None])
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(sel, srt, 0.0).sum(axis=-1)
        return np.where(keep_n > 0, total / keep_n, np.nan)


_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


def _global_std(values: np.ndarray, mask: np.ndarray, count: np.ndarray, var: np.ndarray,
                mode: str) -> np.ndarray:
    """Global std of one side: ``within`` -> per query [A], ``total`` -> scalar (as [1])."""
    if mode == "within":
        ok = count >= 2
        if ok.any():
            w = count[ok].astype(np.float64)
            return np.sqrt((w[:, None] * var[ok]).sum(axis=0) / w.sum())
    obs = values[mask]                                    # [N_obs, A]
    return np.atleast_1d(np.std(obs))


def gaussian_side(values: np.ndarray, mask: np.ndarray, *, name: str, side: str, center: str,
                  variance: str, equal_counts: bool, global_std_mode: str = "within",
                  floor: float = STD_FLOOR):
    """Gaussian fit of one side (IN or OUT) of every sample, as LiRA (lira.py docstring):
    centers [n, A] (mean or median) and stds [n, A] (ddof=0, per example or global, + floor)."""
    count = mask.sum(axis=0)
    require_counts(count, name=name, side=side)
    if equal_counts:
        mask = first_k(mask, int(count.min()))
    count, mean, var = masked_mean_var(values, mask)
    mu = mean if center == "mean" else masked_quantile(values, mask, 0.5)
    glob = _global_std(values, mask, count, var, global_std_mode)
    if variance == "global":
        std = np.broadcast_to(glob, mu.shape)
    else:
        std = np.where((count >= 2)[:, None], np.sqrt(var), glob)
    return mu, std + floor


def gaussian_logpdf(x: np.ndarray, mu: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log N(x; mu, std^2), elementwise."""
    z = (x - mu) / std
    return -0.5 * z * z - np.log(std) - _HALF_LOG_2PI


def query_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the augmented-query axis (the last one of a scalar signal)."""
    return values.mean(axis=-1)
