"""Per-sample membership-privacy dynamics across training (Chen, Wang, Baracaldo, Kadhe, Yu 2025,
"Evaluating the Dynamics of Membership Privacy in Deep Learning", arXiv 2507.23291).

Provenance (spec ``ALGORITHMS.md`` §7; read this before quoting any number)
----------------------------------------------------------------------------
Only the paper's **abstract** is a primary source. It states three things, tagged **[ABSTRACT]**
below:

1. per-sample vulnerabilities are tracked as points on an **FPR-TPR plane** at checkpoints
   throughout training, and the framework measures the *rate* and *severity* at which samples
   become vulnerable;
2. there is a robust **correlation between a sample's intrinsic learning difficulty** and its
   vulnerability;
3. the privacy risk of samples **highly vulnerable in the final model is largely determined early**
   during training.

Every *operational* definition in this module (how (FPR_i, TPR_i) is computed, the region grid,
the speed / centre-of-mass / entropy / transition metrics, the difficulty measures, the
early-prediction protocol) is **[RECONSTRUCTED]**: our own choice, guided by the AI-generated
summaries listed in the spec (§7.1, §7.2 [V-secondary]) and by standard definitions (Toneva et al.
2019 for forgetting events, Yeom et al. 2018 for the membership advantage TPR - FPR). None of them
has been checked against the paper's body. Each docstring below says which tag applies.

Units
-----
The plane is ``[0, 1]^2`` with coordinates ``(FPR_i, TPR_i)`` as *fractions*. Distances on it
(speed, path length, displacement) are Euclidean in those fractional units; the ``*_pp``
variants multiply by 100 ("percentage points"), because the secondary summary quotes
centre-of-mass displacements such as 12.8 and 135.0 that only make sense on a 0-100 scale.
On that scale the largest possible start-to-end displacement is 100 * sqrt(2) ~ 141.4, so 135.0
would be almost corner-to-corner motion: the summary's quantity may be a path length or scaled
differently (**[UNVERIFIED]**; do not compare our numbers with those directly). Entropies are
in nats unless ``base`` is given.

Shapes (see ``docs/ARCHITECTURE.md``)
-------------------------------------
* ``scores``: float ``[P, T, n]``: attack scores of target model ``t`` at checkpoint ``p``,
  higher = member.
* ``keep_targets``: bool ``[T, n]``: membership of the target models (fixed over checkpoints).
* ``traj``: float ``[P, n, 2]``: last axis ``(FPR_i, TPR_i)``; NaN for samples that are never IN
  or never OUT among the targets.
* ``region`` labels: int ``[P, n]``; ``-1`` where the point is undefined (NaN).
* training signals for learning difficulty: ``[E, M, n]`` (epoch, model, sample) with a keep
  ``bool[M, n]`` saying which models trained on which sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from privaudit.errors import ConfigError, SignalError

__all__ = [
    "REGION_NAMES",
    "HIGHLY_VULNERABLE",
    "trajectories",
    "center_of_mass",
    "com_displacement",
    "speed",
    "mean_speed",
    "regions",
    "n_regions",
    "region_names",
    "region_occupancy",
    "transition_counts",
    "transition_matrix",
    "transition_matrices",
    "entry_probability",
    "first_entry",
    "spatial_entropy",
    "entropy_change",
    "mean_training_loss",
    "count_forgetting",
    "forgetting_events",
    "first_learned_epoch",
    "spearman_bootstrap",
    "difficulty_vulnerability_correlation",
    "vulnerability",
    "final_vulnerability",
    "topk_weights",
    "early_prediction_curve",
    "DynamicsReport",
    "analyze",
]

#: Names of the default three-region discretisation of the plane (see :func:`regions`).
REGION_NAMES: tuple[str, ...] = ("safe", "leaky", "highly_vulnerable")
#: Label of the "highly vulnerable" (upper-left) region in the default discretisation.
HIGHLY_VULNERABLE = 2

_BOOT_CHUNK_ELEMS = 2_000_000  # bootstrap replicates are processed in chunks of this many values
_SORT_CHUNK_ELEMS = 4_000_000  # trajectories() sorts at most this many scores at once


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------

def _as_keep(keep: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    keep = np.asarray(keep)
    if keep.dtype != bool:
        if np.issubdtype(keep.dtype, np.integer) and np.isin(keep, (0, 1)).all():
            keep = keep.astype(bool)
        else:
            raise ConfigError(f"{what} must be a bool array {list(shape)}, got dtype {keep.dtype}")
    if keep.shape != tuple(shape):
        raise ConfigError(f"{what} must have shape {list(shape)}, got {list(keep.shape)}")
    return keep


def _check_traj(traj: np.ndarray) -> np.ndarray:
    traj = np.asarray(traj, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[-1] != 2:
        raise SignalError(f"traj must have shape [P, n, 2] (last axis FPR, TPR), got {list(traj.shape)}")
    return traj


def _check_epochs(epochs, p: int, what: str = "epochs") -> np.ndarray:
    ep = np.asarray(epochs, dtype=np.float64).reshape(-1)
    if ep.shape[0] != p:
        raise ConfigError(f"{what} must have {p} entries (one per checkpoint), got {ep.shape[0]}")
    if not np.isfinite(ep).all():
        raise ConfigError(f"{what} contains NaN or inf")
    if p > 1 and not (np.diff(ep) > 0).all():
        raise ConfigError(f"{what} must be strictly increasing, got {ep.tolist()}")
    return ep


def _check_frac(x: float, name: str, *, lo_open: bool = True, hi_closed: bool = True) -> float:
    x = float(x)
    ok = (x > 0.0 if lo_open else x >= 0.0) and (x <= 1.0 if hi_closed else x < 1.0)
    if not ok or math.isnan(x):
        raise ConfigError(f"{name} must lie in (0, 1], got {x}")
    return x


# --------------------------------------------------------------------------------------------
# trajectories on the FPR-TPR plane
# --------------------------------------------------------------------------------------------

def trajectories(scores: np.ndarray, keep_targets: np.ndarray, *, fpr: float = 0.01) -> np.ndarray:
    """Per-sample points ``(FPR_i(t), TPR_i(t))`` at every checkpoint. Returns float ``[P, n, 2]``.

    [ABSTRACT] each sample is a point on the FPR-TPR plane at each checkpoint.
    [RECONSTRUCTED] (spec §7.1 "proposed operationalisation") how the point is computed:

    1. For checkpoint ``p`` and target model ``t`` a *global* threshold ``tau[p, t]`` is set on
       that target's OUT samples at the fixed false-positive rate ``fpr``, *strictly* (no
       interpolation, as LiRA's ``plot.py``): a sample is flagged when ``score > tau`` and
       ``tau`` is the smallest threshold with ``#{OUT j: score_j > tau} / #OUT <= fpr``. With the
       OUT scores sorted in decreasing order ``s_(1) >= s_(2) >= ...`` this is
       ``tau = s_(k+1)`` with ``k = floor(fpr * #OUT)`` (``-inf`` when ``k = #OUT``), so the
       realised global FPR of every (checkpoint, target) is ``<= fpr`` (strictly below it when
       OUT scores tie at ``tau``).
    2. ``TPR_i(p) = #{t: keep[t, i] and flagged[p, t, i]} / #{t: keep[t, i]}``,
       ``FPR_i(p) = #{t: not keep[t, i] and flagged[p, t, i]} / #{t: not keep[t, i]}``.
    3. NaN in ``TPR_i`` (``FPR_i``) where sample ``i`` is IN (OUT) for no target model.

    Parameters
    ----------
    scores: float ``[P, T, n]``; higher = more likely member. Must be finite.
    keep_targets: bool ``[T, n]``; ``keep_targets[t, i]``: sample i trained target model t.
    fpr: the global false-positive rate in ``(0, 1]`` at which every threshold is set.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3:
        raise SignalError(f"scores must have shape [P, T, n] (checkpoint, target, sample), got {list(scores.shape)}")
    p_, t_, n = scores.shape
    if p_ < 1 or t_ < 1 or n < 1:
        raise SignalError(f"scores has an empty axis: shape {list(scores.shape)}")
    if not np.isfinite(scores).all():
        raise SignalError("scores contain NaN or inf")
    keep = _as_keep(keep_targets, (t_, n), "keep_targets")
    fpr = _check_frac(fpr, "fpr")
    n_out = (~keep).sum(axis=1)                                    # [T]
    if (n_out == 0).any():
        bad = int(np.flatnonzero(n_out == 0)[0])
        raise ConfigError(f"target model {bad} has no OUT samples in keep_targets: its threshold at "
                          f"a fixed FPR is undefined")
    # k = floor(fpr * n_out), guarded against 0.29 * 100 = 28.999999999999996
    k = np.floor(fpr * n_out + 1e-9).astype(np.int64)              # [T], 0 <= k <= n_out
    # tau[p, t] = (k_t + 1)-th largest OUT score: sort each row with IN entries pushed to the end
    # as -inf. Chunked over checkpoints so the sorted copy stays small.
    tau = np.empty((p_, t_))
    idx = np.minimum(k, n - 1)[:, None]                            # k < n_out <= n unless k == n_out
    step = max(1, _SORT_CHUNK_ELEMS // (t_ * n))
    for a in range(0, p_, step):
        desc = -np.sort(-np.where(keep[None], -np.inf, scores[a:a + step]), axis=-1)
        tau[a:a + step] = np.take_along_axis(desc, np.broadcast_to(idx, desc.shape[:2] + (1,)), axis=-1)[..., 0]
    tau[:, k >= n_out] = -np.inf                                   # fpr * #OUT == #OUT: flag all
    flagged = scores > tau[..., None]                              # [P, T, n]
    tp = (flagged & keep[None]).sum(axis=1).astype(np.float64)     # [P, n]
    fp = (flagged & ~keep[None]).sum(axis=1).astype(np.float64)
    n_in_i = keep.sum(axis=0).astype(np.float64)                   # [n]
    n_out_i = (~keep).sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(n_in_i > 0, tp / n_in_i, np.nan)
        fpr_i = np.where(n_out_i > 0, fp / n_out_i, np.nan)
    return np.stack([fpr_i, tpr], axis=-1)


# --------------------------------------------------------------------------------------------
# population dynamics on the plane
# --------------------------------------------------------------------------------------------

def _valid_rows(traj: np.ndarray) -> np.ndarray:
    """bool [n]: samples whose point is finite at *every* checkpoint (fixed population)."""
    return np.isfinite(traj).all(axis=(0, 2))


def center_of_mass(traj: np.ndarray) -> np.ndarray:
    """Population centroid on the plane per checkpoint. Returns float ``[P, 2]`` = (FPR, TPR).

    [RECONSTRUCTED] (spec §7.1, "centre-of-mass" is [V-secondary]): the unweighted mean of the
    points of all samples whose point is defined (finite) at *every* checkpoint, so the
    centroid's motion reflects the samples moving, not the population changing. Units: fractions
    on ``[0, 1]^2`` (multiply by 100 for percentage points). NaN if no sample qualifies.
    """
    traj = _check_traj(traj)
    ok = _valid_rows(traj)
    if not ok.any():
        return np.full((traj.shape[0], 2), np.nan)
    return traj[:, ok, :].mean(axis=1)


def com_displacement(traj: np.ndarray) -> dict[str, Any]:
    """How far the population centroid moves over training.

    [RECONSTRUCTED] (the spec's "centre-of-mass displacement" is [V-secondary] with an
    [UNVERIFIED] definition). With ``c_p = center_of_mass(traj)[p]``:

    * ``path_length = sum_p ||c_{p+1} - c_p||_2`` (total distance travelled),
    * ``displacement = ||c_{P-1} - c_0||_2`` (start to end, straight line),
    * ``vector = c_{P-1} - c_0`` as ``(dFPR, dTPR)``.

    Units: the plane is ``[0, 1]^2``, so ``displacement <= sqrt(2)``. The ``*_pp`` keys are the
    same quantities x100 ("percentage points"), the scale on which the secondary summary's
    numbers (12.8 MNIST ... 135.0 CINIC-10) appear to be quoted; their definition is unknown,
    so compare with care.
    """
    com = center_of_mass(traj)
    steps = np.linalg.norm(np.diff(com, axis=0), axis=-1)
    path = float(steps.sum()) if steps.size else 0.0
    vec = com[-1] - com[0]
    disp = float(np.linalg.norm(vec))
    return {
        "path_length": path,
        "displacement": disp,
        "vector": [float(vec[0]), float(vec[1])],
        "path_length_pp": 100.0 * path,
        "displacement_pp": 100.0 * disp,
        "vector_pp": [100.0 * float(vec[0]), 100.0 * float(vec[1])],
    }


def speed(traj: np.ndarray, epochs=None) -> np.ndarray:
    """Per-sample speed on the plane, float ``[P-1, n]``.

    [ABSTRACT] the framework measures the *rate* at which samples become vulnerable.
    [RECONSTRUCTED] ("membership encoding speed", [V-secondary], definition [UNVERIFIED]):
    ``speed[p, i] = ||traj[p+1, i] - traj[p, i]||_2`` (Euclidean distance in FPR-TPR fraction
    units per checkpoint step); when ``epochs`` (the training epoch of every checkpoint,
    strictly increasing, length P) is given it is divided by ``epochs[p+1] - epochs[p]``, i.e.
    distance per epoch. NaN where either point is undefined.
    """
    traj = _check_traj(traj)
    d = np.linalg.norm(np.diff(traj, axis=0), axis=-1)
    if epochs is not None:
        ep = _check_epochs(epochs, traj.shape[0])
        d = d / np.diff(ep)[:, None]
    return d


def mean_speed(traj: np.ndarray, epochs=None) -> dict[str, Any]:
    """Population summaries of :func:`speed` [RECONSTRUCTED]: ``per_step`` (mean over samples for
    every step, ``[P-1]``), ``per_sample`` (mean over steps, ``[n]``) and ``overall`` (mean over
    both; the candidate "membership encoding speed"). Samples with undefined points are
    excluded. Units as :func:`speed` (per step, or per epoch when ``epochs`` is given)."""
    traj = _check_traj(traj)
    s = speed(traj, epochs)
    ok = _valid_rows(traj)
    if s.shape[0] == 0 or not ok.any():
        return {"per_step": np.full(s.shape[0], np.nan), "per_sample": np.full(traj.shape[1], np.nan),
                "overall": float("nan")}
    per_sample = np.full(traj.shape[1], np.nan)
    per_sample[ok] = s[:, ok].mean(axis=0)
    return {"per_step": s[:, ok].mean(axis=1), "per_sample": per_sample,
            "overall": float(s[:, ok].mean())}


def n_regions(grid=None) -> int:
    """Number of region labels produced by :func:`regions` with this ``grid``."""
    if grid is None:
        return len(REGION_NAMES)
    fe, te = _grid_edges(grid)
    return (len(fe) - 1) * (len(te) - 1)


def region_names(grid=None) -> list[str]:
    """Human-readable names of the labels of :func:`regions` with this ``grid``."""
    if grid is None:
        return list(REGION_NAMES)
    fe, te = _grid_edges(grid)
    return [f"tpr[{te[a]:g},{te[a + 1]:g})_fpr[{fe[b]:g},{fe[b + 1]:g})"
            for a in range(len(te) - 1) for b in range(len(fe) - 1)]


def _grid_edges(grid) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(grid, (int, np.integer)):
        if grid < 1:
            raise ConfigError(f"grid must be a positive number of cells per axis, got {grid}")
        e = np.linspace(0.0, 1.0, int(grid) + 1)
        return e, e
    try:
        fe, te = (np.asarray(g, dtype=np.float64) for g in grid)
    except (TypeError, ValueError):
        raise ConfigError("grid must be an int or a pair (fpr_edges, tpr_edges)") from None
    for name, e in (("fpr_edges", fe), ("tpr_edges", te)):
        if e.ndim != 1 or e.size < 2 or not (np.diff(e) > 0).all() or e[0] > 0.0 or e[-1] < 1.0:
            raise ConfigError(f"grid {name} must be strictly increasing and cover [0, 1], got {e.tolist()}")
    return fe, te


def _bin(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Half-open bins [e_j, e_{j+1}), the last one closed (as numpy.histogram)."""
    b = np.searchsorted(edges, x, side="right") - 1
    return np.clip(b, 0, len(edges) - 2)


def regions(traj: np.ndarray, *, tpr_hi: float = 0.5, fpr_lo: float = 0.1, adv_lo: float = 0.1,
            grid=None) -> np.ndarray:
    """Discretise the plane into vulnerability regions. Returns int ``[P, n]`` (``-1`` = undefined).

    [ABSTRACT] "highly vulnerable" samples exist; [V-secondary] they sit in the upper-left of
    the plane (high TPR at low FPR). The thresholds are **[RECONSTRUCTED]** (the paper's are
    [UNVERIFIED]).

    Default (``grid=None``), three named regions ``REGION_NAMES``:

    * ``2 "highly_vulnerable"``: ``TPR >= tpr_hi`` and ``FPR <= fpr_lo`` (upper-left box);
    * ``1 "leaky"``: otherwise, if the per-sample membership advantage
      ``TPR - FPR >= adv_lo`` (Yeom et al.'s advantage restricted to this sample);
    * ``0 "safe"``: everything else (on or near the chance diagonal, or below it).

    ``grid=g`` (int) instead cuts each axis into ``g`` equal cells, ``grid=(fpr_edges,
    tpr_edges)`` into the given cells (increasing, covering ``[0, 1]``); the label is
    ``tpr_bin * n_fpr_bins + fpr_bin`` (row-major with TPR as the row), cells half-open
    ``[lo, hi)`` except the last, which includes 1. See :func:`n_regions`, :func:`region_names`.
    """
    traj = _check_traj(traj)
    fp, tp = traj[..., 0], traj[..., 1]
    bad = ~np.isfinite(traj).all(axis=-1)
    if grid is None:
        out = np.zeros(fp.shape, dtype=np.int64)
        with np.errstate(invalid="ignore"):
            out[(tp - fp) >= adv_lo] = 1
            out[(tp >= tpr_hi) & (fp <= fpr_lo)] = 2
    else:
        fe, te = _grid_edges(grid)
        f = _bin(np.where(bad, 0.0, fp), fe)
        t = _bin(np.where(bad, 0.0, tp), te)
        out = (t * (len(fe) - 1) + f).astype(np.int64)
    out[bad] = -1
    return out


def region_occupancy(region_seq: np.ndarray, n_reg: int) -> np.ndarray:
    """Fraction of (defined) samples in each region per checkpoint: float ``[P, R]``."""
    r = np.atleast_2d(np.asarray(region_seq))
    out = np.zeros((r.shape[0], n_reg))
    for p in range(r.shape[0]):                                     # loop over checkpoints only
        v = r[p][r[p] >= 0]
        if v.size:
            out[p] = np.bincount(v, minlength=n_reg)[:n_reg] / v.size
        else:
            out[p] = np.nan
    return out


def transition_counts(regions_a: np.ndarray, regions_b: np.ndarray, n_regions: int) -> np.ndarray:
    """``C[a, b]`` = number of samples in region ``a`` in ``regions_a`` and ``b`` in ``regions_b``
    (samples labelled ``-1`` in either are skipped). int ``[R, R]``."""
    a = np.asarray(regions_a).reshape(-1)
    b = np.asarray(regions_b).reshape(-1)
    if a.shape != b.shape:
        raise SignalError(f"region label arrays differ in shape: {a.shape} vs {b.shape}")
    if n_regions < 1:
        raise ConfigError(f"n_regions must be positive, got {n_regions}")
    if (a >= n_regions).any() or (b >= n_regions).any():
        raise SignalError(f"region labels must lie in -1..{n_regions - 1}")
    ok = (a >= 0) & (b >= 0)
    return np.bincount(a[ok] * n_regions + b[ok], minlength=n_regions * n_regions).reshape(n_regions, n_regions)


def transition_matrix(regions_a: np.ndarray, regions_b: np.ndarray, n_regions: int, *,
                      empty: str = "nan") -> np.ndarray:
    """Row-stochastic transition matrix between two labelings of the same samples, ``[R, R]``.

    [RECONSTRUCTED] (the "transition matrix" is [V-secondary]):
    ``T[a, b] = #{i: regions_a[i] = a, regions_b[i] = b} / #{i: regions_a[i] = a}``, the
    empirical probability that a sample in region ``a`` (at the earlier checkpoint) is in region
    ``b`` (at the later one). Samples with label ``-1`` in either array are ignored. Rows of
    regions that hold no sample in ``regions_a`` are ``NaN`` (``empty="nan"``, default: the
    probability is undefined) or ``1/R`` (``empty="uniform"``) or the identity row
    (``empty="identity"``: "stay put"). Every non-empty row sums to 1.
    """
    c = transition_counts(regions_a, regions_b, n_regions).astype(np.float64)
    rows = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = c / rows
    empty_rows = rows[:, 0] == 0
    if empty == "nan":
        m[empty_rows] = np.nan
    elif empty == "uniform":
        m[empty_rows] = 1.0 / n_regions
    elif empty == "identity":
        m[empty_rows] = np.eye(n_regions)[empty_rows]
    else:
        raise ConfigError(f"empty must be 'nan', 'uniform' or 'identity', got {empty!r}")
    return m


def transition_matrices(region_seq: np.ndarray, n_regions: int, *, empty: str = "nan") -> np.ndarray:
    """Per-step transition matrices ``[P-1, R, R]``: entry ``p`` is
    ``transition_matrix(region_seq[p], region_seq[p+1])`` [RECONSTRUCTED]."""
    r = np.asarray(region_seq)
    if r.ndim != 2:
        raise SignalError(f"region_seq must have shape [P, n], got {list(r.shape)}")
    if r.shape[0] < 2:
        return np.zeros((0, n_regions, n_regions))
    return np.stack([transition_matrix(r[p], r[p + 1], n_regions, empty=empty) for p in range(r.shape[0] - 1)])


def entry_probability(region_seq: np.ndarray, target: int = HIGHLY_VULNERABLE) -> np.ndarray:
    """Per-step probability of *entering* region ``target``: float ``[P-1]``.

    [RECONSTRUCTED] (the secondary summary's "peak probability of transitioning into the
    high-vulnerability state", 0.9 % SAM vs 2.7 % SGD, is [V-secondary]):
    ``#{i: r_p(i) != target, r_{p+1}(i) = target} / #{i: r_p(i) != target}`` over samples defined
    at both checkpoints; NaN when every sample is already in ``target``.
    """
    r = np.asarray(region_seq)
    a, b = r[:-1], r[1:]
    ok = (a >= 0) & (b >= 0) & (a != target)
    num = (ok & (b == target)).sum(axis=1).astype(np.float64)
    den = ok.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def first_entry(region_seq: np.ndarray, target: int = HIGHLY_VULNERABLE, epochs=None) -> np.ndarray:
    """Checkpoint index (or epoch, if ``epochs`` is given) at which each sample first lies in
    region ``target``: float ``[n]``; ``inf`` if never, NaN if its point is never defined.

    [RECONSTRUCTED]: the spec's second candidate for "membership encoding speed" (§7.1).
    """
    r = np.asarray(region_seq)
    hit = r == target
    idx = np.argmax(hit, axis=0).astype(np.float64)
    out = np.where(hit.any(axis=0), idx, np.inf)
    if epochs is not None:
        ep = _check_epochs(epochs, r.shape[0])
        out = np.where(np.isfinite(out), ep[np.where(np.isfinite(out), out, 0).astype(np.int64)], out)
    out[(r < 0).all(axis=0)] = np.nan
    return out


def spatial_entropy(traj: np.ndarray, bins: int = 10, *, base: float | None = None) -> np.ndarray:
    """Shannon entropy of the population's 2-D histogram on the plane, per checkpoint: ``[P]``.

    [RECONSTRUCTED] ("spatial entropy" is [V-secondary], definition [UNVERIFIED]): the plane
    ``[0, 1]^2`` is cut into ``bins x bins`` equal cells (half-open, the last closed at 1, as
    ``numpy.histogram2d``); with ``q_c`` the fraction of defined samples in cell ``c``,
    ``H = -sum_c q_c log q_c`` (nats; ``base`` changes the logarithm). ``H = 0`` for a point mass
    and ``log(bins**2)`` for a population spread evenly over all cells. NaN if no sample is
    defined.
    """
    traj = _check_traj(traj)
    if int(bins) != bins or bins < 1:
        raise ConfigError(f"bins must be a positive integer, got {bins}")
    bins = int(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    p_ = traj.shape[0]
    ok = np.isfinite(traj).all(axis=-1)                             # [P, n]
    f = _bin(np.where(ok, traj[..., 0], 0.0), edges)
    t = _bin(np.where(ok, traj[..., 1], 0.0), edges)
    cell = t * bins + f + np.arange(p_)[:, None] * bins * bins
    counts = np.bincount(cell[ok], minlength=p_ * bins * bins).reshape(p_, bins * bins).astype(np.float64)
    tot = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = counts / tot
        h = -np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum(axis=1)
    h[tot[:, 0] == 0] = np.nan
    if base is not None:
        h = h / math.log(base)
    return h


def entropy_change(traj: np.ndarray, bins: int = 10, *, base: float | None = None) -> float:
    """``Delta H = H(last checkpoint) - H(first checkpoint)`` of :func:`spatial_entropy`
    [RECONSTRUCTED]; positive = the population spreads out over the plane."""
    h = spatial_entropy(traj, bins, base=base)
    return float(h[-1] - h[0])


# --------------------------------------------------------------------------------------------
# learning difficulty
# --------------------------------------------------------------------------------------------

def _check_train(x: np.ndarray, keep: np.ndarray, name: str, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.ndim != 3:
        raise SignalError(f"{name} must have shape [E, M, n] (epoch, model, sample), got {list(x.shape)}")
    keep = _as_keep(keep, x.shape[1:], "keep")
    if dtype is bool:
        if x.dtype != bool:
            if np.isin(x, (0, 1)).all():
                x = x.astype(bool)
            else:
                raise SignalError(f"{name} must be bool (or 0/1), got dtype {x.dtype}")
    else:
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise SignalError(f"{name} contains NaN or inf")
    return x, keep


def _masked_mean_over_models(v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean of ``v[M, n]`` over the models where ``keep`` is True; NaN if none. inf propagates."""
    n_in = keep.sum(axis=0)
    tot = np.where(keep, v, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_in > 0, tot / np.maximum(n_in, 1), np.nan)


def mean_training_loss(loss: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean training loss of each sample, float ``[n]``.

    [RECONSTRUCTED] (one of the spec's candidate "learning difficulty" measures; the paper's is
    [UNVERIFIED]): ``mean over epochs e and over models m with keep[m, i] of loss[e, m, i]``,
    i.e. the average loss the sample had *while being trained on*. Higher = harder. NaN for a
    sample that no model trains on.

    loss: float ``[E, M, n]`` (per-epoch loss of every model on every sample); keep: bool ``[M, n]``.
    """
    loss, keep = _check_train(loss, keep, "loss")
    return _masked_mean_over_models(loss.mean(axis=0), keep)


def count_forgetting(seq) -> int:
    """Number of forgetting events of one accuracy sequence ``bool[E]`` (Toneva et al. 2019,
    ICLR, "An Empirical Study of Example Forgetting", §3): transitions from correct at epoch
    ``e - 1`` to incorrect at epoch ``e``. ``[1,0,1,1,0,0,1] -> 2``."""
    s = np.asarray(seq).astype(bool).reshape(-1)
    return int((s[:-1] & ~s[1:]).sum())


def forgetting_events(correct: np.ndarray, keep: np.ndarray, *, never_learned: str = "count") -> np.ndarray:
    """Mean number of forgetting events per sample over the models that train on it: float ``[n]``.

    Counting follows Toneva et al. 2019 (a forgetting event = correct at epoch ``e-1``,
    misclassified at ``e``; here the "epochs" are the E recorded evaluations, so events between
    recordings are missed). Using it as the Dynamics paper's learning difficulty is
    **[RECONSTRUCTED]** (spec §7.1 lists it as a candidate). ``never_learned="count"`` (default)
    just counts (a never-correct sequence has 0 events); ``"inf"`` follows Toneva et al.'s
    ranking convention and gives ``inf`` to a (model, sample) that is never correct at any
    recorded epoch (so one such IN model makes the sample's mean ``inf``). NaN for a sample that
    no model trains on.

    correct: bool ``[E, M, n]`` (was sample i correctly classified by model m after epoch e);
    keep: bool ``[M, n]``.
    """
    correct, keep = _check_train(correct, keep, "correct", dtype=bool)
    ev = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.float64)     # [M, n]
    if never_learned == "inf":
        ev[~correct.any(axis=0)] = np.inf
    elif never_learned != "count":
        raise ConfigError(f"never_learned must be 'count' or 'inf', got {never_learned!r}")
    return _masked_mean_over_models(ev, keep)


def first_learned_epoch(correct: np.ndarray, keep: np.ndarray, *, epochs=None,
                        never: float = np.inf) -> np.ndarray:
    """Epoch from which a sample stays learned, averaged over the models that train on it: ``[n]``.

    [RECONSTRUCTED] ("epochs-to-learn" is one of the spec's candidate difficulty measures): for
    one (model, sample) sequence ``correct[:, m, i]``, the first-learned epoch is the smallest
    index ``e`` such that ``correct[e'] `` is True for *every* ``e' >= e`` (it is classified
    correctly from ``e`` to the end; earlier correct-then-forgotten spells do not count). If the
    sample is misclassified at the last recorded epoch it is never learned and gets ``never``
    (default ``inf``; pass e.g. ``E`` to treat it as "learned just after the end"). Values are
    indices into the E axis (0 = learned from the first recording) unless ``epochs`` (length E,
    the epoch number of each recording) is given, in which case ``epochs[e]`` is returned. The
    mean over IN models is ``inf`` as soon as one IN model never learns the sample (with the
    default ``never``); NaN for a sample no model trains on.
    ``[0,1,0,1,1] -> 3``, ``[1,1,1] -> 0``, ``[1,1,0] -> never``.
    """
    correct, keep = _check_train(correct, keep, "correct", dtype=bool)
    e_ = correct.shape[0]
    wrong = ~correct
    # index of the last misclassification (-1 if none): first True in the reversed sequence
    last_wrong = np.where(wrong.any(axis=0), e_ - 1 - np.argmax(wrong[::-1], axis=0), -1)   # [M, n]
    first = (last_wrong + 1).astype(np.float64)
    if epochs is not None:
        ep = _check_epochs(epochs, e_, "epochs")
        first = np.where(first < e_, ep[np.minimum(first, e_ - 1).astype(np.int64)], first)
    first[last_wrong == e_ - 1] = never
    return _masked_mean_over_models(first, keep)


def _rank_rows(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, axis=-1)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho between matching rows of x and y (average ranks for ties)."""
    return _pearson_rows(_rank_rows(x), _rank_rows(y))


def _boot_indices(rng: np.random.Generator, n: int, n_boot: int):
    """Yield chunks of bootstrap index arrays [b, n] (sample rows with replacement)."""
    chunk = max(1, _BOOT_CHUNK_ELEMS // max(n, 1))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def _ci(values: np.ndarray, ci: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def spearman_bootstrap(x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                       ci: float = 0.95) -> dict[str, Any]:
    """Spearman rank correlation with a percentile bootstrap CI over samples.

    Pairs where either value is NaN are dropped (``+-inf`` are kept: they rank at the ends).
    Returns ``rho`` and ``p_value`` (``scipy.stats.spearmanr``, two-sided, t approximation),
    ``ci_low``/``ci_high`` (percentile interval of ``n_boot`` resamples of the pairs with
    replacement, seeded), ``ci``, ``n_boot`` and ``n`` (pairs used).
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise SignalError(f"correlated arrays differ in length: {x.shape[0]} vs {y.shape[0]}")
    _check_frac(ci, "ci")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(x.size)
    out: dict[str, Any] = {"rho": float("nan"), "p_value": float("nan"), "ci_low": float("nan"),
                           "ci_high": float("nan"), "ci": float(ci), "n_boot": int(n_boot), "n": n}
    if n < 3:
        return out
    rho = float(_spearman_rows(x[None], y[None])[0])
    out["rho"] = rho
    if np.isfinite(rho):
        # p-value via the t distribution with n - 2 dof (as scipy.stats.spearmanr)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = rho * np.sqrt((n - 2) / ((1.0 - rho) * (1.0 + rho)))
        out["p_value"] = float(2.0 * stats.t.sf(abs(t), n - 2)) if np.isfinite(t) else 0.0
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = np.concatenate([_spearman_rows(x[idx], y[idx]) for idx in _boot_indices(rng, n, n_boot)])
        out["ci_low"], out["ci_high"] = _ci(boots, ci)
    return out


def difficulty_vulnerability_correlation(difficulty: np.ndarray, final_vulnerability: np.ndarray, *,
                                         n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict[str, Any]:
    """Spearman correlation between a per-sample learning-difficulty measure and the final
    vulnerability, with a bootstrap CI and p-value (see :func:`spearman_bootstrap`).

    [ABSTRACT] the paper reports "a robust correlation between a sample's intrinsic learning
    difficulty" and its vulnerability. [RECONSTRUCTED]: the choice of Spearman's rho (rank-based,
    so it is insensitive to the units of the difficulty measure and handles ``inf`` = never
    learned) and of the percentile bootstrap over samples.
    """
    return spearman_bootstrap(difficulty, final_vulnerability, n_boot=n_boot, seed=seed, ci=ci)


# --------------------------------------------------------------------------------------------
# early prediction
# --------------------------------------------------------------------------------------------

def vulnerability(points: np.ndarray) -> np.ndarray:
    """Per-sample vulnerability ``TPR_i - FPR_i`` of points ``[..., 2]`` = (FPR, TPR).

    [RECONSTRUCTED]: the per-sample membership advantage (Yeom et al. 2018's ``TPR - FPR``
    evaluated at the global threshold). It is largest in the upper-left of the plane, the region
    the secondary summaries call highly vulnerable. NaN where the point is undefined.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise SignalError(f"points must have last axis (FPR, TPR) of size 2, got {list(pts.shape)}")
    return pts[..., 1] - pts[..., 0]


def final_vulnerability(last: np.ndarray) -> np.ndarray:
    """Vulnerability at the final checkpoint: pass ``traj[-1]`` (``[n, 2]``); returns
    ``TPR_i - FPR_i`` (``[n]``, see :func:`vulnerability`) [RECONSTRUCTED]."""
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
                           epochs=None, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> dict[str, Any]:
    """How well the vulnerability at checkpoint ``t`` predicts the final most-vulnerable samples.

    [ABSTRACT] "the privacy risk of samples highly vulnerable in the final trained model is
    largely determined early during training". The protocol is **[RECONSTRUCTED]** (spec §7.1
    marks it [UNVERIFIED]; the secondary summary quotes "~70 % of the final highly vulnerable
    samples identified within the first ~150 epochs", which reads like a recall):

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
    * every statistic has a percentile bootstrap interval (``*_lo``, ``*_hi``) from ``n_boot``
      resamples of the samples with replacement, the same resample for all checkpoints; ``k``
      is kept fixed in the resamples.

    Returns a dict of plain lists/floats: ``checkpoint`` (index or ``epochs``), ``k``, ``n``,
    ``top_frac``, ``chance``, ``precision``/``recall``/``spearman`` and their ``_lo``/``_hi``.
    """
    traj = _check_traj(traj)
    top_frac = _check_frac(top_frac, "top_frac")
    _check_frac(ci, "ci")
    p_, n_all = traj.shape[:2]
    ok = _valid_rows(traj)
    v = vulnerability(traj)[:, ok]                                  # [P, n]
    n = int(ok.sum())
    target = None
    if final_mask is not None:
        fm = _as_keep(final_mask, (n_all,), "final_mask")
        target = fm[ok].astype(np.float64)
    ck = list(range(p_)) if epochs is None else _check_epochs(epochs, p_).tolist()
    res: dict[str, Any] = {"checkpoint": ck, "n": n, "top_frac": top_frac, "n_boot": int(n_boot), "ci": float(ci),
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
        point["spearman"][t] = _spearman_rows(v[t][None], vf[None])[0]
    lo = {nm: np.full(p_, np.nan) for nm in names}
    hi = {nm: np.full(p_, np.nan) for nm in names}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = {nm: [[] for _ in range(p_)] for nm in names}
        for idx in _boot_indices(rng, n, n_boot):
            vfb = vf[idx]
            tb = None if target is None else target[idx]
            rfb = _rank_rows(vfb)
            for t in range(p_):
                vtb = v[t][idx]
                pr, rc = _overlap(vtb, vfb, k, tb)
                boots["precision"][t].append(pr)
                boots["recall"][t].append(rc)
                boots["spearman"][t].append(_pearson_rows(_rank_rows(vtb), rfb))
        for nm in names:
            for t in range(p_):
                lo[nm][t], hi[nm][t] = _ci(np.concatenate(boots[nm][t]), ci)
    for nm in names:
        res[nm] = point[nm].tolist()
        res[nm + "_lo"] = lo[nm].tolist()
        res[nm + "_hi"] = hi[nm].tolist()
    return res


# --------------------------------------------------------------------------------------------
# bundle
# --------------------------------------------------------------------------------------------

def _jsonable(x: Any) -> Any:
    """numpy -> plain Python; non-finite floats -> None (strict JSON has no NaN/inf)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    return x


@dataclass
class DynamicsReport:
    """Everything :func:`analyze` computes. Arrays keep the module's shapes; ``to_dict`` turns
    it into JSON-ready data (per-sample arrays only with ``include_samples=True``; NaN and inf
    become ``None``, so e.g. a never-learned ``first_learned`` reads ``null``).

    Provenance: ``trajectories`` realise the abstract's FPR-TPR plane; every other field is a
    [RECONSTRUCTED] metric (see the module docstring and each function's docstring).
    """

    epochs: np.ndarray                     # [P] training epoch of each checkpoint
    fpr: float                             # global FPR of the per-target thresholds
    top_frac: float
    region_params: dict[str, Any]
    region_names: list[str]
    trajectories: np.ndarray               # [P, n, 2] (FPR_i, TPR_i)
    center_of_mass: np.ndarray             # [P, 2]
    com: dict[str, Any]                    # path_length / displacement (+ _pp)
    speed: np.ndarray                      # [P-1, n] per epoch
    speed_per_step: np.ndarray             # [P-1] population mean speed per epoch
    encoding_speed: float                  # overall mean speed per epoch
    regions: np.ndarray                    # [P, n] int, -1 undefined
    occupancy: np.ndarray                  # [P, R]
    transitions: np.ndarray                # [P-1, R, R] row-stochastic (NaN rows = empty)
    transition_counts: np.ndarray          # [P-1, R, R]
    overall_transition: np.ndarray         # [R, R] first -> last checkpoint
    entry_probability: np.ndarray          # [P-1] into the highly vulnerable region
    first_entry_epoch: np.ndarray          # [n] epoch of first entering that region (inf never)
    entropy: np.ndarray                    # [P] nats
    entropy_change: float
    entropy_bins: int
    final_vulnerability: np.ndarray        # [n] TPR - FPR at the last checkpoint
    early_prediction: dict[str, Any]
    early_prediction_hv: dict[str, Any] | None
    difficulty: dict[str, np.ndarray] = field(default_factory=dict)       # name -> [n]
    correlations: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> spearman result

    @property
    def n_samples(self) -> int:
        return int(self.trajectories.shape[1])

    def to_dict(self, *, include_samples: bool = False) -> dict[str, Any]:
        hv = self.regions[-1] == HIGHLY_VULNERABLE if self.region_params.get("grid") is None else None
        d: dict[str, Any] = {
            "method": "Chen et al. 2025 (arXiv 2507.23291): FPR-TPR plane per sample [abstract]; "
                      "all metric definitions are privaudit reconstructions",
            "n_samples": self.n_samples,
            "n_checkpoints": int(self.trajectories.shape[0]),
            "epochs": self.epochs,
            "fpr": self.fpr,
            "top_frac": self.top_frac,
            "region_params": self.region_params,
            "region_names": self.region_names,
            "center_of_mass": self.center_of_mass,
            "com_displacement": self.com,
            "speed_per_step": self.speed_per_step,
            "encoding_speed": self.encoding_speed,
            "occupancy": self.occupancy,
            "transitions": self.transitions,
            "transition_counts": self.transition_counts,
            "overall_transition": self.overall_transition,
            "entry_probability": self.entry_probability,
            "peak_entry_probability": (float(np.nanmax(self.entry_probability))
                                       if np.isfinite(self.entry_probability).any() else None),
            "entropy": self.entropy,
            "entropy_change": self.entropy_change,
            "entropy_bins": self.entropy_bins,
            "n_highly_vulnerable_final": None if hv is None else int(hv.sum()),
            "early_prediction": self.early_prediction,
            "early_prediction_hv": self.early_prediction_hv,
            "correlations": self.correlations,
        }
        if include_samples:
            d["samples"] = {
                "trajectories": self.trajectories,
                "regions": self.regions,
                "speed": self.speed,
                "first_entry_epoch": self.first_entry_epoch,
                "final_vulnerability": self.final_vulnerability,
                "difficulty": self.difficulty,
            }
        return _jsonable(d)


def analyze(scores: np.ndarray, keep_targets: np.ndarray, checkpoints_epochs, *,
            train_loss: np.ndarray | None = None, train_correct: np.ndarray | None = None,
            train_keep: np.ndarray | None = None, fpr: float = 0.01, top_frac: float = 0.1,
            tpr_hi: float = 0.5, fpr_lo: float = 0.1, adv_lo: float = 0.1, grid=None,
            entropy_bins: int = 10, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> DynamicsReport:
    """Run the whole dynamics analysis and bundle it in a :class:`DynamicsReport`.

    scores: float ``[P, T, n]``; keep_targets: bool ``[T, n]``; checkpoints_epochs: the training
    epoch of each of the P checkpoints (strictly increasing). Speeds are per epoch.
    train_loss: float ``[E, M, n]`` / train_correct: bool ``[E, M, n]``: optional per-epoch
    training signals of M models whose membership is ``train_keep`` (default: ``keep_targets``,
    i.e. the target models themselves, M = T). From them the learning-difficulty measures
    ``mean_loss``, ``first_learned`` and ``forgetting`` are computed and Spearman-correlated
    with the final vulnerability. The region thresholds (``tpr_hi``, ``fpr_lo``, ``adv_lo``,
    ``grid``) are those of :func:`regions`; the "highly vulnerable" metrics (entry probability,
    first entry, ``early_prediction_hv``) exist only for the default 3-region scheme.
    """
    traj = trajectories(scores, keep_targets, fpr=fpr)
    p_ = traj.shape[0]
    ep = _check_epochs(checkpoints_epochs, p_, "checkpoints_epochs")
    n_reg = n_regions(grid)
    reg = regions(traj, tpr_hi=tpr_hi, fpr_lo=fpr_lo, adv_lo=adv_lo, grid=grid)
    counts = (np.stack([transition_counts(reg[p], reg[p + 1], n_reg) for p in range(p_ - 1)])
              if p_ > 1 else np.zeros((0, n_reg, n_reg), dtype=np.int64))
    ms = mean_speed(traj, ep)
    fv = final_vulnerability(traj[-1])
    three = grid is None
    ep_curve = early_prediction_curve(traj, top_frac=top_frac, epochs=ep, n_boot=n_boot, seed=seed, ci=ci)
    ep_hv = None
    if three and (reg[-1] == HIGHLY_VULNERABLE).any():
        ep_hv = early_prediction_curve(traj, top_frac=top_frac, final_mask=reg[-1] == HIGHLY_VULNERABLE,
                                       epochs=ep, n_boot=n_boot, seed=seed, ci=ci)
    difficulty: dict[str, np.ndarray] = {}
    n = traj.shape[1]
    tk = keep_targets if train_keep is None else train_keep
    if train_loss is not None:
        if np.asarray(train_loss).shape[-1] != n:
            raise SignalError(f"train_loss must have shape [E, M, {n}], got {list(np.shape(train_loss))}")
        difficulty["mean_loss"] = mean_training_loss(train_loss, tk)
    if train_correct is not None:
        if np.asarray(train_correct).shape[-1] != n:
            raise SignalError(f"train_correct must have shape [E, M, {n}], got {list(np.shape(train_correct))}")
        difficulty["first_learned"] = first_learned_epoch(train_correct, tk)
        difficulty["forgetting"] = forgetting_events(train_correct, tk)
    correlations = {name: difficulty_vulnerability_correlation(d, fv, n_boot=n_boot, seed=seed, ci=ci)
                    for name, d in difficulty.items()}
    return DynamicsReport(
        epochs=ep, fpr=float(fpr), top_frac=float(top_frac),
        region_params={"tpr_hi": tpr_hi, "fpr_lo": fpr_lo, "adv_lo": adv_lo,
                       "grid": grid if grid is None or isinstance(grid, (int, np.integer))
                       else [np.asarray(g).tolist() for g in grid]},
        region_names=region_names(grid), trajectories=traj,
        center_of_mass=center_of_mass(traj), com=com_displacement(traj),
        speed=speed(traj, ep), speed_per_step=ms["per_step"], encoding_speed=ms["overall"],
        regions=reg, occupancy=region_occupancy(reg, n_reg),
        transitions=transition_matrices(reg, n_reg), transition_counts=counts,
        overall_transition=transition_matrix(reg[0], reg[-1], n_reg),
        entry_probability=entry_probability(reg) if three else np.full(max(p_ - 1, 0), np.nan),
        first_entry_epoch=first_entry(reg, epochs=ep) if three else np.full(n, np.nan),
        entropy=spatial_entropy(traj, entropy_bins), entropy_change=entropy_change(traj, entropy_bins),
        entropy_bins=int(entropy_bins), final_vulnerability=fv,
        early_prediction=ep_curve, early_prediction_hv=ep_hv,
        difficulty=difficulty, correlations=correlations,
    )
