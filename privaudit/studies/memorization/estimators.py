"""Feldman-Zhang label memorization and influence from a population of subset-trained models, and
how memorization relates to per-sample vulnerability.

References
----------
* Feldman & Zhang, "What Neural Networks Memorize and Why: Discovering the Long Tail via
  Influence Estimation", NeurIPS 2020, and their released estimator
  (google-research/heldout-influence-estimation, ``mnist-example/mnist_infl_mem.py``)::

      mem_hat(i)    = mean_{k: i in S_k} correct_k[i] - mean_{k: i not in S_k} correct_k[i]
      infl_hat(i,j) = the same masked difference evaluated on held-out example j

  The reference code divides by ``max(count, 1e-10)``, i.e. it silently returns 0 for a sample
  with no IN (or no OUT) model; here such samples get NaN and ``valid = False`` instead.
* Choi, Tople, Chandrasekaran, Jha, "Why Train More? Effective and Efficient Membership Inference
  via Memorization", arXiv:2310.08015, 2023, §4.1: Spearman rank correlation between
  memorization and vulnerability, read in the bands |rho| < 0.4 weak, 0.4-0.59 moderate,
  >= 0.6 strong, significant at p < 0.05. Vulnerability is measured by the LiRA per-example
  privacy score (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P
  2022, §VII-B; :func:`privaudit.evaluation.per_sample.privacy_score`) and by the per-sample TPR
  at a global threshold (:func:`privaudit.evaluation.per_sample.per_sample_tpr`).

All functions are pure NumPy on arrays, float64 inside, no per-sample Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privaudit.errors import SignalError
from privaudit.evaluation.per_sample import _keep
from privaudit.evaluation.statistics import spearman_with_ci

__all__ = ["MemorizationResult", "InfluenceResult", "feldman_zhang", "influence", "correlation_band",
           "memorization_report"]

# Choi et al. 2023, §4.1: bands on |rho|, and significance at p < 0.05.
BANDS = ((0.4, "weak"), (0.6, "moderate"), (np.inf, "strong"))
SIGNIFICANCE = 0.05


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------

def _outcomes(values: np.ndarray, name: str, m: int | None = None) -> np.ndarray:
    """Per-model outcomes [M, k]: bool 0/1 correctness is returned as bool (memory: 1 byte per
    entry; 2000 models x 60k samples stay at 120 MB), anything else as float64 in [0, 1]."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise SignalError(f"{name} must be [M, n] (one row per model), got shape {values.shape}")
    if m is not None and values.shape[0] != m:
        raise SignalError(f"{name} has {values.shape[0]} model rows but keep has {m}")
    if values.dtype == bool:
        return values
    if np.issubdtype(values.dtype, np.integer) and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise SignalError(f"{name} contains NaN or inf")
    if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
        raise SignalError(f"{name} must lie in [0, 1] (0/1 correctness, or a probability)")
    return values


# --------------------------------------------------------------------------------------------
# Feldman-Zhang memorization and influence
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemorizationResult:
    """Per-sample Feldman-Zhang memorization estimate.

    ``mem[i] = p_in[i] - p_out[i]``; ``se[i] = sqrt(v_in/n_in + v_out/n_out)`` where ``v`` is the
    (ddof=0) variance of the outcome over the IN (OUT) models, i.e. ``p(1-p)`` for 0/1 correctness.
    ``valid[i]`` is False (and mem/se/p are NaN) where sample i has no IN or no OUT model.
    """

    mem: np.ndarray       # float[n]
    se: np.ndarray        # float[n]
    p_in: np.ndarray      # float[n] mean outcome over models trained WITH i
    p_out: np.ndarray     # float[n] mean outcome over models trained WITHOUT i
    n_in: np.ndarray      # int[n]
    n_out: np.ndarray     # int[n]
    valid: np.ndarray     # bool[n]: at least one IN and one OUT model

    @property
    def n_invalid(self) -> int:
        return int((~self.valid).sum())

    def summary(self) -> dict:
        """JSON-friendly summary (counts, mean/quantiles of the valid estimates)."""
        m = self.mem[self.valid]
        q = np.quantile(m, [0.5, 0.9, 0.99]).tolist() if m.size else [np.nan] * 3
        return {"n": int(self.mem.size), "n_invalid": self.n_invalid,
                "n_invalid_no_in": int((self.n_in == 0).sum()),
                "n_invalid_no_out": int((self.n_out == 0).sum()),
                "mean": float(m.mean()) if m.size else float("nan"),
                "median": q[0], "q90": q[1], "q99": q[2],
                "mean_se": float(self.se[self.valid].mean()) if m.size else float("nan")}


@dataclass(frozen=True)
class InfluenceResult:
    """Feldman-Zhang influence of train sample i on held-out sample j, layout ``[n_train, t]``.

    The reference code returns ``[t, n_train]``; use ``.infl.T`` for that layout.
    Rows of train samples without an IN or an OUT model are NaN (``valid[i]`` False).
    """

    infl: np.ndarray      # float[n, t]
    se: np.ndarray        # float[n, t]
    n_in: np.ndarray      # int[n]
    n_out: np.ndarray     # int[n]
    valid: np.ndarray     # bool[n]


def _masked_sums(values: np.ndarray, keep: np.ndarray):
    """Sums of ``values[:, j]`` and of its squares over the IN rows (``keep[:, i]``) and the OUT
    rows of every train sample i: four [n, k] arrays from one (binary) or two matrix products.
    Binary ``values`` use float32 products (integer counts are exact below 2**24 models) and
    x^2 = x."""
    if values.dtype == bool:
        s_in = (keep.astype(np.float32).T @ values.astype(np.float32)).astype(np.float64)
        s_out = values.sum(axis=0, dtype=np.float64)[None, :] - s_in
        return s_in, s_out, s_in, s_out
    w = keep.astype(np.float64)
    sq = values * values
    s_in, q_in = w.T @ values, w.T @ sq
    return s_in, values.sum(axis=0)[None, :] - s_in, q_in, sq.sum(axis=0)[None, :] - q_in


def feldman_zhang(correct: np.ndarray, keep: np.ndarray) -> MemorizationResult:
    """Feldman & Zhang (2020) memorization estimate from a population of subset-trained models.

    ``correct``: bool [M, n], ``correct[m, i] = 1[h_m(x_i) = y_i]`` (a probability of the true class
    in [0, 1] is also accepted, as in LeakPro's variant); ``keep``: bool [M, n] training-set masks.
    Any subset ratio works (the estimator uses whatever IN/OUT split ``keep`` has; FZ and Choi et
    al. use 0.7).

    mem_i = mean_{m: keep[m,i]} correct[m,i] - mean_{m: not keep[m,i]} correct[m,i]
    se_i  = sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)    (0/1 outcomes)

    Samples with no IN or no OUT model get NaN and ``valid = False`` (the reference code returns 0).
    """
    keep = _keep(keep)
    c = _outcomes(correct, "correct", keep.shape[0])
    if c.shape != keep.shape:
        raise SignalError(f"correct has shape {c.shape} but keep has {keep.shape}")
    m = keep.shape[0]
    n_in = keep.sum(axis=0).astype(np.float64)
    n_out = m - n_in
    valid = (n_in > 0) & (n_out > 0)
    if c.dtype == bool:                      # counts only; x^2 = x
        s_in = (c & keep).sum(axis=0).astype(np.float64)
        s_all = c.sum(axis=0).astype(np.float64)
        q_in, q_all = s_in, s_all
    else:
        s_in = np.where(keep, c, 0.0).sum(axis=0)
        s_all = c.sum(axis=0)
        q_in = np.where(keep, c * c, 0.0).sum(axis=0)
        q_all = (c * c).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = s_in / n_in
        p_out = (s_all - s_in) / n_out
        v_in = np.maximum(q_in / n_in - p_in**2, 0.0)
        v_out = np.maximum((q_all - q_in) / n_out - p_out**2, 0.0)
        se = np.sqrt(v_in / n_in + v_out / n_out)
    mem = p_in - p_out
    for arr in (mem, se, p_in, p_out):
        arr[~valid] = np.nan
    return MemorizationResult(mem=mem, se=se, p_in=p_in, p_out=p_out,
                              n_in=n_in.astype(np.int64), n_out=n_out.astype(np.int64),
                              valid=valid)


def influence(correct_test: np.ndarray, keep: np.ndarray) -> InfluenceResult:
    """Feldman & Zhang (2020) influence estimate ``infl[i, j]`` of train sample i on held-out j.

    ``correct_test``: bool [M, t] correctness of each model on the held-out set; ``keep``: bool
    [M, n]. infl[i, j] = mean_{m: keep[m,i]} correct_test[m,j] - mean_{m: not keep[m,i]}
    correct_test[m,j], computed with matrix products (``keep.T @ correct_test``; the OUT sums are
    the column totals minus the IN sums), as in the reference ``_masked_dot``; standard errors as
    in :func:`feldman_zhang`, per (i, j). Memory is O(n * t) float64.
    """
    keep = _keep(keep)
    c = _outcomes(correct_test, "correct_test", keep.shape[0])
    n_in = keep.sum(axis=0).astype(np.int64)
    n_out = keep.shape[0] - n_in
    valid = (n_in > 0) & (n_out > 0)
    s_in, s_out, q_in, q_out = _masked_sums(c, keep)
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = n_in[:, None].astype(np.float64), n_out[:, None].astype(np.float64)
        mean_in, mean_out = s_in / a, s_out / b
        var_in = np.maximum(q_in / a - mean_in**2, 0.0)
        var_out = np.maximum(q_out / b - mean_out**2, 0.0)
        se = np.sqrt(var_in / a + var_out / b)
    infl = mean_in - mean_out
    infl[~valid] = np.nan
    se[~valid] = np.nan
    return InfluenceResult(infl=infl, se=se, n_in=n_in, n_out=n_out, valid=valid)


def correlation_band(rho: float) -> str:
    """Choi et al. 2023, §4.1 strength band of |rho|: < 0.4 weak, 0.4-0.59 moderate, >= 0.6 strong."""
    if not np.isfinite(rho):
        return "undefined"
    a = abs(rho)
    for upper, name in BANDS:
        if a < upper:
            return name
    return "strong"


def memorization_report(mem: np.ndarray, privacy_score: np.ndarray | None = None,
                        per_sample_tpr: np.ndarray | None = None, *, n_boot: int = 1000,
                        seed: int = 0, level: float = 0.95) -> dict:
    """Spearman's rho (p-value, bootstrap interval, Choi et al. §4.1 band, significance) of the
    memorization score against the LiRA privacy score and against the per-sample TPR, as in
    Choi et al. 2023, §4.2.

    ``mem`` may be a float[n] array or a :class:`MemorizationResult`. Either comparison may be
    omitted (None). Each comparison is :func:`privaudit.evaluation.statistics.spearman_with_ci`
    (its ``to_json``) plus ``band`` and ``significant``. Returns a JSON-friendly dict::

        {"n": n, "bands": {...}, "mem": {summary},
         "mem_vs_privacy_score": {rho, p_value, lo, hi, n, level, n_boot, band, significant},
         "mem_vs_per_sample_tpr": {...}}
    """
    summary = None
    if isinstance(mem, MemorizationResult):
        summary = mem.summary()
        mem = mem.mem
    mem = np.asarray(mem, dtype=np.float64).ravel()
    report: dict = {"n": int(mem.size),
                    "bands": {"weak": "|rho| < 0.4", "moderate": "0.4 <= |rho| < 0.6",
                              "strong": "|rho| >= 0.6", "significance": f"p < {SIGNIFICANCE}"}}
    if summary is not None:
        report["mem"] = summary
    for name, other in (("privacy_score", privacy_score), ("per_sample_tpr", per_sample_tpr)):
        if other is None:
            continue
        other = np.asarray(other, dtype=np.float64).ravel()
        if other.size != mem.size:
            raise SignalError(f"{name} has {other.size} samples but mem has {mem.size}")
        res = spearman_with_ci(mem, other, n_boot=n_boot, seed=seed, level=level,
                               names=("memorization", name.replace("_", " ")))
        report[f"mem_vs_{name}"] = res.to_json() | {"band": correlation_band(res.rho),
                                                    "significant": bool(res.p_value < SIGNIFICANCE)}
    return report
