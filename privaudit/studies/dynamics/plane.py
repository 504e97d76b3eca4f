"""Per-sample membership vulnerability on the FPR-TPR plane across training checkpoints, and how
the population moves on it (Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of
Membership Privacy in Deep Learning", arXiv:2507.23291, 2025).

What the paper states (its abstract) and what privaudit defines
--------------------------------------------------------------
The paper tracks per-sample vulnerabilities as points on an FPR-TPR plane at checkpoints
throughout training and measures the rate and severity at which samples become vulnerable. The
operational definitions below (how a sample's point is computed, the regions, speed, centre of
mass, entropy and transitions) are privaudit's: each docstring states the definition used, built
from standard ones (the per-sample membership advantage TPR - FPR of Yeom et al., "Privacy Risk in
Machine Learning", IEEE CSF 2018). The paper's own definitions may differ, so compare numbers
with it only with care.

Units
-----
The plane is ``[0, 1]^2`` with coordinates ``(FPR_i, TPR_i)`` as *fractions*. Distances on it
(speed, path length, displacement) are Euclidean in those fractional units; the ``*_pp``
variants multiply by 100 ("percentage points"). On that scale the largest possible
start-to-end displacement is 100 * sqrt(2) ~ 141.4. Entropies are in nats unless ``base`` is
given.

Shapes (see ``docs/ARCHITECTURE.md``)
-------------------------------------
* ``scores``: float ``[P, T, n]``: attack scores of target model ``t`` at checkpoint ``p``,
  higher = member.
* ``keep_targets``: bool ``[T, n]``: membership of the target models (fixed over checkpoints).
* ``traj``: float ``[P, n, 2]``: last axis ``(FPR_i, TPR_i)``; NaN for samples that are never IN
  or never OUT among the targets.
* ``region`` labels: int ``[P, n]``; ``-1`` where the point is undefined (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation.per_sample import per_sample_rates

__all__ = [
    "REGION_NAMES", "HIGHLY_VULNERABLE", "trajectories", "center_of_mass", "com_displacement", "speed",
    "mean_speed", "regions", "n_regions", "region_names", "region_occupancy", "transition_counts",
    "transition_matrix", "transition_matrices", "entry_probability", "first_entry", "spatial_entropy",
    "entropy_change",
]

REGION_NAMES: tuple[str, ...] = ("safe", "leaky", "highly_vulnerable")

HIGHLY_VULNERABLE = 2



# --------------------------------------------------------------------------------------------
# validation helpers (shared by the dynamics modules)
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

    Each sample is a point on the FPR-TPR plane at each checkpoint (Chen et al. 2025, abstract).
    privaudit computes the point as the per-sample rates at a global threshold,
    :func:`privaudit.evaluation.per_sample.per_sample_rates`, at every checkpoint:

    1. For checkpoint ``p`` and target model ``t`` a *global* threshold is set on that target's
       OUT samples at the fixed false-positive rate ``fpr``, *strictly* (no interpolation, as
       LiRA's ``plot.py``): with the OUT scores sorted in decreasing order
       ``s_(1) >= s_(2) >= ...``, a sample is flagged when its score exceeds ``s_(k+1)``,
       ``k = floor(fpr * #OUT)`` (every sample when ``k = #OUT``), so the realised global FPR of
       every (checkpoint, target) is ``<= fpr``.
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
    keep = _as_keep(keep_targets, (t_, n), "keep_targets")
    fpr = _check_frac(fpr, "fpr")
    n_out = (~keep).sum(axis=1)
    if (n_out == 0).any():
        bad = int(np.flatnonzero(n_out == 0)[0])
        raise ConfigError(f"target model {bad} has no OUT samples in keep_targets: its threshold at "
                          f"a fixed FPR is undefined")
    out = np.empty((p_, n, 2))
    for p in range(p_):                                             # loop over checkpoints only
        out[p, :, 0], out[p, :, 1] = per_sample_rates(scores[p], keep, fpr)
    return out


# --------------------------------------------------------------------------------------------
# population dynamics on the plane
# --------------------------------------------------------------------------------------------

def _valid_rows(traj: np.ndarray) -> np.ndarray:
    """bool [n]: samples whose point is finite at *every* checkpoint (fixed population)."""
    return np.isfinite(traj).all(axis=(0, 2))


def center_of_mass(traj: np.ndarray) -> np.ndarray:
    """Population centroid on the plane per checkpoint. Returns float ``[P, 2]`` = (FPR, TPR).

    privaudit's definition: the unweighted mean of the
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

    privaudit's definition, with ``c_p = center_of_mass(traj)[p]``:

    * ``path_length = sum_p ||c_{p+1} - c_p||_2`` (total distance travelled),
    * ``displacement = ||c_{P-1} - c_0||_2`` (start to end, straight line),
    * ``vector = c_{P-1} - c_0`` as ``(dFPR, dTPR)``.

    Units: the plane is ``[0, 1]^2``, so ``displacement <= sqrt(2)``. The ``*_pp`` keys are the
    same quantities x100 ("percentage points"); displacements quoted elsewhere on a 0-100
    scale may be defined differently, so compare with care.
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

    The paper measures the *rate* at which samples become vulnerable (Chen et al. 2025, abstract);
    privaudit's measure of it, a "membership encoding speed":
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
    """Population summaries of :func:`speed`: ``per_step`` (mean over samples for
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

    Highly vulnerable samples (Chen et al. 2025, abstract) sit in the upper-left of the plane
    (high TPR at low FPR); the thresholds below are privaudit's choice.

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

    privaudit's definition:
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
    ``transition_matrix(region_seq[p], region_seq[p+1])``."""
    r = np.asarray(region_seq)
    if r.ndim != 2:
        raise SignalError(f"region_seq must have shape [P, n], got {list(r.shape)}")
    if r.shape[0] < 2:
        return np.zeros((0, n_regions, n_regions))
    return np.stack([transition_matrix(r[p], r[p + 1], n_regions, empty=empty) for p in range(r.shape[0] - 1)])


def entry_probability(region_seq: np.ndarray, target: int = HIGHLY_VULNERABLE) -> np.ndarray:
    """Per-step probability of *entering* region ``target``: float ``[P-1]``.

    privaudit's definition of the probability of moving into the high-vulnerability state:
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

    A second, per-sample reading of how fast a sample becomes vulnerable (privaudit's).
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

    privaudit's definition: the plane
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
    positive = the population spreads out over the plane."""
    h = spatial_entropy(traj, bins, base=base)
    return float(h[-1] - h[0])

