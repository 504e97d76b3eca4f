"""Is a sample's final vulnerability decided early in training? Early prediction of the most
vulnerable samples from the checkpoints.

Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of Membership Privacy in Deep
Learning", arXiv:2507.23291, 2025, report (abstract) that the privacy risk of samples highly
vulnerable in the final model is largely determined early during training. The protocols here
(top-k overlap with the final most vulnerable set, the split-half control, the recall of the
final highly-vulnerable region) are privaudit's, as each docstring states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation.statistics import ResampleRanks, bootstrap_interval, pearson_rows, spearman_rows
from privaudit.studies.dynamics.plane import (HIGHLY_VULNERABLE, _as_keep, _check_epochs, _check_frac, _check_traj,
                                              _valid_rows, trajectories)

__all__ = ["vulnerability", "final_vulnerability", "topk_weights", "early_prediction_curve", "split_half",
           "hv_identification"]


def vulnerability(points: np.ndarray) -> np.ndarray:
    """Per-sample vulnerability ``TPR_i - FPR_i`` of points ``[..., 2]`` = (FPR, TPR).

    The per-sample membership advantage (Yeom et al. 2018's ``TPR - FPR`` evaluated at the global
    threshold; privaudit's measure of a sample's vulnerability). It is largest in the upper-left
    of the plane, the highly vulnerable region. NaN where the point is undefined.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise SignalError(f"points must have last axis (FPR, TPR) of size 2, got {list(pts.shape)}")
    return pts[..., 1] - pts[..., 0]


def final_vulnerability(last: np.ndarray) -> np.ndarray:
    """Vulnerability at the final checkpoint: pass ``traj[-1]`` (``[n, 2]``); returns
    ``TPR_i - FPR_i`` (``[n]``, see :func:`vulnerability`)."""
    return vulnerability(last)


def topk_weights(v: np.ndarray, k: int) -> np.ndarray:
    """Membership weights of the top-``k`` set of each row of ``v`` (``[..., n]``), with ties
    at the boundary shared: ``1`` for values above the k-th largest, ``(k - #above) / #tied``
    for values equal to it, else 0. Each row sums to ``k``. This is the probability that the
    sample is in the top-k under *uniformly random tie-breaking*, so ``sum(w_a * w_b)`` is the
    expected overlap of two top-k sets whose ties are broken independently."""
    v = np.asarray(v, dtype=np.float64)
    n = v.shape[-1]
    if not 1 <= k <= n:
        raise ConfigError(f"k must lie in 1..{n}, got {k}")
    kth = -np.partition(-v, k - 1, axis=-1)[..., k - 1:k]          # k-th largest, keepdims
    above = v > kth
    tied = v == kth
    n_above = above.sum(axis=-1, keepdims=True)
    n_tied = tied.sum(axis=-1, keepdims=True)
    return np.where(above, 1.0, np.where(tied, (k - n_above) / n_tied, 0.0))


def _overlap(vt: np.ndarray, vf: np.ndarray, k: int, target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Expected precision and recall of top-k(vt) for the final set (rows = replicates)."""
    wt = topk_weights(vt, k)
    if target is None:
        same = np.all(vt == vf, axis=-1)
        wf = topk_weights(vf, k)
        ov = np.where(same, float(k), (wt * wf).sum(axis=-1))
        return ov / k, ov / k
    hit = (wt * target).sum(axis=-1)
    size = target.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hit / k, np.where(size > 0, hit / np.maximum(size, 1), np.nan)


def early_prediction_curve(traj: np.ndarray, *, top_frac: float = 0.1, final_mask: np.ndarray | None = None,
                           epochs=None, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """How well the vulnerability at checkpoint ``t`` predicts the final most-vulnerable samples.

    Chen et al. 2025 (abstract): "the privacy risk of samples highly vulnerable in the final
    trained model is largely determined early during training". privaudit's protocol:

    * ``v_t = TPR_i(t) - FPR_i(t)`` (:func:`vulnerability`); samples with an undefined point at
      any checkpoint are dropped (``n`` = the rest); ``k = max(1, round(top_frac * n))``.
    * predicted set at ``t`` = the ``k`` samples with the largest ``v_t``; target set = the ``k``
      largest final ``v`` (default) or the samples in ``final_mask`` (bool ``[n_all]``, e.g.
      ``regions(traj)[-1] == HIGHLY_VULNERABLE``).
    * ``precision[t] = |pred_t & target| / k``, ``recall[t] = |pred_t & target| / |target|``;
      with the default target both equal the top-k overlap fraction. Per-sample
      vulnerabilities are discrete (multiples of 1/#targets), so the top-k set is ambiguous
      when values tie at the boundary: we report the *expected* overlap under uniformly random
      tie-breaking (:func:`topk_weights`), independent between checkpoints, except that a
      ranking compared with an identical ranking gives the identical set (so precision is 1 at
      the last checkpoint). Under no relation between ``v_t`` and the final ``v`` the expected
      precision is exactly ``k / n`` (``chance``).
      Caveat: "unrelated" means exchangeable samples. When samples are IN (or OUT) for
      different numbers of targets (e.g. a Bernoulli keep design), those with few IN or OUT
      targets have noisier ``v`` and sit in the top-k at every checkpoint more often, so even
      pure-noise scores overlap above chance; use a balanced keep design or compare with a
      shuffled-score baseline.
    * ``spearman[t]`` = Spearman's rho between ``v_t`` and the final ``v``.
    * every statistic has a percentile bootstrap interval (``*_lo``, ``*_hi``) at ``level`` from
      ``n_boot`` resamples of the samples with replacement
      (:func:`privaudit.evaluation.statistics.bootstrap_interval`), the same resamples for all
      checkpoints; ``k`` is kept fixed in the resamples.

    Returns a dict of plain lists/floats: ``checkpoint`` (index or ``epochs``), ``k``, ``n``,
    ``top_frac``, ``chance``, ``precision``/``recall``/``spearman`` and their ``_lo``/``_hi``.
    """
    traj = _check_traj(traj)
    top_frac = _check_frac(top_frac, "top_frac")
    _check_frac(level, "level")
    p_, n_all = traj.shape[:2]
    ok = _valid_rows(traj)
    v = vulnerability(traj)[:, ok]                                  # [P, n]
    n = int(ok.sum())
    target = None
    if final_mask is not None:
        fm = _as_keep(final_mask, (n_all,), "final_mask")
        target = fm[ok].astype(np.float64)
    ck = list(range(p_)) if epochs is None else _check_epochs(epochs, p_).tolist()
    res: dict[str, Any] = {"checkpoint": ck, "n": n, "top_frac": top_frac, "n_boot": int(n_boot), "level": float(level),
                           "target": "final_top_k" if final_mask is None else "final_mask"}
    names = ("precision", "recall", "spearman")
    if n == 0:
        res.update(k=0, chance=float("nan"))
        for nm in names:
            for suf in ("", "_lo", "_hi"):
                res[nm + suf] = [float("nan")] * p_
        return res
    k = max(1, int(round(top_frac * n)))
    res["k"] = k
    res["chance"] = k / n if final_mask is None else float(target.mean())
    vf = v[-1]
    point = {nm: np.full(p_, np.nan) for nm in names}
    for t in range(p_):                                             # loop over checkpoints only
        pr, rc = _overlap(v[t][None], vf[None], k, None if target is None else target[None])
        point["precision"][t], point["recall"][t] = pr[0], rc[0]
        point["spearman"][t] = spearman_rows(v[t][None], vf[None])[0]
    lo = {nm: np.full(p_, np.nan) for nm in names}
    hi = {nm: np.full(p_, np.nan) for nm in names}
    if n_boot > 0:
        ranks_final = ResampleRanks(vf)
        ranks = [ResampleRanks(v[t]) for t in range(p_)]

        def statistic(idx: np.ndarray) -> np.ndarray:            # [3P, B] for index rows [B, n]
            vfb, rfb = vf[idx], ranks_final(idx)
            tb = None if target is None else target[idx]
            out = np.empty((3, p_, idx.shape[0]))
            for t in range(p_):
                out[0, t], out[1, t] = _overlap(v[t][idx], vfb, k, tb)
                out[2, t] = pearson_rows(ranks[t](idx), rfb)
            return out.reshape(3 * p_, -1)

        lo_all, hi_all = bootstrap_interval(statistic, n, n_boot=n_boot, seed=seed, level=level)
        for i, nm in enumerate(names):
            lo[nm], hi[nm] = lo_all[i * p_:(i + 1) * p_], hi_all[i * p_:(i + 1) * p_]
    for nm in names:
        res[nm] = point[nm].tolist()
        res[nm + "_lo"] = lo[nm].tolist()
        res[nm + "_hi"] = hi[nm].tolist()
    return res


def split_half(scores: np.ndarray, keep_targets: np.ndarray, epochs, *, fpr: float, top_frac: float,
               n_boot: int, seed: int) -> dict[str, Any]:
    """Cross-model early prediction (a privaudit control, not in Chen et al.): vulnerability at each
    checkpoint measured on one random half A of the targets versus the final vulnerability measured on
    the other half B. Its value at the last checkpoint is the split-half reliability of the final
    vulnerability, i.e. the ceiling any early predictor can reach given measurement noise; unlike the
    same-model curve it cannot be inflated by model-specific noise that persists across checkpoints."""
    t = scores.shape[1]
    if t < 4:
        return {"available": False, "reason": f"needs >= 4 targets, got {t}"}
    perm = np.random.default_rng(seed).permutation(t)
    a, b = np.sort(perm[: t // 2]), np.sort(perm[t // 2:])
    tra = trajectories(scores[:, a], keep_targets[a], fpr=fpr)
    trb = trajectories(scores[-1:, b], keep_targets[b], fpr=fpr)
    curve = early_prediction_curve(np.concatenate([tra, trb]), top_frac=top_frac, n_boot=n_boot, seed=seed)
    drop_last = {k: v[:-1] if isinstance(v, list) and len(v) == len(epochs) + 1 else v for k, v in curve.items()}
    drop_last["checkpoint"] = list(map(int, epochs))
    rho = drop_last["spearman"][-1]
    drop_last["reliability_spearman_brown"] = (2 * rho / (1 + rho)) if rho is not None and rho > -1 else None
    drop_last.update(available=True, half_a=a.tolist(), half_b=b.tolist())
    return drop_last


def hv_identification(region_seq: np.ndarray, epochs) -> dict[str, Any]:
    """Region-based early identification (privaudit's reading of "determined early" as a share of the
    final highly-vulnerable samples already identified): at each checkpoint,
    ``recall`` = |HV_t & HV_final| / |HV_final| (final highly-vulnerable samples already in the region) and
    ``precision`` = |HV_t & HV_final| / |HV_t|, with 95% Clopper-Pearson intervals; ``chance`` = |HV_t| / n
    (the recall expected if membership of HV_t were unrelated to the final region). Unlike the top-k
    curve it has no ties problem when many samples saturate at (FPR, TPR) = (0, 1)."""
    from privaudit.evaluation.audit import clopper_pearson

    r = np.asarray(region_seq)
    ok = (r >= 0).all(axis=0)
    hv = r[:, ok] == HIGHLY_VULNERABLE                             # [P, n]
    final, n_final = hv[-1], int(hv[-1].sum())
    out: dict[str, Any] = {"checkpoint": list(map(int, epochs)), "n_final": n_final, "n": int(ok.sum())}
    if n_final == 0:
        return out | {"available": False}
    both = (hv & final).sum(axis=1)
    n_t = hv.sum(axis=1)
    rec_lo, rec_hi = clopper_pearson(both, n_final, 0.05, "two")
    prec_lo, prec_hi = clopper_pearson(both, np.maximum(n_t, 1), 0.05, "two")
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(n_t > 0, both / np.maximum(n_t, 1), np.nan)
    return out | {"available": True, "recall": (both / n_final).tolist(), "recall_lo": np.asarray(rec_lo).tolist(),
                  "recall_hi": np.asarray(rec_hi).tolist(), "precision": prec.tolist(),
                  "precision_lo": np.where(n_t > 0, prec_lo, np.nan).tolist(),
                  "precision_hi": np.where(n_t > 0, prec_hi, np.nan).tolist(),
                  "n_hv": n_t.tolist(), "chance": (n_t / max(int(ok.sum()), 1)).tolist()}

