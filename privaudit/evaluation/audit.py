"""Empirical lower bounds on the DP parameter epsilon from attack scores.

Pure statistics on score arrays (higher score = member / poisoned):

* ``clopper_pearson``: exact binomial confidence bounds (Clopper & Pearson 1934).
* ``eps_lower_bound``: Nasr, Song, Thakurta, Papernot, Carlini, "Adversary Instantiation: Lower
  Bounds for Differentially Private Machine Learning", IEEE S&P 2021 (arXiv 2101.04535), via
  Clopper–Pearson, as google-deepmind/jax_privacy ``CanaryScoreAuditor.epsilon_clopper_pearson``.
* ``eps_lower_bound_group``: Jagielski, Ullman, Oprea, "Auditing Differentially Private Machine
  Learning: How Private is Private SGD?", NeurIPS 2020 (code: tensorflow/privacy
  research/audit_2020/audit.py), k poison copies => group privacy.
* ``eps_one_run``: Steinke, Nasr, Jagielski, "Privacy Auditing with One (1) Training Run",
  NeurIPS 2023 (arXiv 2305.08846).
* ``dp_bound_violations``: the (eps, delta)-DP hypothesis-testing region (Kairouz, Oh,
  Viswanath, "The Composition Theorem for Differential Privacy", ICML 2015, Thm 2.1).

A threshold picked as the raw maximum over all thresholds invalidates the confidence level;
every estimator here selects it validly: ``"bonferroni"`` (significance divided by the number
of candidate thresholds), ``"split"`` (choose on one random half, bound on the other) or an
explicit float fixed in advance.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.special
import scipy.stats

from privaudit.errors import SignalError

__all__ = [
    "EpsBound",
    "clopper_pearson",
    "eps_per_threshold",
    "eps_lower_bound",
    "eps_lower_bound_group",
    "one_run_p_value",
    "one_run_eps_from_counts",
    "eps_one_run",
    "one_run_power",
    "clopper_pearson_power",
    "dp_bound_violations",
]


@dataclasses.dataclass(frozen=True)
class EpsBound:
    """Result of an epsilon audit: ``eps_lb`` holds with probability >= ``confidence``."""

    eps_lb: float
    confidence: float
    threshold: float | None
    counts: dict
    method: str
    details: dict = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _scores(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise SignalError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise SignalError(f"{name} is empty")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise SignalError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise SignalError(f"{name} contains {int(np.sum(~np.isfinite(a)))} NaN/inf values")
    return a


def _unit(x, name: str) -> float:
    v = float(x)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must lie in (0, 1), got {x}")
    return v


def _delta(x) -> float:
    v = float(x)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"delta must lie in [0, 1), got {x}")
    return v


# --------------------------------------------------------------------------------------------
# Clopper–Pearson
# --------------------------------------------------------------------------------------------
def clopper_pearson(k, n, alpha: float, side: str = "upper"):
    """Clopper–Pearson (1934) exact binomial bound for ``k`` successes in ``n`` trials.

    ``"upper"``: ``Beta.ppf(1 - alpha, k + 1, n - k)`` (= 1 if k = n), P[p > ub] <= alpha.
    ``"lower"``: ``Beta.ppf(alpha, k, n - k + 1)`` (= 0 if k = 0).
    ``"two"``: ``(lower, upper)`` each at ``alpha/2`` (statsmodels ``proportion_confint``
    ``method="beta"``). Vectorised over ``k`` (and ``n``).
    """
    a = _unit(alpha, "alpha")
    if side not in ("upper", "lower", "two"):
        raise ValueError(f"side must be 'upper', 'lower' or 'two', got {side!r}")
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    if k_arr.dtype.kind not in "iub" and not np.all(k_arr == np.round(k_arr)):
        raise ValueError("k must be integer counts")
    if n_arr.dtype.kind not in "iub" and not np.all(n_arr == np.round(n_arr)):
        raise ValueError("n must be integer counts")
    k_arr, n_arr = np.broadcast_arrays(k_arr.astype(np.int64), n_arr.astype(np.int64))
    if np.any(n_arr < 1):
        raise ValueError("n must be >= 1")
    if np.any((k_arr < 0) | (k_arr > n_arr)):
        raise ValueError("k must satisfy 0 <= k <= n")
    scalar = k_arr.ndim == 0

    def upper(s):
        ub = scipy.stats.beta.ppf(1.0 - s, k_arr + 1, np.maximum(n_arr - k_arr, 1))
        return np.where(k_arr < n_arr, ub, 1.0)

    def lower(s):
        lb = scipy.stats.beta.ppf(s, np.maximum(k_arr, 1), n_arr - k_arr + 1)
        return np.where(k_arr > 0, lb, 0.0)

    def out(v):
        return float(v) if scalar else np.asarray(v, dtype=np.float64)

    if side == "upper":
        return out(upper(a))
    if side == "lower":
        return out(lower(a))
    return out(lower(a / 2.0)), out(upper(a / 2.0))


def _cp_upper(k: np.ndarray, n: int, s: float) -> np.ndarray:
    """Unchecked vectorised ``clopper_pearson(k, n, s, "upper")``."""
    k = np.asarray(k, dtype=np.int64)
    return np.where(k < n, scipy.stats.beta.ppf(1.0 - s, k + 1, np.maximum(n - k, 1)), 1.0)


def _cp_lower(k: np.ndarray, n: int, s: float) -> np.ndarray:
    k = np.asarray(k, dtype=np.int64)
    return np.where(k > 0, scipy.stats.beta.ppf(s, np.maximum(k, 1), n - k + 1), 0.0)


# --------------------------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------------------------
def _counts(pos: np.ndarray, neg: np.ndarray, strict: bool):
    """Thresholds (descending) with ``tp = #(pos >= t)``, ``fp = #(neg >= t)`` (``>`` if
    ``strict``). Non-strict adds ``+inf`` (nobody in), as jax_privacy ``_get_tn_fn_counts``."""
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    side = "right" if strict else "left"
    if not strict:
        thr = np.concatenate([[np.inf], thr])
    ps, ns = np.sort(pos), np.sort(neg)
    tp = pos.size - np.searchsorted(ps, thr, side=side)
    fp = neg.size - np.searchsorted(ns, thr, side=side)
    return thr, tp, fp


def _frontier(fp: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """Indices of the upper concave hull of ROC points sorted by (fp, tp) ascending (Andrew's
    monotone chain); collinear and dominated points are dropped, both endpoints kept (the
    Pareto frontier of jax_privacy ``_pareto_frontier``)."""
    idx = np.arange(fp.size)
    for _ in range(30):  # vectorised passes: drop points weakly below their neighbours' chord
        if idx.size <= 2:
            break
        dx, dy = np.diff(fp[idx]), np.diff(tp[idx])
        dominated = dy[:-1] * dx[1:] - dy[1:] * dx[:-1] <= 0
        if not dominated.any():
            break
        idx = idx[np.r_[True, ~dominated, True]]
    x, y = fp[idx], tp[idx]
    hull: list[int] = []
    for i in range(idx.size):  # exact monotone chain on what is left
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (x[a] - x[o]) * (y[i] - y[o]) - (y[a] - y[o]) * (x[i] - x[o])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return idx[np.asarray(hull, dtype=np.int64)]


def _candidates(pos, neg, strict):
    thr, tp, fp = _counts(pos, neg, strict)
    idx = _frontier(fp.astype(np.float64), tp.astype(np.float64))
    return thr[idx], tp[idx], fp[idx]


# --------------------------------------------------------------------------------------------
# Nasr et al. 2021, Clopper–Pearson
# --------------------------------------------------------------------------------------------
def _nasr_eps(tp, fp, n_pos, n_neg, delta, s, two_sided):
    """Per-threshold eps at significance ``s`` (each rate bounded at ``s/2``), Nasr et al. 2021."""
    tp, fp = np.asarray(tp), np.asarray(fp)
    fnr_ub = _cp_upper(n_pos - tp, n_pos, s / 2.0)
    fpr_ub = _cp_upper(fp, n_neg, s / 2.0)
    tpr_lb, tnr_lb = 1.0 - fnr_ub, 1.0 - fpr_ub
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(tpr_lb > delta, np.log(tpr_lb - delta) - np.log(fpr_ub), -np.inf)
        if two_sided:
            eps2 = np.where(tnr_lb > delta, np.log(tnr_lb - delta) - np.log(fnr_ub), -np.inf)
            eps = np.maximum(eps, eps2)
    return np.atleast_1d(eps)


def eps_per_threshold(in_scores, out_scores, *, delta: float = 0.0, alpha: float = 0.05,
                      two_sided: bool = True, frontier: bool = False):
    """Nasr et al. 2021 Clopper–Pearson eps at each threshold (member iff score >= t), each
    at significance ``alpha`` with NO multiplicity correction: for plots and diagnostics; the
    maximum of this curve is NOT a valid bound (use ``eps_lower_bound``).
    Returns ``(thresholds, eps)`` (``eps`` may be negative or ``-inf``)."""
    pos, neg = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    a, d = _unit(alpha, "alpha"), _delta(delta)
    thr, tp, fp = _candidates(pos, neg, False) if frontier else _counts(pos, neg, False)
    return thr, _nasr_eps(tp, fp, pos.size, neg.size, d, a, two_sided)


def _split(x: np.ndarray, rng: np.random.Generator, frac: float):
    perm = rng.permutation(x.size)
    cut = int(x.size * frac)
    return x[perm[:cut]], x[perm[cut:]]


def _select_threshold(threshold, pos, neg, frac, seed, name_pos, name_neg):
    if isinstance(threshold, str):
        if threshold not in ("bonferroni", "split"):
            raise ValueError(
                f"threshold must be 'bonferroni', 'split' or a float, got {threshold!r}")
        if threshold == "split":
            _unit(frac, "split_frac")
            rng = np.random.default_rng(seed)
            p1, p2 = _split(pos, rng, frac)
            n1, n2 = _split(neg, rng, frac)
            if min(p1.size, p2.size, n1.size, n2.size) == 0:
                raise SignalError(
                    f"split leaves an empty half: {name_pos} has {pos.size}, "
                    f"{name_neg} has {neg.size} scores (split_frac={frac})")
            return "split", (p1, n1, p2, n2)
        return "bonferroni", None
    if isinstance(threshold, bool):
        raise ValueError(f"threshold must be 'bonferroni', 'split' or a float, got {threshold!r}")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(
            f"threshold must be 'bonferroni', 'split' or a float, got {threshold!r}") from None
    if math.isnan(t):
        raise ValueError("threshold is NaN")
    return "explicit", t


def eps_lower_bound(in_scores, out_scores, *, delta: float = 0.0, alpha: float = 0.05,
                    threshold="bonferroni", two_sided: bool = True, split_frac: float = 0.5,
                    seed: int = 0) -> EpsBound:
    """(1 - alpha)-confidence lower bound on eps (Nasr et al. 2021; jax_privacy
    ``epsilon_clopper_pearson``).

    Member iff ``score >= tau``. At a threshold: ``FNR_ub = CP_upper(FN, n_pos, s/2)``,
    ``FPR_ub = CP_upper(FP, n_neg, s/2)``, ``eps = ln(1 - FNR_ub - delta) - ln(FPR_ub)`` (if
    ``1 - FNR_ub > delta``); ``two_sided`` also ``ln(1 - FPR_ub - delta) - ln(FNR_ub)``;
    ``eps_lb = max(0, eps)``. Threshold choice: ``"bonferroni"`` (default) ``s = alpha / K``
    with K the Pareto-frontier (upper ROC hull) cut points, then the max over them (jax_privacy
    ``Bonferroni``; K is data-dependent as in the reference); ``"split"``: choose tau on a
    seeded ``split_frac`` part of each class, bound at ``s = alpha`` on the rest; a float: that
    threshold, ``s = alpha``.
    """
    pos, neg = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    a, d = _unit(alpha, "alpha"), _delta(delta)
    kind, data = _select_threshold(threshold, pos, neg, split_frac, seed,
                                   "in_scores", "out_scores")
    details: dict = {"selection": kind, "two_sided": bool(two_sided), "delta": d}
    if kind == "bonferroni":
        thr, tp, fp = _candidates(pos, neg, False)
        s = a / thr.size
        eps = _nasr_eps(tp, fp, pos.size, neg.size, d, s, two_sided)
        i = int(np.argmax(eps))
        tau, tp_i, fp_i = float(thr[i]), int(tp[i]), int(fp[i])
        best = float(eps[i])
        details.update(n_candidates=int(thr.size), significance_per_threshold=s)
        n_pos, n_neg = pos.size, neg.size
    else:
        if kind == "split":
            p1, n1, p2, n2 = data
            thr, tp, fp = _candidates(p1, n1, False)
            eps_sel = _nasr_eps(tp, fp, p1.size, n1.size, d, a, two_sided)
            tau = float(thr[int(np.argmax(eps_sel))])
            pos, neg = p2, n2
            details.update(n_select=(int(p1.size), int(n1.size)), split_frac=split_frac,
                           seed=seed)
        else:
            tau = data
        tp_i, fp_i = int(np.sum(pos >= tau)), int(np.sum(neg >= tau))
        best = float(_nasr_eps(tp_i, fp_i, pos.size, neg.size, d, a, two_sided)[0])
        n_pos, n_neg = pos.size, neg.size
    counts = {"tp": tp_i, "fp": fp_i, "fn": n_pos - tp_i, "tn": n_neg - fp_i,
              "n_pos": int(n_pos), "n_neg": int(n_neg)}
    return EpsBound(eps_lb=max(0.0, best), confidence=1.0 - a, threshold=tau, counts=counts,
                    method=f"nasr2021_clopper_pearson_{kind}", details=details)


# --------------------------------------------------------------------------------------------
# Jagielski et al. 2020 (group privacy, k poison copies)
# --------------------------------------------------------------------------------------------
def _jagielski_eps(c1, c0, n1, n0, s, k):
    """audit.py ``compute_epsilon_and_acc`` at two-sided significance ``s`` (vectorised)."""
    p1 = _cp_lower(c1, n1, s / 2.0)
    p0 = _cp_upper(c0, n0, s / 2.0)
    bad = (p1 <= 1e-5) | (p0 >= 1.0 - 1e-5)          # reference: "divide by zero issues"
    swap = (p0 + p1) > 1.0                             # reference: Appendix A
    p1s, p0s = np.where(swap, 1.0 - p0, p1), np.where(swap, 1.0 - p1, p0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.log(p1s / p0s) / k
    return np.atleast_1d(np.where(bad, 0.0, eps))


def eps_lower_bound_group(poisoned_scores, clean_scores, k_copies: int, alpha: float = 0.05,
                          *, threshold="bonferroni", split_frac: float = 0.5,
                          seed: int = 0) -> EpsBound:
    """Pure-DP lower bound from k-copy poisoning (Jagielski, Ullman, Oprea 2020, Alg. 2;
    tensorflow/privacy research/audit_2020/audit.py).

    One score per trained model. At threshold tau: ``p1_lb`` / ``p0_ub`` are the
    Clopper–Pearson (two-sided, ``s/2`` each) bounds on P[score > tau] for poisoned / clean
    models; if ``p0 + p1 > 1`` use ``(1 - p1, 1 - p0)``; ``eps = ln(p1_lb / p0_ub) / k``
    (group privacy). delta is ignored. ``threshold`` as in ``eps_lower_bound`` (the reference
    maximises over all unique scores without correction; here ``"bonferroni"`` divides
    ``alpha`` by the number of Pareto-frontier candidates).
    """
    pos = _scores(poisoned_scores, "poisoned_scores")
    neg = _scores(clean_scores, "clean_scores")
    a = _unit(alpha, "alpha")
    if isinstance(k_copies, bool) or int(k_copies) != k_copies or k_copies < 1:
        raise ValueError(f"k_copies must be a positive integer, got {k_copies}")
    k = int(k_copies)
    kind, data = _select_threshold(threshold, pos, neg, split_frac, seed,
                                   "poisoned_scores", "clean_scores")
    details: dict = {"selection": kind, "k_copies": k}
    if kind == "bonferroni":
        thr, c1, c0 = _candidates(pos, neg, True)
        s = a / thr.size
        eps = _jagielski_eps(c1, c0, pos.size, neg.size, s, k)
        i = int(np.argmax(eps))
        tau, c1_i, c0_i, best = float(thr[i]), int(c1[i]), int(c0[i]), float(eps[i])
        details.update(n_candidates=int(thr.size), significance_per_threshold=s)
    else:
        if kind == "split":
            p1, n1, p2, n2 = data
            thr, c1, c0 = _candidates(p1, n1, True)
            eps_sel = _jagielski_eps(c1, c0, p1.size, n1.size, a, k)
            tau = float(thr[int(np.argmax(eps_sel))])
            pos, neg = p2, n2
            details.update(split_frac=split_frac, seed=seed)
        else:
            tau = data
        c1_i, c0_i = int(np.sum(pos > tau)), int(np.sum(neg > tau))
        best = float(_jagielski_eps(c1_i, c0_i, pos.size, neg.size, a, k)[0])
    counts = {"poisoned_above": c1_i, "clean_above": c0_i,
              "n_poisoned": int(pos.size), "n_clean": int(neg.size)}
    return EpsBound(eps_lb=max(0.0, best), confidence=1.0 - a, threshold=tau, counts=counts,
                    method=f"jagielski2020_group_{kind}", details=details)


# --------------------------------------------------------------------------------------------
# Steinke, Nasr, Jagielski 2023: one-run audit
# --------------------------------------------------------------------------------------------
def _check_mrv(m, r, v):
    for name, x in (("m", m), ("r", r), ("v", v)):
        if isinstance(x, bool) or int(x) != x:
            raise ValueError(f"{name} must be an integer, got {x}")
    m, r, v = int(m), int(r), int(v)
    if not (0 <= v <= r <= m) or m < 1:
        raise ValueError(f"need 0 <= v <= r <= m and m >= 1, got m={m}, r={r}, v={v}")
    return m, r, v


def _p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    q = scipy.special.expit(eps)                      # 1 / (1 + e^-eps)
    beta = float(scipy.stats.binom.sf(v - 1, r, q))   # P[Binom(r, q) >= v]
    if delta == 0.0 or v == 0:
        return min(beta, 1.0)
    i = np.arange(1, v + 1)
    tail = np.cumsum(scipy.stats.binom.pmf(v - i, r, q))  # P[v > Binom(r, q) >= v - i]
    alpha_term = float(np.max(tail / i))
    return min(beta + alpha_term * delta * 2.0 * m, 1.0)


def one_run_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """p-value of >= ``v`` correct out of ``r`` guesses on ``m`` canaries under
    (eps, delta)-DP (Steinke, Nasr, Jagielski, NeurIPS 2023, Thm 3.3 / Prop. 5.7):
    ``q = 1/(1+e^-eps)``, ``beta = P[Binom(r,q) >= v]``,
    ``alpha = max_{i=1..v} P[v > Binom(r,q) >= v-i] / i``, ``p = beta + alpha*delta*2m``."""
    m, r, v = _check_mrv(m, r, v)
    e = float(eps)
    if not e >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _p_value(m, r, v, e, _delta(delta))


def one_run_eps_from_counts(m: int, r: int, v: int, *, delta: float,
                            p_target: float = 0.05, tol: float = 1e-5) -> float:
    """Largest eps with ``one_run_p_value(m, r, v, eps, delta) < p_target`` (Steinke et al.
    2023, Alg. 1 ``get_eps_audit``), by doubling then bisection to ``tol``; 0 if even eps = 0
    is not rejected."""
    m, r, v = _check_mrv(m, r, v)
    d, p = _delta(delta), _unit(p_target, "p_target")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if _p_value(m, r, v, 0.0, d) >= p:
        return 0.0
    lo, hi = 0.0, 1.0
    while _p_value(m, r, v, hi, d) < p:
        lo, hi = hi, 2.0 * hi
        if hi > 1e4:
            return float(lo)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if _p_value(m, r, v, mid, d) < p:
            lo = mid
        else:
            hi = mid
    return float(lo)


def eps_one_run(scores, included, *, k_pos: int, k_neg: int, delta: float,
                p_target: float = 0.05) -> EpsBound:
    """One-run audit (Steinke, Nasr, Jagielski, NeurIPS 2023, Alg. 1).

    ``scores`` [m]: one score per canary (higher = member); ``included`` bool [m]: whether the
    canary was in training (each independently with probability 1/2 by design). The top
    ``k_pos`` scores are guessed IN and the bottom ``k_neg`` OUT; the counts must be fixed
    before looking at the data (choosing them post hoc invalidates the bound). Ties at a cut are
    broken by index order. ``eps_lb`` holds with confidence ``1 - p_target``.
    """
    s = _scores(scores, "scores")
    inc = np.asarray(included)
    if inc.shape != s.shape:
        raise SignalError(f"shape mismatch: included {inc.shape} vs scores {s.shape}")
    if inc.dtype != bool:
        if not (np.issubdtype(inc.dtype, np.number) and np.all((inc == 0) | (inc == 1))):
            raise SignalError("included must be boolean or contain only 0/1")
        inc = inc.astype(bool)
    m = s.size
    for name, x in (("k_pos", k_pos), ("k_neg", k_neg)):
        if isinstance(x, bool) or int(x) != x or x < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {x}")
    kp, kn = int(k_pos), int(k_neg)
    if kp + kn < 1 or kp + kn > m:
        raise ValueError(f"need 1 <= k_pos + k_neg <= m={m}, got {kp} + {kn}")
    d, p = _delta(delta), _unit(p_target, "p_target")
    order = np.argsort(-s, kind="stable")
    top, bottom = order[:kp], order[m - kn:] if kn else order[:0]
    correct_pos, correct_neg = int(inc[top].sum()), int((~inc[bottom]).sum())
    r, v = kp + kn, correct_pos + correct_neg
    eps = one_run_eps_from_counts(m, r, v, delta=d, p_target=p)
    counts = {"m": m, "r": r, "v": v, "k_pos": kp, "k_neg": kn,
              "correct_pos": correct_pos, "correct_neg": correct_neg}
    cut_hi = float(s[top[-1]]) if kp else None
    cut_lo = float(s[bottom[0]]) if kn else None
    return EpsBound(eps_lb=eps, confidence=1.0 - p, threshold=cut_hi, counts=counts,
                    method="steinke2023_one_run",
                    details={"delta": d, "p_value_at_0": _p_value(m, r, v, 0.0, d),
                             "threshold_out": cut_lo})


# --------------------------------------------------------------------------------------------
# power: the largest bound a design can certify (a perfect attack)
# --------------------------------------------------------------------------------------------
def one_run_power(m: int, k_pos: int, k_neg: int, *, delta: float, p_target: float = 0.05) -> float:
    """Largest eps the one-run audit (Steinke et al. 2023) of ``m`` canaries with ``k_pos`` /
    ``k_neg`` guesses can certify at confidence ``1 - p_target``: every guess correct (v = r),
    i.e. ``eps_one_run`` on perfectly separated scores. No achieved bound exceeds it (the bound
    grows with v <= r)."""
    for name, x in (("k_pos", k_pos), ("k_neg", k_neg)):
        if isinstance(x, bool) or int(x) != x or x < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {x}")
    r = int(k_pos) + int(k_neg)
    if r < 1 or r > int(m):
        raise ValueError(f"need 1 <= k_pos + k_neg <= m={m}, got {k_pos} + {k_neg}")
    return one_run_eps_from_counts(int(m), r, r, delta=delta, p_target=p_target)


def clopper_pearson_power(n_pos: int, n_neg: int, *, delta: float = 0.0, alpha: float = 0.05,
                          two_sided: bool = True) -> float:
    """Largest eps the Clopper–Pearson audit (Nasr et al. 2021) of ``n_pos`` IN and ``n_neg`` OUT
    independent trials can certify at confidence ``1 - alpha``: all IN trials detected, no false
    positive, at a threshold fixed in advance (no multiplicity correction), i.e.
    ``eps_lower_bound`` on perfectly separated scores with an explicit threshold. Every threshold
    rule (Bonferroni, split, explicit) gives at most this bound on the same trials."""
    if int(n_pos) < 1 or int(n_neg) < 1:
        return 0.0
    return eps_lower_bound(np.ones(int(n_pos)), np.zeros(int(n_neg)), delta=delta, alpha=alpha,
                           threshold=0.5, two_sided=two_sided).eps_lb


# --------------------------------------------------------------------------------------------
# DP region
# --------------------------------------------------------------------------------------------
def dp_bound_violations(tpr, fpr, eps: float, delta: float, tol: float = 1e-12) -> np.ndarray:
    """Which ``(fpr, tpr)`` points lie outside the (eps, delta)-DP region (Kairouz, Oh,
    Viswanath, ICML 2015, Thm 2.1): violated iff ``TPR > e^eps FPR + delta``
    or ``1 - FPR > e^eps (1 - TPR) + delta`` (beyond ``tol``). Returns bool, broadcast shape."""
    t = np.asarray(tpr, dtype=np.float64)
    f = np.asarray(fpr, dtype=np.float64)
    if t.shape != f.shape:
        raise SignalError(f"shape mismatch: tpr {t.shape} vs fpr {f.shape}")
    if np.any(np.isnan(t)) or np.any(np.isnan(f)):
        raise SignalError("tpr/fpr contain NaN")
    if np.any((t < 0) | (t > 1) | (f < 0) | (f > 1)):
        raise ValueError("tpr and fpr must lie in [0, 1]")
    e = float(eps)
    if not e >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    d = float(delta)
    if not (0.0 <= d <= 1.0):
        raise ValueError(f"delta must lie in [0, 1], got {delta}")
    ee = math.exp(e) if e < 700 else math.inf
    with np.errstate(invalid="ignore"):
        v1 = t > ee * f + d + tol
        v2 = (1.0 - f) > ee * (1.0 - t) + d + tol
    return v1 | v2
