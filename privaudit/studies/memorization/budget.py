"""The shadow-model budget: how many reference (shadow) models an attack needs, measured and
predicted (the memorization study's second question).

Choi, Tople, Chandrasekaran, Jha, "Why Train More? Effective and Efficient Membership Inference
via Memorization", arXiv:2310.08015, 2023, §5.3 / §7.2: with highly memorized samples about 5
shadow models match the attack success of 2000 (about 400x fewer); random out-of-distribution
samples need < 50, random in-distribution samples > 100 (CIFAR-10) / > 1000 (MNIST).

* :func:`shadow_budget_curve` measures it: AUC and TPR@FPR per sample group as a function of the
  number R of reference models drawn from a trained population; :func:`budget_curve` runs it for
  a registered attack, with the offline variant where R is too small for the online one.
* :func:`models_to_reach`, :func:`reduction_factor`, :func:`saturation` and
  :func:`cross_reduction` read the curve.
* :func:`hellinger_budget`, :func:`hellinger_from_signal`, :func:`bound_curve` and
  :func:`bounds` give the theoretical prediction N = O(1/H^2(P_in, P_out)) (Choi et al., Lemma 2)
  and N = O(1/mem^2) (their Corollary 1, via H^2 >= mem^2 / 2). The paper states these bounds in
  its prose; ``docs/studies.md`` derives the forms used here. The constant in O(.) is unknown
  (``const``): only the scaling and constant-free ratios between groups are predictions.

Pure NumPy on arrays; attacks follow the calling convention of ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation import metrics
from privaudit.evaluation.per_sample import in_out_gaussian_params
from privaudit.evaluation.statistics import bootstrap_mean_ci
from privaudit.studies.theory import hellinger_gaussian

__all__ = [
    "DEFAULT_SIZES", "shadow_budget_curve", "models_to_reach", "reduction_factor", "hellinger_budget",
    "hellinger_from_signal", "bound_curve", "metric_name", "default_sizes", "budget_curve", "saturation",
    "cross_reduction", "bounds", "within_group_reductions",
]

DEFAULT_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)

AttackFn = Callable[..., np.ndarray]


# --------------------------------------------------------------------------------------------
# metrics: privaudit.evaluation.metrics (strict TPR@FPR = largest ROC point with FPR <= alpha, no
# interpolation), wrapped so that an empty class gives NaN (a budget draw may leave a small group
# without members or non-members) instead of an error.
# --------------------------------------------------------------------------------------------

def metric_name(fpr: float) -> str:
    """Key of the TPR@FPR metric in curve rows, e.g. ``tpr@0.001``."""
    return f"tpr@{fpr:g}"


def _one_class(y: np.ndarray) -> bool:
    return bool(y.all() or not y.any())


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """:func:`privaudit.evaluation.metrics.auc`; NaN when y has a single class."""
    return float("nan") if _one_class(y) else metrics.auc(y, s)


def _tpr_at_fpr(y: np.ndarray, s: np.ndarray, alpha: float) -> float:
    """Strict TPR at FPR <= alpha: :func:`privaudit.evaluation.metrics.tpr_at_fpr`; NaN when y has a
    single class. ``alpha = 0`` (TPR at zero FPR) is passed on as the smallest positive float:
    attainable FPRs are multiples of 1 / n_neg, so ``FPR <= 5e-324`` is the ``FPR = 0`` point."""
    if _one_class(y):
        return float("nan")
    return metrics.tpr_at_fpr(y, s, max(float(alpha), _TINY), mode="strict")


_TINY = float(np.nextafter(0.0, 1.0))


# --------------------------------------------------------------------------------------------
# the empirical curve
# --------------------------------------------------------------------------------------------

def _check_inputs(signal, keep, labels, targets, sample_groups):
    keep = np.asarray(keep)
    if keep.ndim != 2 or keep.dtype != bool:
        raise SignalError(f"keep must be bool [M, n], got {keep.dtype} {keep.shape}")
    signal = np.asarray(signal)
    if signal.ndim < 2 or signal.shape[:2] != keep.shape:
        raise SignalError(f"signal must be [M, n, ...] matching keep {keep.shape}, got {signal.shape}")
    m, n = keep.shape
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise SignalError(f"labels must have shape ({n},), got {labels.shape}")
    targets = [int(t) for t in targets]
    if not targets:
        raise ConfigError("shadow_budget_curve needs at least one target model")
    if len(set(targets)) != len(targets) or min(targets) < -m or max(targets) >= m:
        raise ConfigError(f"targets must be distinct model indices in 0..{m - 1}, got {targets}")
    targets = [t % m for t in targets]
    if not sample_groups:
        raise ConfigError("sample_groups must name at least one group, e.g. {'all': np.ones(n, bool)}")
    groups = {}
    for name, mask in sample_groups.items():
        mask = np.asarray(mask)
        if mask.shape != (n,) or mask.dtype != bool:
            raise SignalError(f"sample group {name!r} must be bool [{n}], got {mask.dtype} {mask.shape}")
        groups[str(name)] = mask
    return signal, keep, labels, targets, groups


_MODE_REQUIREMENTS = {"online": (1, 1), "offline": (0, 1), "none": (0, 0)}


def _requirements(fn, need_in, need_out, default):
    """(min IN, min OUT) references per sample: explicit values win, then ``fn.mode``."""
    mode_req = _MODE_REQUIREMENTS.get(getattr(fn, "mode", None), default)
    need_in = mode_req[0] if need_in is None else int(need_in)
    need_out = mode_req[1] if need_out is None else int(need_out)
    if need_in < 0 or need_out < 0:
        raise ConfigError(f"min IN/OUT references must be >= 0, got {need_in}, {need_out}")
    return need_in, need_out


def shadow_budget_curve(attack_fn: AttackFn, signal: np.ndarray, keep: np.ndarray,
                        labels: np.ndarray, *, targets: Sequence[int],
                        sample_groups: Mapping[str, np.ndarray],
                        sizes: Iterable[int] = DEFAULT_SIZES, repeats: int = 3, seed: int = 0,
                        fprs: Sequence[float] = (1e-3,), attack_params: Mapping | None = None,
                        min_in: int | None = None, min_out: int | None = None,
                        fallback_fn: AttackFn | None = None,
                        fallback_params: Mapping | None = None,
                        fallback_min_in: int | None = None, fallback_min_out: int | None = None,
                        n_boot: int = 1000, confidence: float = 0.95) -> list[dict]:
    """Attack success as a function of the number R of reference (shadow) models.

    For each R in ``sizes`` and each of ``repeats`` draws, R reference models are drawn at random
    (seeded) from the non-target models; draws are *nested* (the first R of one random permutation
    per repeat, so R=4 extends R=2 — common random numbers make the curve smoother). Every model in
    ``targets`` is scored with ``attack_fn(signal[t], signal[refs], keep[refs], labels=labels,
    **attack_params)`` and AUC and strict TPR@FPR are computed separately for each sample group
    (``sample_groups``: name -> bool[n], e.g. ``{"high_mem": mem > 0.8, "random": rand_mask}``),
    with the target's ``keep`` row as ground truth.

    Requirements per sample: the attack needs at least ``min_in`` IN and ``min_out`` OUT
    references per sample (online LiRA: 1 and 1; offline attacks: 0 and 1; global attacks: 0, 0).
    Left as None, they follow the attack's ``mode`` attribute when it has one (an ``AttackSpec``
    of ``privaudit.attacks.registry``: "online" -> 1, 1; "offline" -> 0, 1; "none" -> 0, 0),
    else 1, 1 for the attack and 0, 1 for the fallback.
    In a draw, samples below that are left out (independent of the target's membership, so this
    does not bias the metrics; the mean left-out fraction is reported): the attack is called on
    the eligible samples only (``signal[:, eligible]`` etc.), so registry attacks that refuse a
    sample without IN/OUT references can be used as they are (attacks that pool statistics over
    samples, e.g. global-variance LiRA or RMIA's population, then pool over the eligible ones).
    NaN scores are left out too. If R < min_in + min_out, ``fallback_fn`` (e.g. the offline/global variant,
    with its own ``fallback_min_in/out``) is used when given; otherwise the size is skipped with
    a reason.

    Returns one dict per (R, group)::

        {"n_models": R, "group": name, "group_size": int, "attack": "primary"|"fallback"|None,
         "skipped": None | reason, "n_evals": repeats * len(targets),
         "excluded_frac": mean fraction of the group left out,
         "auc_mean", "auc_std", "auc_ci_low", "auc_ci_high", "auc_values": [...],
         "tpr@0.001_mean", ... (same five keys per FPR)}

    ``*_ci_*`` is a percentile bootstrap interval (``n_boot`` resamples,
    :func:`privaudit.evaluation.statistics.bootstrap_mean_ci`) of the mean over the repeats x
    targets evaluations; ``*_std`` their standard deviation (ddof=0).
    """
    signal, keep, labels, targets, groups = _check_inputs(signal, keep, labels, targets,
                                                          sample_groups)
    min_in, min_out = _requirements(attack_fn, min_in, min_out, (1, 1))
    fallback_min_in, fallback_min_out = _requirements(fallback_fn, fallback_min_in,
                                                      fallback_min_out, (0, 1))
    sizes = sorted({int(r) for r in sizes})
    if not sizes or sizes[0] < 0:
        raise ConfigError(f"sizes must be non-negative integers, got {sizes}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    fprs = [float(f) for f in fprs]
    if any(not 0.0 <= f < 1.0 for f in fprs):
        raise ConfigError(f"fprs must lie in [0, 1), got {fprs}")
    attack_params = dict(attack_params or {})
    fallback_params = dict(fallback_params or {})
    metric_keys = ["auc"] + [metric_name(f) for f in fprs]

    m, n = keep.shape
    pool = np.setdiff1d(np.arange(m), np.asarray(targets))
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(pool) for _ in range(repeats)]
    boot_rng = np.random.default_rng([seed, 1])         # one stream for every interval of the curve

    rows: list[dict] = []
    for r in sizes:
        base = {"n_models": r, "n_evals": repeats * len(targets)}
        reason = None
        fn, params, need_in, need_out, which = attack_fn, attack_params, min_in, min_out, "primary"
        if r > pool.size:
            reason = f"R={r} exceeds the {pool.size} non-target models in the population"
        elif r < min_in + min_out:
            if fallback_fn is not None and r >= fallback_min_in + fallback_min_out:
                fn, params, need_in, need_out = (fallback_fn, fallback_params, fallback_min_in,
                                                 fallback_min_out)
                which = "fallback"
            else:
                reason = (f"R={r} < {min_in} IN + {min_out} OUT references needed per sample by "
                          "the attack, and no usable fallback_fn was given")
        if reason is not None:
            for name, mask in groups.items():
                rows.append({**base, "group": name, "group_size": int(mask.sum()), "attack": None,
                             "skipped": reason})
            continue

        values = {name: {k: [] for k in metric_keys} for name in groups}
        excluded = {name: [] for name in groups}
        for perm in perms:
            refs = np.sort(perm[:r])
            ref_sig, ref_keep = signal[refs], keep[refs]
            n_in = ref_keep.sum(axis=0)
            eligible = (n_in >= need_in) & ((r - n_in) >= need_out)
            cols = np.flatnonzero(eligible)
            for t in targets:
                scores = np.full(n, np.nan)
                if cols.size:
                    got = np.asarray(fn(signal[t][cols], ref_sig[:, cols], ref_keep[:, cols],
                                        labels=labels[cols], **params), dtype=np.float64)
                    if got.shape != cols.shape:
                        raise SignalError(f"attack returned shape {got.shape}, expected "
                                          f"({cols.size},) for the {cols.size} eligible samples")
                    scores[cols] = got
                usable = eligible & ~np.isnan(scores)
                for name, mask in groups.items():
                    sel = mask & usable
                    y, s = keep[t, sel], scores[sel]
                    values[name]["auc"].append(_auc(y, s))
                    for f in fprs:
                        values[name][metric_name(f)].append(_tpr_at_fpr(y, s, f))
                    excluded[name].append(1.0 - sel.sum() / max(int(mask.sum()), 1))
        for name, mask in groups.items():
            row = {**base, "group": name, "group_size": int(mask.sum()), "attack": which,
                   "skipped": None, "excluded_frac": float(np.mean(excluded[name]))}
            for k in metric_keys:
                v = np.asarray(values[name][k], dtype=np.float64)
                ok = v[np.isfinite(v)]
                lo, hi = bootstrap_mean_ci(ok, n_boot=n_boot, level=confidence, seed=boot_rng)
                row[f"{k}_mean"] = float(ok.mean()) if ok.size else float("nan")
                row[f"{k}_std"] = float(ok.std()) if ok.size else float("nan")
                row[f"{k}_ci_low"], row[f"{k}_ci_high"] = lo, hi
                row[f"{k}_values"] = v.tolist()
            rows.append(row)
    return rows


def _group_rows(curve: Sequence[dict], group: str | None) -> list[dict]:
    names = sorted({row["group"] for row in curve})
    if group is None:
        if len(names) > 1:
            raise ConfigError(f"curve has several groups {names}; pass group=")
        return list(curve)
    if group not in names:
        raise ConfigError(f"group {group!r} not in curve (groups: {names})")
    return [row for row in curve if row["group"] == group]


def models_to_reach(curve: Sequence[dict], metric: str, level: float, *,
                    group: str | None = None) -> int | None:
    """Smallest number of reference models R whose *mean* ``metric`` (``"auc"``, ``"tpr@0.001"``,
    ...) is >= ``level`` in ``curve`` (rows of :func:`shadow_budget_curve`, restricted to
    ``group``). None if no evaluated size reaches it. Skipped sizes never count."""
    best = None
    for row in _group_rows(curve, group):
        if row.get("skipped"):
            continue
        key = f"{metric}_mean"
        if key not in row:
            raise ConfigError(f"metric {metric!r} not in curve rows")
        v = row[key]
        if v is not None and np.isfinite(v) and v >= level:
            r = int(row["n_models"])
            best = r if best is None else min(best, r)
    return best


def reduction_factor(curve: Sequence[dict], group_a: str, group_b: str, metric: str,
                     level: float, *, censored: str = "inf") -> float:
    """How many times fewer reference models ``group_a`` needs than ``group_b`` to reach
    ``level``: ``models_to_reach(group_b) / models_to_reach(group_a)`` (Choi et al. 2023, §7.2:
    5 vs 2000 -> 400x for highly memorized vs random samples).

    NaN if group_a never reaches the level. If only group_b never reaches it, the factor is
    censored: ``censored="inf"`` returns inf, ``"lower_bound"`` returns max evaluated R of
    group_b / R_a (a lower bound on the true factor).
    """
    if censored not in ("inf", "lower_bound"):
        raise ConfigError(f"censored must be 'inf' or 'lower_bound', got {censored!r}")
    ra = models_to_reach(curve, metric, level, group=group_a)
    rb = models_to_reach(curve, metric, level, group=group_b)
    if ra is None:
        return float("nan")
    if rb is None:
        if censored == "inf":
            return math.inf
        evaluated = [row["n_models"] for row in _group_rows(curve, group_b) if not row.get("skipped")]
        return max(evaluated) / ra if evaluated else float("nan")
    return rb / ra


# --------------------------------------------------------------------------------------------
# the theoretical prediction (Choi et al. 2023, Lemma 2 / Corollary 1; docs/studies.md)
# --------------------------------------------------------------------------------------------

def hellinger_budget(mu_in, sd_in, mu_out, sd_out) -> np.ndarray:
    """Squared Hellinger distance H^2 between N(mu_in, sd_in^2) and N(mu_out, sd_out^2) per sample
    (broadcasting), for fitted population statistics: the closed form is
    :func:`privaudit.studies.theory.hellinger_gaussian` (the one implementation), applied where
    both sds are positive and finite; here the degenerate fits a small population produces are
    also defined: one sd 0 -> 1 (a point mass against a density), both 0 -> 0 if the means agree
    else 1, any NaN -> NaN. Choi et al. 2023, §5.1 Scenario 2: by their Thm 1 the MI advantage is
    >= H^2, and by their Lemma 2 distinguishing needs Theta(1/H^2) shadow models
    (``docs/studies.md``)."""
    m1, s1, m2, s2 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                           for v in (mu_in, sd_in, mu_out, sd_out)))
    if (np.nan_to_num(s1) < 0).any() or (np.nan_to_num(s2) < 0).any():
        raise SignalError("standard deviations must be non-negative")
    nan = np.isnan(m1 + m2 + s1 + s2)
    regular = ~nan & (s1 > 0) & (s2 > 0) & np.isfinite(s1 + s2 + m1 + m2)
    h2 = np.where((s1 == 0) & (s2 == 0), (m1 != m2).astype(np.float64), 1.0)
    if regular.any():
        h2[regular] = hellinger_gaussian(m1[regular], s1[regular], m2[regular], s2[regular])
    h2 = np.where(nan, np.nan, h2)
    return h2 if h2.ndim else float(h2)


def hellinger_from_signal(signal: np.ndarray, keep: np.ndarray, *,
                          combine: str = "mean") -> np.ndarray:
    """Per-sample H^2 between the IN and OUT Gaussian fits of ``signal`` [M, n, A] (or [M, n])
    over the population ``keep``. With A > 1 queries, ``combine="mean"`` averages the per-query
    H^2; ``"diag"`` treats the queries as an independent (diagonal-covariance) Gaussian, whose
    Bhattacharyya coefficients multiply: H^2 = 1 - prod_a (1 - H^2_a) (overstates H^2 when the
    queries are correlated, as augmentations are)."""
    g = in_out_gaussian_params(signal, keep)
    h2 = hellinger_budget(g.mu_in, g.sd_in, g.mu_out, g.sd_out)       # [n, A]
    if combine == "mean":
        return h2.mean(axis=1)
    if combine == "diag":
        return 1.0 - np.prod(1.0 - h2, axis=1)
    raise ConfigError(f"combine must be 'mean' or 'diag', got {combine!r}")


def bound_curve(h2_or_mem: np.ndarray, sizes: Iterable[int] = DEFAULT_SIZES, const: float = 1.0,
                *, kind: str = "h2") -> dict:
    """Predicted number of shadow models per sample and the fraction of samples "reachable" with
    each budget R in ``sizes``.

    * ``kind="h2"``: N_i = const / H^2_i (Choi et al. 2023, Lemma 2: optimal sample complexity
      Theta(1/H^2(P_in, P_out))).
    * ``kind="mem"``: N_i = 2 const / mem_i^2 (their Corollary 1, N = O(1/mem^2): Feldman's
      mem = TV and H^2 >= TV^2 / 2 = mem^2 / 2, so const / H^2 <= 2 const / mem^2; same
      convention as :func:`privaudit.studies.theory.shadow_models_needed`).

    ``docs/studies.md`` derives both. Only the 1/H^2 (1/mem^2) *scaling* is a prediction;
    ``const`` is unknown and must be calibrated (e.g. on an empirical
    :func:`shadow_budget_curve`). H^2 or mem <= 0 gives N = inf; NaN stays NaN (and is ignored
    in the fractions).

    Returns {"kind", "const", "n_required": float[n], "median_required", "sizes": [...],
    "frac_reachable": [...]}.
    """
    if kind not in ("h2", "mem"):
        raise ConfigError(f"kind must be 'h2' or 'mem', got {kind!r}")
    if not const > 0:
        raise ConfigError(f"const must be positive, got {const}")
    x = np.asarray(h2_or_mem, dtype=np.float64)
    denom = x if kind == "h2" else np.where(x > 0, x, 0.0) ** 2 / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        n_req = np.where(denom > 0, const / np.where(denom > 0, denom, 1.0), np.inf)
    n_req = np.where(np.isnan(x), np.nan, n_req)
    ok = ~np.isnan(n_req)
    sizes = [int(r) for r in sizes]
    frac = [float((n_req[ok] <= r).mean()) if ok.any() else float("nan") for r in sizes]
    return {"kind": kind, "const": float(const), "n_required": n_req,
            "median_required": float(np.median(n_req[ok])) if ok.any() else float("nan"),
            "sizes": sizes, "frac_reachable": frac}


# --------------------------------------------------------------------------------------------
# the curve of a registered attack, and how to read it
# --------------------------------------------------------------------------------------------

SATURATION = 0.95      # "reaches its full-budget value": 95 % of the way from chance to it
FALLBACK = {"lira_online": "lira_offline", "lira_online_global": "lira_offline_global",
            "rmia_online": "rmia_offline"}   # used where R is too small for the online attack


def default_sizes(pool: int) -> tuple[int, ...]:
    """1, 2, 4, ... below ``pool``, then ``pool`` itself (every reference model)."""
    sizes = [1 << k for k in range(max(pool, 1).bit_length()) if (1 << k) < pool]
    return tuple(sizes + [pool])


def budget_curve(spec, signal: np.ndarray, keep: np.ndarray, labels: np.ndarray, groups: dict[str, np.ndarray], *,
                 sizes: Sequence[int] | None, budget_targets: int, repeats: int, seed: int, fpr: float,
                 n_boot: int) -> tuple[list[dict], tuple[int, ...]]:
    """:func:`shadow_budget_curve` of the registered attack ``spec`` on targets
    ``0..budget_targets-1`` (references drawn from the other models; ``sizes`` default
    :func:`default_sizes`), with the offline variant (:data:`FALLBACK`) where R is too small for
    an online attack. Returns the curve and the sizes evaluated."""
    from privaudit.attacks.registry import get_attack

    targets = list(range(budget_targets))
    pool = keep.shape[0] - len(targets)
    sizes = tuple(sorted({r for r in (sizes or default_sizes(pool)) if r <= pool}))
    if not sizes:
        raise ConfigError(f"--budget-sizes: none is <= the {pool} reference models of this run")
    fallback = get_attack(FALLBACK[spec.name]) if spec.name in FALLBACK else None
    curve = shadow_budget_curve(spec, signal, keep, labels, targets=targets, sample_groups=groups, sizes=sizes,
                                repeats=repeats, seed=seed, fprs=(fpr,), fallback_fn=fallback, n_boot=n_boot)
    return curve, sizes


def _final(curve: list[dict], group: str, metric: str) -> tuple[int | None, float]:
    rows = [r for r in curve if r["group"] == group and not r.get("skipped")
            and np.isfinite(r.get(f"{metric}_mean", np.nan))]
    if not rows:
        return None, float("nan")
    last = max(rows, key=lambda r: r["n_models"])
    return int(last["n_models"]), float(last[f"{metric}_mean"])


def saturation(curve: list[dict], group: str, metric: str, chance: float) -> dict[str, Any]:
    """How few models reach the full budget's result, as Choi et al. 2023, §7.2 read "5 shadow
    models match 2000": the fewest models R whose mean metric is within ``SATURATION`` of the way
    from chance to the group's full-budget value, and ``factor = R_max / R``. Undefined (NaN)
    when the full-budget value is not above chance."""
    r_max, final = _final(curve, group, metric)
    out = {"group": group, "metric": metric, "r_max": r_max, "final": final, "chance": chance}
    if r_max is None or not final > chance:
        return out | {"level": None, "r_needed": None, "factor": float("nan"),
                      "note": "no evaluated size, or the full-budget value is at chance"}
    level = chance + SATURATION * (final - chance)
    r = models_to_reach(curve, metric, level, group=group)
    return out | {"level": level, "r_needed": r, "factor": r_max / r if r else float("nan"),
                  "capped": r == _smallest(curve, group)}


def _smallest(curve: list[dict], group: str) -> int | None:
    sizes = [r["n_models"] for r in curve if r["group"] == group and not r.get("skipped")]
    return min(sizes) if sizes else None


def cross_reduction(curve: list[dict], metric: str, a: str = "high_mem", b: str = "random") -> dict[str, Any]:
    """How many times fewer models group ``a`` needs to reach what group ``b`` reaches with the
    largest budget evaluated: ``R_max / R_a``, with R_a from
    :func:`models_to_reach` (NaN when ``a`` never reaches it); also :func:`reduction_factor` at the
    same level."""
    r_max, level = _final(curve, b, metric)
    if r_max is None or a not in {r["group"] for r in curve}:
        return {"metric": metric, "groups": [a, b], "level": None, "factor": float("nan"), "note": "group missing"}
    r_a = models_to_reach(curve, metric, level, group=a)
    return {"metric": metric, "groups": [a, b], "level": level, "r_max": r_max, "r_needed_a": r_a,
            "factor": r_max / r_a if r_a else float("nan"), "capped": r_a == _smallest(curve, a),
            # R_b / R_a with R_b the first size where b reaches the level (differs when b's curve is not monotone)
            "factor_first_reach": reduction_factor(curve, a, b, metric, level)}


def bounds(h2: np.ndarray, mem: np.ndarray, groups: dict[str, np.ndarray], sizes) -> dict[str, Any]:
    """The sample-complexity prediction per group (Choi et al. 2023, Lemma 2: N = c / H^2;
    Corollary 1: N = 2c / mem^2; c unknown, set to 1; derived in ``docs/studies.md``): share of
    the group with N_i <= R for every R, the median N_i, and the constant-free predicted reduction
    median N(random) / median N(high_mem)."""
    out: dict[str, Any] = {"derivation": DERIVATION, "const": 1.0, "groups": {}}
    for name, mask in groups.items():
        out["groups"][name] = {kind: {k: v for k, v in bound_curve(x[mask], sizes, kind=kind).items()
                                      if k != "n_required"}
                               for kind, x in (("h2", h2), ("mem", mem))}
    g = out["groups"]
    for kind in ("h2", "mem"):
        if "high_mem" in g and "random" in g:
            hi, rnd = g["high_mem"][kind]["median_required"], g["random"][kind]["median_required"]
            out[f"predicted_reduction_{kind}"] = rnd / hi if np.isfinite(hi) and hi > 0 else float("nan")
    return out




DERIVATION = ("N_i = c / H^2_i (Choi et al. 2023, Lemma 2) and N_i = 2c / mem_i^2 (their Corollary 1, via "
              "H^2 >= mem^2 / 2), derived in privaudit's docs/studies.md; c is unknown and set to 1, so only the "
              "scaling and the constant-free ratio between groups are predictions")


def within_group_reductions(curve: list[dict], metrics_: Sequence[str]) -> list[dict[str, Any]]:
    """The measured reduction factor inside each data group (Choi et al. 2023, §7.2: highly
    memorized samples need about 400x fewer shadow models than the 2,000 that random samples use;
    random OOD points about 40x): for every pair ``g/high_mem``, ``g/random`` of
    :func:`privaudit.studies.memorization.groups.within_group_budget_groups` in ``curve`` and every
    metric, :func:`cross_reduction` (how many times fewer models high_mem needs to reach what
    random reaches with the largest budget) and :func:`saturation` of both."""
    names = {row["group"] for row in curve}
    out = []
    for high in sorted(n for n in names if n.endswith("/high_mem")):
        part = high.rsplit("/", 1)[0]
        rand = f"{part}/random"
        if rand not in names:
            continue
        for metric in metrics_:
            chance = 0.5 if metric == "auc" else float(metric.split("@", 1)[1])
            out.append({"group": part, **cross_reduction(curve, metric, a=high, b=rand),
                        "saturation": {g: saturation(curve, g, metric, chance) for g in (high, rand)}})
    return out
