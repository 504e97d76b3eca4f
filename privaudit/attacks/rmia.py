"""RMIA, the Robust Membership Inference Attack (Zarifzadeh, Liu, Shokri, "Low-Cost High-Power
Membership Inference Attacks", ICML 2024).

Signal: a probability-like true-class score ``Pr(x | theta)``: ``conf`` (softmax ``p_y``) by
default, ``taylor_conf`` in the paper's reference configuration. ``target [n, A]``,
``ref [R, n, A]``.

Score, as in the paper and its official code (privacytrustlab/ml_privacy_meter,
``documentation/mia.md`` and ``research/2024_rmia``)::

    LR_theta(x, z) = [Pr(x|theta) / Pr(x)] / [Pr(z|theta) / Pr(z)]
    Score_RMIA(x)  = Pr_{z ~ Z} [ LR_theta(x, z) >= gamma ]

with ``Pr(x)`` the average of ``Pr(x|theta')`` over reference models (online: all of them,
IN and OUT). Offline (OUT models only):
``Pr(x) = ((1 + a) P_out(x) + (1 - a)) / 2``, from the linear approximation
``P_in ~= a P_out + (1 - a)`` (derivation: ``docs/derivations.md``).

Implementation notes:

* Writing ``r(x) = Pr(x|theta) / Pr(x)`` (with Pr(x) floored at 1e-300), ``LR(x, z) >= gamma``
  is evaluated as ``r(z) <= r(x) / gamma`` (``strict=True``: ``<``, the reference code's
  ``ratios > gamma``). Everything below (sorting, chunking, self-exclusion) uses this one
  comparison, so all code paths give identical integer counts.
* ``population``: bool [n] mask of the samples acting as z (default: all). Every sample is
  scored by the same function of ``r(x)``, so equal ratios get equal scores whether or not x is
  in Z. Default (all samples): leave-one-out, each x against the n - 1 others (the self-comparison
  removed). A partial mask: each x against all of Z, the fraction over ``|Z|`` -- exactly
  ``Pr_{z ~ Z}`` of the paper (where Z is disjoint from the audited samples); a member of Z is
  then also compared with itself, which passes only for ``gamma <= 1`` (``< 1`` if ``strict``),
  exactly as a sample outside Z passes against its equal-ratio copy in Z. The official protocol:
  ``population = ~target_keep`` (the target's non-members), or append a separate population set
  to ``target``/``ref`` and mask only those rows (their own scores are then discarded).
* Multiple queries, ``aug_combine="vote"`` (reference code ``majority_voting_tensor`` =
  ``torch.mode``): per query the boolean ``LR_a(x, z) >= gamma``, majority vote over queries
  (a tie counts as *not* passing, torch.mode's smallest mode), then the fraction over z.
  ``"mean"``: the fraction of (query, z) pairs passing, i.e. the mean over queries of the
  single-query scores.
* Memory: the n x |Z| matrix is never built. One query or ``"mean"``: sort + searchsorted,
  O((n + |Z|) log |Z|). ``"vote"`` with 2 queries: an exact 2-D dominance count (merge-sort
  tree over ranks), O((n + |Z|) log^2 |Z|). ``"vote"`` with >= 3 queries (or
  ``vote_method="dense"``): dense comparisons in chunks of ``chunk_size`` targets, memory
  O(chunk_size |Z|). All paths return identical results.
"""

from __future__ import annotations

import numpy as np

from privaudit.attacks._common import choice, masked_trim_mean, require_counts, trim_mean, validate
from privaudit.errors import ConfigError, SignalError

PR_FLOOR = 1e-300
A_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 10))


# ---------------------------------------------------------------------------------------------
# counting core
# ---------------------------------------------------------------------------------------------

def _passes(rz: np.ndarray, t: np.ndarray, strict: bool) -> np.ndarray:
    return rz < t if strict else rz <= t


def _count_single(rz: np.ndarray, t: np.ndarray, strict: bool) -> np.ndarray:
    """#{z: rz[z] <= t[x]} for every x (1-D arrays)."""
    return np.searchsorted(np.sort(rz), t, side="left" if strict else "right")


def _count_both(rz: np.ndarray, t: np.ndarray, strict: bool) -> np.ndarray:
    """#{z: rz[z, 0] <= t[x, 0] and rz[z, 1] <= t[x, 1]}: 2-D dominance counting.

    Sort z by query 0; the z passing query 0 for x are the first ``p0[x]`` of that order.
    Query 1 is replaced by integer ranks q1 with ``pass_1(z, x) <=> q1[z] <= p1[x]``; the prefix
    ``[0, p0)`` is split into aligned dyadic blocks (one per set bit of p0) and each block's
    sorted ranks are searched (merge-sort tree, flattened with block offsets)."""
    side = "left" if strict else "right"
    nz = rz.shape[0]
    order0 = np.argsort(rz[:, 0], kind="stable")
    p0 = np.searchsorted(rz[order0, 0], t[:, 0], side=side)
    sorted1 = np.sort(rz[:, 1])
    p1 = np.searchsorted(sorted1, t[:, 1], side=side)
    q1 = np.searchsorted(sorted1, rz[:, 1], side=side) + (1 if strict else 0)
    levels = max(1, int(np.ceil(np.log2(max(nz, 1)))))
    size = 1 << levels
    arr = np.full(size, nz + 1, dtype=np.int64)            # padding never counted (p1 <= nz)
    arr[:nz] = q1[order0]
    stride = nz + 2
    count = np.zeros(t.shape[0], dtype=np.int64)
    for level in range(levels + 1):                        # loop over log2 |Z| levels only
        b = 1 << level
        has = ((p0 >> level) & 1).astype(bool)
        if not has.any():
            continue
        blocks = np.sort(arr.reshape(size // b, b), axis=1)
        keys = (np.arange(size // b, dtype=np.int64)[:, None] * stride + blocks).ravel()
        block = (p0[has] >> (level + 1)) * 2
        count[has] += np.searchsorted(keys, block * stride + p1[has], side="right") - block * b
    return count


def _count_vote_dense(rz: np.ndarray, t: np.ndarray, strict: bool, chunk_size: int) -> np.ndarray:
    """Majority vote over queries, dense in chunks of x: memory O(chunk_size * |Z|)."""
    n, a = t.shape
    dtype = np.uint8 if a < 255 else np.int32
    count = np.empty(n, dtype=np.int64)
    for lo in range(0, n, chunk_size):                     # loop over chunks, not samples
        hi = min(lo + chunk_size, n)
        votes = np.zeros((hi - lo, rz.shape[0]), dtype=dtype)
        for q in range(a):
            votes += _passes(rz[None, :, q], t[lo:hi, q, None], strict)
        count[lo:hi] = (votes > a // 2).sum(axis=1)           # strict majority of a
    return count


def _rmia_from_ratios(r: np.ndarray, pop: np.ndarray, *, gamma: float, aug_combine: str,
                      strict: bool, chunk_size: int, vote_method: str) -> np.ndarray:
    """Score from per-sample, per-query ratios r = Pr(x|theta)/Pr(x), shape [n, A]."""
    n, a = r.shape
    t = r / gamma
    rz = r[pop]
    nz = rz.shape[0]
    self_pass = _passes(r, t, strict)                      # z = x comparison, per query
    if aug_combine == "mean" or a == 1:
        count = sum(_count_single(rz[:, q], t[:, q], strict) for q in range(a))
        self_count = self_pass.sum(axis=1)
        per = a
    else:
        if a == 2 and vote_method == "auto":
            count = _count_both(rz, t, strict)
        else:
            count = _count_vote_dense(rz, t, strict, chunk_size)
        self_count = (2 * self_pass.sum(axis=1) > a).astype(np.int64)
        per = 1
    if nz == n:
        # Z = every audited sample: leave-one-out, each x against the n - 1 others
        return (count - self_count) / (per * (n - 1))
    # partial Z: every x against all of Z (its self-comparison included when x is in Z), so the
    # score is one function of r(x) and ties never depend on whether x belongs to Z
    return count / (per * nz)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------

def _check(name, gamma, aug_combine, chunk_size, vote_method, trim):
    choice(name, "aug_combine", aug_combine, ("vote", "mean"))
    choice(name, "vote_method", vote_method, ("auto", "dense"))
    if not np.isfinite(gamma) or gamma <= 0:
        raise ConfigError(f"{name}: gamma must be a positive number, got {gamma!r}")
    if int(chunk_size) < 1:
        raise ConfigError(f"{name}: chunk_size must be >= 1, got {chunk_size!r}")
    if not 0.0 <= trim < 0.5:
        raise ConfigError(f"{name}: trim must lie in [0, 0.5), got {trim!r}")


def _population(population, n: int, name: str) -> np.ndarray:
    if population is None:
        pop = np.ones(n, dtype=bool)
    else:
        pop = np.asarray(population)
        if pop.shape != (n,) or pop.dtype != bool:
            raise SignalError(f"{name}: population must be a bool mask of shape ({n},), "
                              f"got {pop.dtype} {pop.shape}")
    if pop.sum() < 2:
        raise SignalError(f"{name}: population needs at least 2 samples, got {int(pop.sum())}")
    return pop


def rmia_online(target, ref, ref_keep, *, labels, gamma: float = 1.0, trim: float = 0.0,
                population=None, aug_combine: str = "vote", strict: bool = False,
                chunk_size: int = 2048, vote_method: str = "auto") -> np.ndarray:
    """Online RMIA, Zarifzadeh et al. ICML 2024, ``Pr_z[LR(x, z) >= gamma]`` (module docstring):
    ``Pr(x)`` = mean of ``Pr(x|theta')`` over **all** reference models (IN and OUT; with a
    balanced population this is ``(P_in + P_out)/2``). ``trim=0.2``: trimmed mean
    (``scipy.stats.trim_mean``, proportion cut from each end) as in the paper code.
    ``gamma``: default 1 (library docs); the paper-reproduction configs use 2.
    Higher = member; the score is a fraction in [0, 1].
    """
    name = "rmia_online"
    _check(name, gamma, aug_combine, chunk_size, vote_method, trim)
    target, ref, keep, _ = validate(target, ref, ref_keep, labels, name=name)
    pop = _population(population, target.shape[0], name)
    prx = trim_mean(ref, trim) if trim > 0 else ref.mean(axis=0)
    r = target / np.maximum(prx, PR_FLOOR)
    return _rmia_from_ratios(r, pop, gamma=gamma, aug_combine=aug_combine, strict=strict,
                             chunk_size=int(chunk_size), vote_method=vote_method)


def _offline_ratio(target, p_out, a):
    prx = 0.5 * ((1.0 + a) * p_out + (1.0 - a))
    return target / np.maximum(prx, PR_FLOOR)


def rmia_tune_a(ref, ref_keep, *, population=None, gamma: float = 1.0, trim: float = 0.0,
                aug_combine: str = "vote", strict: bool = False, chunk_size: int = 2048,
                vote_method: str = "auto", tune_model: int = 0, grid=A_GRID):
    """Offline ``a`` by grid search (reference code ``tune_offline_a``): reference model
    ``tune_model`` acts as a pseudo-target (its ``ref_keep`` row as membership labels) and is
    attacked by offline RMIA with the OUT rows of the *other* references, for each ``a`` in
    ``grid``; returns ``(best_a, aucs)`` (first best on ties). Samples without an OUT
    observation among the other references are left out of both x and Z.
    ref [R, n, A], ref_keep [R, n]."""
    from sklearn.metrics import roc_auc_score   # imported here: scikit-learn's import is slow
    ref = np.asarray(ref, dtype=np.float64)
    keep = np.asarray(ref_keep, dtype=bool)
    name = "rmia_offline"
    if ref.shape[0] < 2:
        raise SignalError(f"{name}: a='tune' needs at least 2 reference models, got {ref.shape[0]}")
    if not 0 <= tune_model < ref.shape[0]:
        raise ConfigError(f"{name}: tune_model must index a reference model, got {tune_model!r}")
    pseudo, truth = ref[tune_model], keep[tune_model]
    others = np.delete(ref, tune_model, axis=0)
    out = ~np.delete(keep, tune_model, axis=0)
    valid = out.any(axis=0)
    pop = _population(population, ref.shape[1], name) & valid
    if pop.sum() < 2:
        raise SignalError(f"{name}: cannot tune a: fewer than 2 population samples have an OUT "
                          "observation among the other references")
    if truth[valid].all() or not truth[valid].any():
        raise SignalError(f"{name}: cannot tune a: the pseudo-target model has only one "
                          "membership class among usable samples")
    p_out = masked_trim_mean(others[:, valid], out[:, valid], trim)
    aucs = []
    for a in grid:                                         # 11 grid points
        r = _offline_ratio(pseudo[valid], p_out, a)
        s = _rmia_from_ratios(r, pop[valid], gamma=gamma, aug_combine=aug_combine, strict=strict,
                              chunk_size=chunk_size, vote_method=vote_method)
        aucs.append(roc_auc_score(truth[valid], s))
    aucs = np.asarray(aucs)
    return float(grid[int(np.argmax(aucs))]), aucs


def rmia_offline(target, ref, ref_keep, *, labels, a="tune", gamma: float = 1.0,
                 trim: float = 0.0, population=None, aug_combine: str = "vote",
                 strict: bool = False, chunk_size: int = 2048, vote_method: str = "auto",
                 tune_model: int = 0) -> np.ndarray:
    """Offline RMIA, Zarifzadeh et al. ICML 2024 (offline Pr(x), see module docstring): only the
    OUT rows of ``ref`` are used, ``P_out(x)`` = their (optionally ``trim``-trimmed) mean and
    ``Pr(x) = ((1 + a) P_out(x) + (1 - a)) / 2``; the same for every z.

    ``a``: a number in [0, 1] (the paper configs: CIFAR-10 0.3, CIFAR-100 0.6; ``a=1`` gives
    ``Pr(x) = P_out(x)``) or ``"tune"`` (default; grid {0, 0.1, ..., 1} maximising the AUC of
    attacking reference model ``tune_model`` with the remaining references, see
    :func:`rmia_tune_a`). Every sample needs >= 1 OUT reference model.
    """
    name = "rmia_offline"
    _check(name, gamma, aug_combine, chunk_size, vote_method, trim)
    target, ref, keep, _ = validate(target, ref, ref_keep, labels, name=name)
    pop = _population(population, target.shape[0], name)
    out = ~keep
    require_counts(out.sum(axis=0), name=name, side="OUT")
    opts = dict(gamma=gamma, aug_combine=aug_combine, strict=strict, chunk_size=int(chunk_size),
                vote_method=vote_method)
    if isinstance(a, str):
        if a != "tune":
            raise ConfigError(f"{name}: a must be a number in [0, 1] or 'tune', got {a!r}")
        a, _ = rmia_tune_a(ref, keep, population=pop, trim=trim, tune_model=tune_model, **opts)
    elif not 0.0 <= float(a) <= 1.0:
        raise ConfigError(f"{name}: a must lie in [0, 1], got {a!r}")
    p_out = masked_trim_mean(ref, out, trim)
    r = _offline_ratio(target, p_out, float(a))
    return _rmia_from_ratios(r, pop, **opts)
