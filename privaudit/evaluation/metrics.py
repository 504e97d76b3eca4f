"""Membership-inference metrics: plain functions of ``(y_true: bool[n], score: float[n])``.

Higher score = more likely member. Conventions follow the official code of the attacks' papers;
their definitions differ, which matters at low FPR, the regime Carlini et al. ("Membership
Inference Attacks From First Principles", IEEE S&P 2022, Sec. III-B) argue should be reported:

* ROC / AUC: the ROC of ``sklearn.metrics.roc_curve`` (``drop_intermediate=False``, reproduced
  exactly without its per-call overhead) and the trapezoid area.
* TPR @ FPR = alpha: ``mode="strict"`` (default; privacytrustlab/ml_privacy_meter ``audit.py``,
  ``tpr[np.where(fpr <= alpha)[0][-1]]``), ``"lira"`` (tensorflow/privacy
  ``research/mi_lira_2021/plot.py`` uses strict ``<``), ``"interp"`` (Curvature-Clues
  notebooks, DeepakTatachar/Curvature-Clues, ``np.interp(alpha, fpr, tpr)``).
* Balanced accuracy: ``mode="max"`` (LiRA ``plot.py`` ``sweep``: max over thresholds of
  ``1 - (FPR + FNR)/2``), ``"eer"`` (Curvature-Clues notebooks: equal-error threshold, then
  ``sklearn.metrics.balanced_accuracy_score``).
* Advantage (Yeom et al. 2018): ``max_tau TPR - FPR``.

Bootstrap CIs resample positives and negatives separately (stratified percentile bootstrap,
as jax_privacy ``CanaryScoreAuditor._bootstrap``); ROC-based metrics of this module are
vectorised over resamples by sorting once and resampling counts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from privaudit.errors import SignalError

__all__ = [
    "roc_curve",
    "auc",
    "tpr_at_fpr",
    "balanced_accuracy",
    "advantage",
    "fpr_resolvable",
    "nonmembers_needed",
    "tie_at_fpr",
    "headline",
    "summary",
    "bootstrap_ci",
    "aggregate",
]

_TPR_MODES = ("strict", "lira", "interp")
_BA_MODES = ("max", "eer")
_BOOT_CHUNK = 32  # resamples drawn per chunk (same draws for the fast and the generic path)


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------
def _check(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(y_true, score)``; return ``(bool[n], float64[n])`` or raise SignalError."""
    y = np.asarray(y_true)
    s = np.asarray(score)
    if y.ndim != 1 or s.ndim != 1:
        raise SignalError(
            f"y_true and score must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise SignalError(f"shape mismatch: y_true {y.shape} vs score {s.shape}")
    if y.dtype != bool:
        if not (np.issubdtype(y.dtype, np.number) and np.all((y == 0) | (y == 1))):
            raise SignalError("y_true must be boolean or contain only 0/1")
        y = y.astype(bool)
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise SignalError(f"score must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise SignalError(f"score contains {int(np.sum(~np.isfinite(s)))} NaN/inf values")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise SignalError(
            f"empty class: y_true has {n_pos} members and {y.size - n_pos} non-members")
    return y, s


def _check_alpha(alpha, name: str = "alpha") -> float:
    a = float(alpha)
    if not (0.0 < a < 1.0) or math.isnan(a):
        raise ValueError(f"{name} must lie in (0, 1), got {alpha}")
    return a


def _check_mode(mode: str, allowed: Sequence[str], name: str = "mode") -> str:
    if mode not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {mode!r}")
    return mode


# --------------------------------------------------------------------------------------------
# point metrics
# --------------------------------------------------------------------------------------------
def roc_curve(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr, thresholds)``: one point per distinct score, first threshold
    ``+inf``, equal (bit for bit, tested) to ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)``, without scikit-learn's per-call validation (a run computes
    hundreds of ROCs) or its import."""
    y, s = _check(y_true, score)
    return _roc(y, s)


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(s, kind="mergesort")[::-1]          # as scikit-learn: descending, stable
    s, y = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]   # last index of each block of tied scores
    tps = np.cumsum(y, dtype=np.float64)[ends]
    fps = 1.0 + ends - tps
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, s[ends]]


def _area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))      # fpr is non-decreasing (sklearn.metrics.auc)


def auc(y_true, score) -> float:
    """Area under the ROC curve (trapezoid rule, ties count 1/2)."""
    fpr, tpr, _ = roc_curve(y_true, score)
    return _area(fpr, tpr)


def _balanced_accuracy_at(y: np.ndarray, predicted: np.ndarray) -> float:
    """``sklearn.metrics.balanced_accuracy_score`` of a binary prediction: mean recall of the two classes."""
    return float(np.mean([np.mean(~predicted[~y]), np.mean(predicted[y])]))


def _tpr_from_roc(fpr: np.ndarray, tpr: np.ndarray, alpha: float, mode: str) -> float:
    if mode == "interp":
        return float(np.interp(alpha, fpr, tpr))
    mask = fpr < alpha if mode == "lira" else fpr <= alpha
    return float(tpr[np.flatnonzero(mask)[-1]])


def tpr_at_fpr(y_true, score, alpha: float, mode: str = "strict") -> float:
    """TPR at FPR = ``alpha`` (the low-FPR metric of Carlini et al., IEEE S&P 2022, Sec. III-B).

    ``"strict"`` (default, ml_privacy_meter): TPR at the largest threshold with FPR <= alpha,
    no interpolation. ``"lira"``: same with strict ``FPR < alpha`` (LiRA plot.py).
    ``"interp"``: ``np.interp(alpha, fpr, tpr)`` (Curvature-Clues notebooks). When
    ``alpha < 1/n_neg`` only FPR = 0 is attainable: the value is not an estimate of the TPR at
    ``alpha`` (``summary`` flags it).
    """
    a = _check_alpha(alpha)
    _check_mode(mode, _TPR_MODES)
    fpr, tpr, _ = roc_curve(y_true, score)
    return _tpr_from_roc(fpr, tpr, a, mode)


def fpr_resolvable(alpha: float, n_neg: int) -> bool:
    """Whether ``n_neg`` non-members resolve FPR = ``alpha``: at least one false positive is
    allowed (``alpha * n_neg >= 1``); below that only FPR = 0 is attainable."""
    return float(alpha) * int(n_neg) >= 1.0 - 1e-9


def nonmembers_needed(alpha: float) -> int:
    """The fewest non-members that resolve FPR = ``alpha``: ``ceil(1 / alpha)``."""
    return int(math.ceil(1.0 / _check_alpha(alpha) - 1e-9))


def tie_at_fpr(y_true, score, alpha: float, mode: str = "strict") -> bool:
    """Whether the TPR at FPR = ``alpha`` is held down by tied scores: the threshold that would
    use the allowed false positives falls inside a block of tied scores (including the block
    exceeds ``alpha``), so the reported TPR sits at a higher threshold with fewer false positives
    than allowed (possibly 0). Always False for ``mode="interp"`` (it interpolates into the block).
    """
    a = _check_alpha(alpha)
    _check_mode(mode, _TPR_MODES)
    if mode == "interp":
        return False
    fpr, _, _ = roc_curve(y_true, score)
    return _tie_from_roc(fpr, int((~np.asarray(y_true, dtype=bool)).sum()), a, mode)


def _tie_from_roc(fpr: np.ndarray, n_neg: int, a: float, mode: str) -> bool:
    if mode == "interp":
        return False
    fp = np.rint(fpr * n_neg).astype(np.int64)
    allowed = int(math.floor(a * n_neg + 1e-9))
    if mode == "lira":                       # strict FPR < alpha
        allowed = int(math.ceil(a * n_neg - 1e-9)) - 1
    used = int(fp[np.flatnonzero(fp <= allowed)[-1]])
    return used < allowed                    # the next distinct score brings >= 2 non-members past the cut


def headline(y_true, score, fprs: Sequence[float], mode: str = "strict") -> tuple[dict[str, float], set[str]]:
    """One target's reported metrics from a single ROC: ``auc``, ``balanced_accuracy`` (``"max"``)
    and ``tpr@a`` for each ``a`` in ``fprs`` (equal to :func:`auc`, :func:`balanced_accuracy` and
    :func:`tpr_at_fpr`), and the ``tpr@a`` keys whose threshold falls in a block of tied scores
    (:func:`tie_at_fpr`)."""
    _check_mode(mode, _TPR_MODES)
    alphas = [_check_alpha(a, "fpr") for a in fprs]
    y, s = _check(y_true, score)
    fpr, tpr, _ = _roc(y, s)
    out = {"auc": _area(fpr, tpr), "balanced_accuracy": float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))}
    n_neg = int((~y).sum())
    tied = set()
    for a in alphas:
        out[f"tpr@{a:g}"] = _tpr_from_roc(fpr, tpr, a, mode)
        if _tie_from_roc(fpr, n_neg, a, mode):
            tied.add(f"tpr@{a:g}")
    return out, tied


def balanced_accuracy(y_true, score, mode: str = "max") -> float:
    """Balanced accuracy, in the two definitions found in the attacks' official code.

    ``"max"`` (default, LiRA plot.py ``sweep``): ``max_tau 1 - (FPR + FNR)/2``.
    ``"eer"`` (Curvature-Clues notebooks): ``tau* = thr[argmin |fpr + tpr - 1|]``, predict
    member iff ``score >= tau*``, then ``sklearn.metrics.balanced_accuracy_score``; always
    <= ``"max"``. (The notebooks compute the ROC of ``-y_pred`` but binarise ``y_pred``; here
    both use ``score``.)
    """
    _check_mode(mode, _BA_MODES)
    y, s = _check(y_true, score)
    fpr, tpr, thr = _roc(y, s)
    if mode == "max":
        return float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))
    tau = thr[int(np.argmin(np.abs(fpr + tpr - 1.0)))]
    return _balanced_accuracy_at(y, s >= tau)


def advantage(y_true, score) -> float:
    """Membership advantage ``max_tau TPR - FPR`` (Yeom et al. 2018, Def. 4; = KS distance)."""
    fpr, tpr, _ = roc_curve(y_true, score)
    return float(np.max(tpr - fpr))


def summary(y_true, score, fprs: Sequence[float] = (1e-2, 1e-3, 1e-4),
            mode: str = "strict") -> dict:
    """All headline metrics for one target model (AUC, balanced accuracy, advantage, TPR at low
    FPR).

    Keys: ``auc``, ``balanced_accuracy`` (LiRA max), ``balanced_accuracy_eer``, ``advantage``,
    ``n_pos``, ``n_neg``, ``tpr_mode`` and, for each ``a`` in ``fprs`` (key suffix ``f"{a:g}"``):
    ``tpr@a``, ``n_fp@a`` = floor(a * n_neg), the number of negatives the value rests on, and
    ``estimable@a`` = ``a >= 1/n_neg``. A non-estimable value is still reported (it is the
    TPR at FPR = 0) and named in ``warnings``.
    """
    _check_mode(mode, _TPR_MODES)
    alphas = [_check_alpha(a, "fpr") for a in fprs]
    y, s = _check(y_true, score)
    fpr, tpr, thr = _roc(y, s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tau = thr[int(np.argmin(np.abs(fpr + tpr - 1.0)))]
    out: dict = {
        "auc": _area(fpr, tpr),
        "balanced_accuracy": float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0)),
        "balanced_accuracy_eer": _balanced_accuracy_at(y, s >= tau),
        "advantage": float(np.max(tpr - fpr)),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "tpr_mode": mode,
    }
    warnings: list[str] = []
    for a in alphas:
        key = f"{a:g}"
        estimable = a * n_neg >= 1.0
        out[f"tpr@{key}"] = _tpr_from_roc(fpr, tpr, a, mode)
        out[f"n_fp@{key}"] = int(math.floor(a * n_neg + 1e-9))
        out[f"estimable@{key}"] = bool(estimable)
        if not estimable:
            warnings.append(
                f"tpr@{key} not estimable: alpha={a:g} < 1/n_neg={1.0 / n_neg:.3g}")
    out["warnings"] = warnings
    return out


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------
def _rows_take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, idx[:, None], axis=1)[:, 0]


def _vec_tpr(fpr: np.ndarray, tpr: np.ndarray, alpha: float, mode: str) -> np.ndarray:
    """Row-wise ``_tpr_from_roc`` for ROC arrays ``[B, G]`` (nondecreasing along axis 1)."""
    mask = fpr < alpha if mode == "lira" else fpr <= alpha
    j = mask.sum(axis=1) - 1                      # last index with fpr <= alpha (>= 0)
    t0 = _rows_take(tpr, j)
    if mode != "interp":
        return t0
    f0 = _rows_take(fpr, j)
    jn = np.minimum(j + 1, fpr.shape[1] - 1)
    f1, t1 = _rows_take(fpr, jn), _rows_take(tpr, jn)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = (t1 - t0) / (f1 - f0) * (alpha - f0) + t0   # same formula as np.interp
    return np.where((jn == j) | (f0 == alpha), t0, val)


def _fast_metric(metric) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """Vectorised ``(fpr[B, G], tpr[B, G]) -> value[B]`` for this module's ROC metrics."""
    func, kw = metric, {}
    if isinstance(metric, str):
        name = metric
        if name.startswith("tpr@"):
            return functools.partial(_vec_tpr, alpha=_check_alpha(float(name[4:])),
                                     mode="strict")
        table = {"auc": auc, "advantage": advantage, "balanced_accuracy": balanced_accuracy}
        if name == "balanced_accuracy_eer":
            func, kw = balanced_accuracy, {"mode": "eer"}
        elif name in table:
            func = table[name]
        else:
            raise ValueError(f"unknown metric name {metric!r}")
    elif isinstance(metric, functools.partial):
        if metric.args:
            return None
        func, kw = metric.func, dict(metric.keywords)
    if func is auc and not kw:
        return lambda f, t: np.sum(np.diff(f, axis=1) * (t[:, 1:] + t[:, :-1]), axis=1) / 2.0
    if func is advantage and not kw:
        return lambda f, t: np.max(t - f, axis=1)
    if func is balanced_accuracy and set(kw) <= {"mode"}:
        mode = _check_mode(kw.get("mode", "max"), _BA_MODES)
        if mode == "max":
            return lambda f, t: np.max(1.0 - (f + (1.0 - t)) / 2.0, axis=1)

        def _eer(f, t):
            i = np.argmin(np.abs(f + t - 1.0), axis=1)
            return (_rows_take(t, i) + 1.0 - _rows_take(f, i)) / 2.0
        return _eer
    if func is tpr_at_fpr and "alpha" in kw and set(kw) <= {"alpha", "mode"}:
        return functools.partial(_vec_tpr, alpha=_check_alpha(kw["alpha"]),
                                 mode=_check_mode(kw.get("mode", "strict"), _TPR_MODES))
    return None


def bootstrap_ci(metric, y_true, score, *, n_boot: int = 200, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``metric(y_true, score)`` (Efron & Tibshirani 1993, §13.3);
    the resampled values come from :func:`bootstrap_values`."""
    lvl = _check_alpha(level, "level")
    values = bootstrap_values(metric, y_true, score, n_boot=n_boot, seed=seed)
    lo, hi = np.nanquantile(values, [(1.0 - lvl) / 2.0, 1.0 - (1.0 - lvl) / 2.0])
    return float(lo), float(hi)


def bootstrap_values(metric, y_true, score, *, n_boot: int = 200, seed: int = 0) -> np.ndarray:
    """``metric`` on ``n_boot`` bootstrap resamples of ``(y_true, score)``: ``float[n_boot]``.

    Positives and negatives are resampled separately with replacement (stratified, so no
    resample has an empty class; jax_privacy ``BootstrapParams`` convention). ``metric`` is a
    callable ``(y_true, score) -> float``, or a name: ``"auc"``, ``"advantage"``,
    ``"balanced_accuracy"``, ``"balanced_accuracy_eer"``, ``"tpr@<alpha>"`` (strict). This
    module's ROC metrics (also as ``functools.partial`` with keyword arguments, e.g.
    ``partial(tpr_at_fpr, alpha=1e-3)``) take a vectorised path: the scores are sorted once and
    each resample is a vector of counts, so 50k samples x 200 resamples take about a second.
    Other callables are evaluated on each resample.
    """
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot}")
    n_boot = int(n_boot)
    fast = _fast_metric(metric)
    if fast is None and not callable(metric):
        raise ValueError(f"metric must be callable or a metric name, got {metric!r}")
    y, s = _check(y_true, score)
    pos_idx, neg_idx = np.flatnonzero(y), np.flatnonzero(~y)
    n_pos, n_neg = pos_idx.size, neg_idx.size
    rng = np.random.default_rng(seed)

    values = np.empty(n_boot)
    if fast is not None:
        order = np.argsort(-s, kind="mergesort")
        s_sorted = s[order]
        ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
        # rank (in descending-score order) of each positive / negative, in pos_idx order
        rank = np.empty(s.size, dtype=np.int64)
        rank[order] = np.arange(s.size)
        p_rank, n_rank = rank[pos_idx], rank[neg_idx]
        p_perm, n_perm = np.argsort(p_rank), np.argsort(n_rank)
        # number of positives / negatives whose rank is <= each group end
        k_pos = np.searchsorted(np.sort(p_rank), ends, side="right")
        k_neg = np.searchsorted(np.sort(n_rank), ends, side="right")
    for start in range(0, n_boot, _BOOT_CHUNK):
        b = min(_BOOT_CHUNK, n_boot - start)
        ip = rng.integers(0, n_pos, size=(b, n_pos))
        ineg = rng.integers(0, n_neg, size=(b, n_neg))
        if fast is None:
            for r in range(b):
                idx = np.concatenate([pos_idx[ip[r]], neg_idx[ineg[r]]])
                values[start + r] = float(metric(y[idx], s[idx]))
            continue
        off = np.arange(b)[:, None]
        cp = np.bincount((ip + off * n_pos).ravel(), minlength=b * n_pos).reshape(b, n_pos)
        cn = np.bincount((ineg + off * n_neg).ravel(), minlength=b * n_neg).reshape(b, n_neg)
        # cumulative counts in descending-score order, read at each distinct-score boundary
        cpc = np.concatenate([np.zeros((b, 1)), np.cumsum(cp[:, p_perm], axis=1)], axis=1)
        cnc = np.concatenate([np.zeros((b, 1)), np.cumsum(cn[:, n_perm], axis=1)], axis=1)
        tp = np.concatenate([np.zeros((b, 1)), cpc[:, k_pos]], axis=1)
        fp = np.concatenate([np.zeros((b, 1)), cnc[:, k_neg]], axis=1)
        values[start:start + b] = fast(fp / n_neg, tp / n_pos)
    return values


# --------------------------------------------------------------------------------------------
# aggregation over target models
# --------------------------------------------------------------------------------------------
def aggregate(per_target: list[dict], ddof: int = 0) -> dict:
    """Mean ± std over target models (the Curvature-Clues notebooks use 3 targets;
    Carlini et al., IEEE S&P 2022, Sec. V, use 10).

    Numeric (and boolean) entries become ``{"mean", "std", "n"}`` (NaN-aware, ``np.std`` with
    ``ddof``); other entries are kept if equal across targets, else listed (``warnings`` lists
    are concatenated, without duplicates).
    """
    if not isinstance(per_target, (list, tuple)) or len(per_target) == 0:
        raise ValueError("aggregate needs a non-empty list of per-target metric dicts")
    if not all(isinstance(d, dict) for d in per_target):
        raise ValueError("aggregate: every per-target entry must be a dict")
    keys: list = []
    for d in per_target:
        keys.extend(k for k in d if k not in keys)
    out: dict = {}
    for k in keys:
        vals = [d[k] for d in per_target if k in d]
        if all(isinstance(v, (bool, int, float, np.number, np.bool_)) for v in vals):
            arr = np.asarray(vals, dtype=np.float64)
            ok = arr[~np.isnan(arr)]
            out[k] = {
                "mean": float(ok.mean()) if ok.size else float("nan"),
                "std": float(ok.std(ddof=ddof)) if ok.size > ddof else float("nan"),
                "n": int(ok.size),
            }
        elif all(isinstance(v, list) for v in vals):
            merged: list = []
            for v in vals:
                merged.extend(x for x in v if x not in merged)
            out[k] = merged
        elif all(v == vals[0] for v in vals):
            out[k] = vals[0]
        else:
            out[k] = vals
    return out
