"""The sample groups the memorization study compares, and an attack's metrics on one group.

Groups follow Choi, Tople, Chandrasekaran, Jha, "Why Train More? Effective and Efficient
Membership Inference via Memorization", arXiv:2310.08015, 2023, §6 and Tables II/III: all samples,
the under-represented group of a mixture (``data/group.npy == 1``), and the highly memorized
samples ("singletons": memorization above a threshold, inside the under-represented group when
there is one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privaudit.data.mixtures import singletons
from privaudit.evaluation.per_sample import strict_threshold_flags
from privaudit.evaluation.protocol import summarize

GROUP_NAMES = {"all": "All", "under": "Under-represented", "high_mem": "High memorization"}


def table_groups(group_ids: np.ndarray | None, mem_sel: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """"all", "under" (``group_ids == 1``, when the pool has groups) and "high_mem": mem > threshold,
    inside the under-represented group when there is one (Choi et al.'s singletons, §6 (c))."""
    above = singletons(mem_sel, threshold)
    groups = {"all": np.ones(mem_sel.shape, dtype=bool)}
    if group_ids is not None:
        groups["under"] = group_ids == 1
        above &= groups["under"]
    groups["high_mem"] = above
    return groups


def budget_groups(mask_high: np.ndarray, group_ids: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """"high_mem"; "random": as many samples drawn uniformly from the whole pool (seeded; same size,
    so both groups have the same FPR resolution); "under" when the run has groups."""
    k = int(mask_high.sum())
    n = mask_high.size
    rand = np.zeros(n, dtype=bool)
    rand[np.random.default_rng([seed, 0x6D656D]).choice(n, size=k if k else min(n, 500), replace=False)] = True
    groups = {"random": rand}
    if k:
        groups = {"high_mem": mask_high, **groups}
    if group_ids is not None and (group_ids == 1).any():
        groups["under"] = group_ids == 1
    return groups


def group_metrics(scores: np.ndarray, keep_t: np.ndarray, mask: np.ndarray, *, fpr: float, mode: str,
                  n_boot: int, seed: int) -> dict[str, Any]:
    """AUC and TPR@fpr of one attack restricted to the samples ``mask`` (each target's ROC over the
    group's members and non-members; mean ± std over targets, bootstrap CI of the mean through
    :func:`privaudit.evaluation.protocol.summarize`), plus ``tpr_global``: the group's TPR at each
    target's global threshold (FPR <= fpr over ALL its non-members,
    :func:`privaudit.evaluation.per_sample.strict_threshold_flags`), mean over targets."""
    n = int(mask.sum())
    kt = keep_t[:, mask]
    n_pos, n_neg = kt.sum(axis=1), (~kt).sum(axis=1)
    if n == 0 or n_pos.min() == 0 or n_neg.min() == 0:
        return {"n": n, "skipped": f"a target has {int(n_pos.min(initial=0))} members / "
                                   f"{int(n_neg.min(initial=0))} non-members in this group"}
    _, summary = summarize(scores[:, mask], kt, fprs=(fpr,), mode=mode, n_boot=n_boot, seed=seed,
                           own_intervals=False)
    flags = strict_threshold_flags(scores, ~keep_t, fpr)
    glob = (flags & keep_t)[:, mask].sum(axis=1) / n_pos
    key = f"tpr@{fpr:g}"
    return {"n": n, "n_members_min": int(n_pos.min()), "n_nonmembers_min": int(n_neg.min()),
            "fpr_resolution": 1.0 / int(n_neg.min()), "auc": summary["auc"], key: summary[key],
            "tpr_global": {"mean": float(glob.mean()), "std": float(glob.std())}}


def within_group_budget_groups(mem_sel: np.ndarray, group_ids: np.ndarray | None, threshold: float, seed: int, *,
                               min_size: int = 20) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """High-memorization vs random samples *of the same data group*, for the shadow-budget curve
    (Choi et al. 2023, §7.2 / Fig. 7 compare samples of one distribution, e.g. random vs highly
    memorized OOD points; :func:`budget_groups` instead draws "random" from the whole pool).

    For every data group g ("ood" = ``group_ids == 1``, "id" = ``group_ids == 0``; "all" when the
    pool has no groups): ``g/high_mem`` = the samples of g with ``mem_sel > threshold`` (Choi et
    al.'s singletons), or the ``min_size`` samples of g with the largest ``mem_sel`` when fewer
    than ``min_size`` pass the threshold; ``g/random`` = as many samples of g drawn uniformly
    (seeded), so both have the same FPR resolution. NaN memorization never counts as high.
    Returns the masks and, per high-memorization group, how it was selected."""
    mem = np.where(np.isfinite(mem_sel), mem_sel, -np.inf)
    parts = {"all": np.ones(mem.shape, dtype=bool)} if group_ids is None else \
        {"id": group_ids == 0, "ood": group_ids == 1}
    rng = np.random.default_rng([seed, 0x77677267])
    masks: dict[str, np.ndarray] = {}
    how: dict[str, str] = {}
    for name, part in parts.items():
        idx = np.flatnonzero(part)
        if idx.size < 2:
            continue
        high = part & (mem > threshold)
        how[f"{name}/high_mem"] = f"mem_selection > {threshold:g}"
        if high.sum() < min(min_size, idx.size // 2):
            k = min(min_size, idx.size // 2)
            high = np.zeros(mem.shape, dtype=bool)
            high[idx[np.argsort(-mem[idx], kind="stable")[:k]]] = True
            how[f"{name}/high_mem"] = f"top {k} by mem_selection (fewer than {k} above {threshold:g})"
        rand = np.zeros(mem.shape, dtype=bool)
        rand[rng.choice(idx, size=int(high.sum()), replace=False)] = True
        masks[f"{name}/high_mem"], masks[f"{name}/random"] = high, rand
    return masks, how
