"""Statistics shared by the evaluation and every study, each defined once: Spearman's rank
correlation with a bootstrap interval, the bootstrap interval of a mean, and a paired percentile
bootstrap of any vectorised statistic over samples.

Point estimates and p-values come from :func:`scipy.stats.spearmanr`; resampling and percentile
intervals from :func:`scipy.stats.bootstrap` (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, ch. 13). Pairs are resampled together (a resample of the sample indices), and
Spearman's rho of a resample is computed from the tie groups of the original values, without
sorting each resample again.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import stats

from privaudit.errors import ConfigError, SignalError

__all__ = ["SpearmanResult", "spearman_with_ci", "spearman_rows", "pearson_rows", "ResampleRanks",
           "bootstrap_interval", "bootstrap_mean_ci"]

_CHUNK_ELEMS = 4_000_000            # resampled values held at once (batch x n)
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"the confidence level must lie strictly between 0 and 1, got {level}")
    return level


def _check_n_boot(n_boot: int) -> int:
    if int(n_boot) != n_boot or n_boot < 0:
        raise ConfigError(f"the number of bootstrap resamples must be a non-negative integer, got {n_boot}")
    return int(n_boot)


# --------------------------------------------------------------------------------------------
# the paired percentile bootstrap
# --------------------------------------------------------------------------------------------

def bootstrap_interval(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, n_boot: int, seed: int | Any = 0,
                       level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap intervals of ``statistic`` over ``n`` samples resampled with replacement.

    ``statistic(idx)`` receives index rows ``int[B, n]`` (each row one resample of the sample
    indices ``0..n-1``, so paired arrays stay paired: index every array with it) and returns
    ``float[B]`` or ``float[k, B]`` (k statistics of the same resamples). Resampling and the
    percentile interval are :func:`scipy.stats.bootstrap` (``method="percentile"``,
    ``vectorized=True``, ``n_boot`` resamples, seeded by ``seed``: an int or a NumPy Generator).
    Resamples where a statistic is NaN (e.g. a constant resample) are left out of that
    statistic's interval. Returns ``(lo, hi)``, each ``float[k]`` (``float[1]`` for a scalar
    statistic); NaN without resamples (``n_boot = 0``) or with fewer than 2 samples.
    """
    n_boot, level = _check_n_boot(n_boot), _check_level(level)
    if n_boot == 0 or n < 2:
        out = np.asarray(statistic(np.arange(n)[None])) if n else np.zeros(1)
        k = out.shape[0] if out.ndim == 2 else 1
        return np.full(k, np.nan), np.full(k, np.nan)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with warnings.catch_warnings():     # NaN resamples are handled below, not warned about
        warnings.simplefilter("ignore", getattr(stats, "DegenerateDataWarning", RuntimeWarning))
        res = stats.bootstrap((np.arange(n),), lambda idx, axis=-1: statistic(np.asarray(idx)), vectorized=True,
                              paired=False, method="percentile", n_resamples=n_boot, confidence_level=level,
                              batch=max(1, _CHUNK_ELEMS // n), **{_RNG_KEYWORD: rng})
    lo = np.atleast_1d(np.asarray(res.confidence_interval.low, dtype=np.float64)).copy()
    hi = np.atleast_1d(np.asarray(res.confidence_interval.high, dtype=np.float64)).copy()
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64).reshape(lo.size, -1)
    redo = ~(np.isfinite(lo) & np.isfinite(hi)) & np.isfinite(dist).any(axis=1)
    if redo.any():                                   # NaN resamples: interval of the others
        tail = (1.0 - level) / 2.0
        q = np.nanquantile(dist[redo], [tail, 1.0 - tail], axis=1)
        lo[redo], hi[redo] = q[0], q[1]
    return lo, hi


def bootstrap_mean_ci(values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95,
                      seed: int | Any = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (1-D, e.g. one metric over repeats
    and target models). ``(v, v)`` for a single value; NaN for none, or without resamples."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or _check_n_boot(n_boot) == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float(v[0])
    lo, hi = bootstrap_interval(lambda idx: v[idx].mean(axis=-1), v.size, n_boot=n_boot, seed=seed, level=level)
    return float(lo[0]), float(hi[0])


# --------------------------------------------------------------------------------------------
# Spearman's rank correlation
# --------------------------------------------------------------------------------------------

def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r between matching rows of ``a`` and ``b`` (``[..., n]``); NaN for a constant row."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho between matching rows of ``x`` and ``y`` (``[..., n]``; ties get their
    average rank, as :func:`scipy.stats.spearmanr`); NaN for a constant row."""
    return pearson_rows(stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1))


class ResampleRanks:
    """Average ranks of the values of ``x`` inside resamples of it, without sorting each one.

    ``x`` is split once into its tie groups (ascending); a resample, given as index rows
    ``int[B, n]``, is reduced to how often each group occurs in it, and a value's rank is the
    count of smaller values plus half its own group's count (+1/2): the average rank of
    :func:`scipy.stats.rankdata`, in O(B (n + groups))."""

    def __init__(self, x: np.ndarray):
        _, self.group = np.unique(np.asarray(x), return_inverse=True)
        self.group = self.group.reshape(-1)
        self.n_groups = int(self.group.max()) + 1 if self.group.size else 0

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(idx)
        b = idx.shape[0]
        g = self.group[idx]                                                  # [B, n]
        flat = (g + np.arange(b)[:, None] * self.n_groups).ravel()
        counts = np.bincount(flat, minlength=b * self.n_groups).reshape(b, self.n_groups).astype(np.float64)
        midrank = np.cumsum(counts, axis=1) - counts + (counts + 1.0) / 2.0
        return np.take_along_axis(midrank, g, axis=1)


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman's rho with its two-sided p-value and a paired percentile bootstrap interval."""

    rho: float
    p_value: float
    lo: float                  # interval at ``level`` (NaN without resamples)
    hi: float
    n: int                     # pairs used (pairs with a NaN dropped)
    level: float = 0.95
    n_boot: int = 0
    note: str = ""             # why rho (or the interval) is undefined, when it is

    def to_json(self) -> dict[str, Any]:
        out = {"rho": self.rho, "p_value": self.p_value, "lo": self.lo, "hi": self.hi, "n": self.n,
               "level": self.level, "n_boot": self.n_boot}
        return out | ({"note": self.note} if self.note else {})


def spearman_with_ci(a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                     names: tuple[str, str] = ("the first input", "the second input")) -> SpearmanResult:
    """Spearman's rank correlation of ``a`` and ``b`` (``[n]``) with a bootstrap interval.

    * ``rho`` and ``p_value``: :func:`scipy.stats.spearmanr` (two-sided; t distribution with
      n - 2 degrees of freedom); ties get their average rank; ``+-inf`` are ranked at the ends.
    * ``lo``, ``hi``: percentile interval of rho over ``n_boot`` resamples of the pairs
      (:func:`bootstrap_interval`, seeded), extended to contain ``rho`` when a skewed bootstrap
      distribution leaves it outside (so the reported interval always brackets the estimate).
    * Pairs where either value is NaN are dropped (``n`` counts the rest). Fewer than 3 pairs, or
      a constant input, leave rho undefined: every number is NaN and ``note`` says why (naming
      the inputs by ``names``).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise SignalError(f"Spearman's rho needs two arrays of one length, got {a.size} and {b.size}")
    n_boot, level = _check_n_boot(n_boot), _check_level(level)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = int(a.size)
    nan = float("nan")
    if n < 3:
        return SpearmanResult(nan, nan, nan, nan, n, level, n_boot, f"only {n} pairs without NaN: rho needs 3")
    constant = [name for name, v in zip(names, (a, b)) if np.all(v == v[0])]
    if constant:
        return SpearmanResult(nan, nan, nan, nan, n, level, n_boot, f"{' and '.join(constant)} "
                              f"{'is' if len(constant) == 1 else 'are'} constant: rank correlation is undefined")
    res = stats.spearmanr(a, b)
    rho, p = float(res.statistic), float(res.pvalue)
    lo = hi = nan
    note = ""
    if n_boot:
        ra, rb = ResampleRanks(a), ResampleRanks(b)
        (lo,), (hi,) = bootstrap_interval(lambda idx: pearson_rows(ra(idx), rb(idx)), n, n_boot=n_boot,
                                          seed=seed, level=level)
        if math.isfinite(lo):
            lo, hi = min(float(lo), rho), max(float(hi), rho)
        else:
            note = "every resample was constant: no interval"
    return SpearmanResult(rho, p, float(lo), float(hi), n, level, n_boot, note)
