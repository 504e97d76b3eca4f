"""The memorization stage: "memorization explains vulnerability" on an existing run, with no
retraining (Choi, Tople, Chandrasekaran, Jha, "Why Train More?", arXiv 2310.08015; spec
ALGORITHMS.md §1.2, §6). The population that feeds LiRA also yields the Feldman-Zhang estimates
(seed App. C.1).

From ``keep`` and the stored logits of run ``RUN_DIR`` (final epoch by default):

1. correctness ``correct[m, i] = argmax(logits[m, i, identity query]) == y_i`` ->
   Feldman-Zhang memorization with standard errors (:func:`privaudit.analysis.memorization.
   feldman_zhang`), over all models and, for choosing the high-memorization targets, over the
   *reference* models only (the target models never select their own targets);
2. LiRA privacy score d(x) from phi (:func:`~privaudit.analysis.memorization.privacy_score`);
   per-sample TPR at ``fpr`` of the primary attack scored leave-one-model-out against every model;
   Spearman correlations of mem with both, with bootstrap CIs;
3. per-group tables for every attack of the run ("All", "Under-represented" from
   ``data/group.npy``, and the high-memorization set, the seed's "singletons"): AUC and TPR at
   ``fpr`` with bootstrap intervals (the layout of the seed's Tables II/III);
4. the shadow-budget curve (:func:`privaudit.analysis.shadow_budget.shadow_budget_curve`) for
   high-memorization vs random targets, the measured reduction factors, and the O(1/H^2) /
   O(1/mem^2) prediction (RECONSTRUCTED, spec §6.2) next to it.

Writes, and touches nothing else::

    results/memorization/memorization.json   every number, the definitions used
    results/memorization/{mem,mem_se,mem_selection,privacy_score,per_sample_tpr,hellinger_sq}.npy
    results/memorization/{high_mem,random}_mask.npy
    results/memorization/budget_auc.png, budget_tpr.png, budget_bound.png
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from privaudit.analysis import memorization as memo
from privaudit.analysis import shadow_budget as sb
from privaudit.attacks.registry import ATTACKS, AttackSpec, get_attack
from privaudit.config import AttackConfig, RunConfig
from privaudit.data.mixtures import singletons
from privaudit.errors import ConfigError, PrivauditError
from privaudit.evaluation.protocol import score_targets, summarize
from privaudit.runtime import pipeline
from privaudit.runtime.store import RunStore

OUT = "results/memorization"
SATURATION = 0.95      # "reaches its full-budget value": 95 % of the way from chance to it
FALLBACK = {"lira_online": "lira_offline", "lira_online_global": "lira_offline_global",
            "rmia_online": "rmia_offline"}   # used where R is too small for the online attack
GROUP_NAMES = {"all": "All", "under": "Under-represented", "high_mem": "High memorization"}


@dataclass(frozen=True)
class MemorizationOptions:
    attack: str = "lira_online"            # per-sample TPR and shadow-budget curve
    fpr: float = 1e-3
    threshold: float = 0.5                 # high memorization: mem > threshold
    budget_sizes: tuple[int, ...] | None = None   # default 1, 2, 4, ..., all reference models
    repeats: int = 3
    budget_targets: int = 4
    table_targets: int | None = None       # default: the run's evaluation.targets
    tpr_targets: int | None = None         # default: every model (leave-one-model-out)
    epoch: int | None = None
    n_boot: int = 200
    seed: int = 0

    def check(self, n_models: int) -> None:
        """One-line ConfigError for an impossible option."""
        if self.attack not in ATTACKS:
            get_attack(self.attack)
        if not 0.0 < self.fpr < 1.0:
            raise ConfigError(f"--fpr must lie strictly between 0 and 1, got {self.fpr}")
        if not -1.0 <= self.threshold < 1.0:
            raise ConfigError(f"--threshold must lie in [-1, 1), got {self.threshold}")
        if self.repeats < 1 or self.n_boot < 0:
            raise ConfigError(f"--repeats must be >= 1 and --bootstrap >= 0, got {self.repeats}, {self.n_boot}")
        for name, t in (("--budget-targets", self.budget_targets), ("--targets", self.table_targets),
                        ("--tpr-targets", self.tpr_targets)):
            if t is not None and not 1 <= t <= n_models - 2:
                raise ConfigError(f"{name} must lie in 1..{n_models - 2} (the run has {n_models} models), got {t}")
        if self.budget_sizes is not None and (not self.budget_sizes or min(self.budget_sizes) < 1):
            raise ConfigError(f"--budget-sizes must be positive integers, got {list(self.budget_sizes)}")


@dataclass
class MemorizationOutput:
    doc: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


# -- inputs --------------------------------------------------------------------------------------
def correctness(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool [M, n]: model m classifies sample i correctly on the identity query (query 0, see
    :func:`privaudit.training.augment.query_grid`)."""
    return np.asarray(logits[:, :, 0]).argmax(axis=-1) == labels[None, :]


def attack_scores(store: RunStore, a: AttackConfig, epoch: int, targets: list[int], keep: np.ndarray,
                  labels: np.ndarray, cache: dict) -> tuple[np.ndarray, str]:
    """Scores ``float [T, n]`` of targets ``0..T-1``: the run's saved scores when they cover these
    targets, else computed leave-one-model-out (nothing is written). Returns (scores, source)."""
    rel = f"results/epoch_{epoch:04d}/scores_{a.key}.npy"
    if targets == list(range(len(targets))) and store.path(rel).exists():
        saved = store.load_npy(rel, mmap=True)
        if saved.shape[0] >= len(targets) and saved.shape[1] == keep.shape[1]:
            return np.asarray(saved[: len(targets)], dtype=np.float64), rel
    spec = get_attack(a.name)
    signal = pipeline.load_signal(store, a.signal or spec.signal, epoch, labels, cache)
    return score_targets(spec, signal, keep, labels, targets, **dict(a.params)), "computed"


# -- per-group tables ----------------------------------------------------------------------------
def group_metrics(scores: np.ndarray, keep_t: np.ndarray, mask: np.ndarray, *, fpr: float, mode: str,
                  n_boot: int, seed: int) -> dict[str, Any]:
    """AUC and TPR@fpr of one attack restricted to the samples ``mask`` (each target's ROC over the
    group's members and non-members; mean ± std over targets, bootstrap CI of the mean through
    :func:`privaudit.evaluation.protocol.summarize`), plus ``tpr_global``: the group's TPR at each
    target's global threshold (FPR <= fpr over ALL its non-members), mean over targets."""
    n = int(mask.sum())
    kt = keep_t[:, mask]
    n_pos, n_neg = kt.sum(axis=1), (~kt).sum(axis=1)
    if n == 0 or n_pos.min() == 0 or n_neg.min() == 0:
        return {"n": n, "skipped": f"a target has {int(n_pos.min(initial=0))} members / "
                                   f"{int(n_neg.min(initial=0))} non-members in this group"}
    _, summary = summarize(scores[:, mask], kt, fprs=(fpr,), mode=mode, n_boot=n_boot, seed=seed)
    flags = memo.strict_threshold_flags(scores, ~keep_t, fpr)
    glob = (flags & keep_t)[:, mask].sum(axis=1) / n_pos
    key = f"tpr@{fpr:g}"
    return {"n": n, "n_members_min": int(n_pos.min()), "n_nonmembers_min": int(n_neg.min()),
            "fpr_resolution": 1.0 / int(n_neg.min()), "auc": summary["auc"], key: summary[key],
            "tpr_global": {"mean": float(glob.mean()), "std": float(glob.std())}}


def table_groups(group_ids: np.ndarray | None, mem_sel: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """"all", "under" (``data/group.npy == 1``, when present) and "high_mem": mem > threshold,
    inside the under-represented group when there is one (the seed's singletons, §6 (c))."""
    above = singletons(mem_sel, threshold)
    groups = {"all": np.ones(mem_sel.shape, dtype=bool)}
    if group_ids is not None:
        groups["under"] = group_ids == 1
        above &= groups["under"]
    groups["high_mem"] = above
    return groups


# -- shadow-model budget -------------------------------------------------------------------------
def default_sizes(pool: int) -> tuple[int, ...]:
    """1, 2, 4, ... below ``pool``, then ``pool`` itself (every reference model)."""
    sizes = [1 << k for k in range(max(pool, 1).bit_length()) if (1 << k) < pool]
    return tuple(sizes + [pool])


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


def budget_curve(spec: AttackSpec, signal: np.ndarray, keep: np.ndarray, labels: np.ndarray,
                 groups: dict[str, np.ndarray], opts: MemorizationOptions) -> tuple[list[dict], tuple[int, ...]]:
    """:func:`privaudit.analysis.shadow_budget.shadow_budget_curve` of ``spec`` on targets
    ``0..budget_targets-1`` (references drawn from the other models), with the offline variant as
    the fallback where R is too small for an online attack."""
    targets = list(range(opts.budget_targets))
    pool = keep.shape[0] - len(targets)
    sizes = tuple(sorted({r for r in (opts.budget_sizes or default_sizes(pool)) if r <= pool}))
    if not sizes:
        raise ConfigError(f"--budget-sizes: none is <= the {pool} reference models of this run")
    fallback = get_attack(FALLBACK[spec.name]) if spec.name in FALLBACK else None
    curve = sb.shadow_budget_curve(spec, signal, keep, labels, targets=targets, sample_groups=groups,
                                   sizes=sizes, repeats=opts.repeats, seed=opts.seed, fprs=(opts.fpr,),
                                   fallback_fn=fallback, n_boot=opts.n_boot)
    return curve, sizes


def _final(curve: list[dict], group: str, metric: str) -> tuple[int | None, float]:
    rows = [r for r in curve if r["group"] == group and not r.get("skipped")
            and np.isfinite(r.get(f"{metric}_mean", np.nan))]
    if not rows:
        return None, float("nan")
    last = max(rows, key=lambda r: r["n_models"])
    return int(last["n_models"]), float(last[f"{metric}_mean"])


def saturation(curve: list[dict], group: str, metric: str, chance: float) -> dict[str, Any]:
    """Seed §7.2's reading ("5 shadow models match 2000"): the fewest models R whose mean metric is
    within ``SATURATION`` of the way from chance to the group's full-budget value, and
    ``factor = R_max / R``. Undefined (NaN) when the full-budget value is not above chance."""
    r_max, final = _final(curve, group, metric)
    out = {"group": group, "metric": metric, "r_max": r_max, "final": final, "chance": chance}
    if r_max is None or not final > chance:
        return out | {"level": None, "r_needed": None, "factor": float("nan"),
                      "note": "no evaluated size, or the full-budget value is at chance"}
    level = chance + SATURATION * (final - chance)
    r = sb.models_to_reach(curve, metric, level, group=group)
    return out | {"level": level, "r_needed": r, "factor": r_max / r if r else float("nan"),
                  "capped": r == _smallest(curve, group)}


def _smallest(curve: list[dict], group: str) -> int | None:
    sizes = [r["n_models"] for r in curve if r["group"] == group and not r.get("skipped")]
    return min(sizes) if sizes else None


def cross_reduction(curve: list[dict], metric: str, a: str = "high_mem", b: str = "random") -> dict[str, Any]:
    """How many times fewer models group ``a`` needs to reach what group ``b`` reaches with the
    largest budget evaluated: ``R_max / R_a``, with R_a from
    :func:`privaudit.analysis.shadow_budget.models_to_reach` (NaN when ``a`` never reaches it);
    also :func:`~privaudit.analysis.shadow_budget.reduction_factor` at the same level."""
    r_max, level = _final(curve, b, metric)
    if r_max is None or a not in {r["group"] for r in curve}:
        return {"metric": metric, "groups": [a, b], "level": None, "factor": float("nan"), "note": "group missing"}
    r_a = sb.models_to_reach(curve, metric, level, group=a)
    return {"metric": metric, "groups": [a, b], "level": level, "r_max": r_max, "r_needed_a": r_a,
            "factor": r_max / r_a if r_a else float("nan"), "capped": r_a == _smallest(curve, a),
            # R_b / R_a with R_b the first size where b reaches the level (differs when b's curve is not monotone)
            "factor_first_reach": sb.reduction_factor(curve, a, b, metric, level)}


def bounds(h2: np.ndarray, mem: np.ndarray, groups: dict[str, np.ndarray], sizes) -> dict[str, Any]:
    """The RECONSTRUCTED sample-complexity prediction per group (seed Lemma 2: N = c / H^2; Corollary
    1: N = 2c / mem^2; c = 1, unknown): share of the group with N_i <= R for every R, the median
    N_i, and the const-free predicted reduction median N(random) / median N(high_mem)."""
    out: dict[str, Any] = {"reconstructed": True, "const": 1.0, "groups": {}}
    for name, mask in groups.items():
        out["groups"][name] = {kind: {k: v for k, v in sb.bound_curve(x[mask], sizes, kind=kind).items()
                                      if k != "n_required"}
                               for kind, x in (("h2", h2), ("mem", mem))}
    g = out["groups"]
    for kind in ("h2", "mem"):
        if "high_mem" in g and "random" in g:
            hi, rnd = g["high_mem"][kind]["median_required"], g["random"][kind]["median_required"]
            out[f"predicted_reduction_{kind}"] = rnd / hi if np.isfinite(hi) and hi > 0 else float("nan")
    return out


# -- plots ---------------------------------------------------------------------------------------
def _series(curve: list[dict], group: str, metric: str, sizes) -> tuple[np.ndarray, np.ndarray]:
    by = {r["n_models"]: r for r in curve if r["group"] == group}
    mean, lo, hi = (np.array([by[s].get(f"{metric}_{k}", np.nan) if s in by and not by[s].get("skipped")
                              else np.nan for s in sizes], dtype=float) for k in ("mean", "ci_low", "ci_high"))
    return mean, np.vstack([mean - lo, hi - mean])


def plot_budget(curve: list[dict], bound: dict[str, Any], sizes, folder: Path, *, fpr: float,
                title: str) -> dict[str, Path]:
    """Measured AUC / TPR vs R per group (95 % bootstrap CIs) with the reconstructed 1/H^2
    prediction next to it (share of the group with c / H^2 <= R, c = 1); budget_bound.png has both
    the 1/H^2 and 1/mem^2 predictions."""
    from privaudit.report.plots import line_plot

    paths = {}
    pred = lambda name, kind: (np.asarray(bound["groups"][name][kind]["frac_reachable"]), None)
    for metric, ylabel, fname in (("auc", "AUC", "budget_auc.png"),
                                  (sb.metric_name(fpr), f"TPR at FPR {fpr:g}", "budget_tpr.png")):
        series = {f"{name}: measured": _series(curve, name, metric, sizes) for name in bound["groups"]}
        series |= {f"{name}: share with 1/H² ≤ R (reconstructed)": pred(name, "h2") for name in bound["groups"]}
        paths[fname] = line_plot(sizes, series, folder / fname, xlabel="reference (shadow) models R",
                                 ylabel=f"{ylabel}  /  predicted share", title=title, log_x=True)
    series = {f"{name}: {lab}": pred(name, kind) for name in bound["groups"]
              for kind, lab in (("h2", "1/H² ≤ R"), ("mem", "2/mem² ≤ R"))}
    paths["budget_bound.png"] = line_plot(sizes, series, folder / "budget_bound.png",
                                          xlabel="reference (shadow) models R",
                                          ylabel="share of the group predicted distinguishable",
                                          title="sample-complexity prediction (RECONSTRUCTED, const = 1)", log_x=True)
    return paths


# -- the stage -----------------------------------------------------------------------------------
def _mem_summary(mem: np.ndarray, mask: np.ndarray, threshold: float) -> dict[str, Any]:
    m = mem[mask & np.isfinite(mem)]
    return {"n": int(mask.sum()), "n_valid": int(m.size),
            "mean": float(m.mean()) if m.size else None, "median": float(np.median(m)) if m.size else None,
            f"frac_above_{threshold:g}": float((m > threshold).mean()) if m.size else None}


def definitions(opts: MemorizationOptions, *, m_models: int, n_excluded: int, t_table: int, n_tpr: int,
                has_groups: bool) -> dict[str, Any]:
    """What every number of ``memorization.json`` means (written into the document)."""
    inside = " inside the under-represented group (the seed's singletons)" if has_groups else ""
    return {
        "correct": "argmax of the identity query's logits == label",
        "mem": "Feldman & Zhang 2020: mean correctness over IN models - over OUT models (all models); "
               "se = sqrt(p_in(1-p_in)/n_in + p_out(1-p_out)/n_out)",
        "mem_selection": f"the same estimator over the {m_models - n_excluded} reference models only (models "
                         f"{n_excluded}..{m_models - 1}): selects the high-memorization targets without looking "
                         "at the target models",
        "privacy_score": "d(x) = |mu_in - mu_out| / (sigma_in + sigma_out) of phi over all models "
                         "(Carlini et al. 2022 Sec. VII-B), mean over queries",
        "per_sample_tpr": f"{opts.attack} scored leave-one-model-out against {n_tpr} target models; per target one "
                          f"global strict threshold at FPR <= {opts.fpr:g}; fraction of the targets containing the "
                          "sample that flag it",
        "groups": {"all": "every pool sample", "under": "data/group.npy == 1 (the mixture's under-represented group)",
                   "high_mem": f"mem_selection > {opts.threshold:g}{inside}"},
        "tables": f"targets 0..{t_table - 1}; per target the ROC over the group's own members and non-members "
                  f"(strict TPR at FPR <= {opts.fpr:g}: with fewer than 1/FPR non-members this is the TPR at zero "
                  "false positives, see fpr_resolution); tpr_global: the group's TPR at the target's threshold set "
                  "on all non-members; mean ± std over targets, 95% bootstrap CI of the mean",
        "budget": f"targets 0..{opts.budget_targets - 1}; R reference models drawn from the others, nested draws, "
                  f"{opts.repeats} repeats; 'random' = as many samples as high_mem, uniformly from the pool; "
                  f"R too small for {opts.attack} uses {FALLBACK.get(opts.attack, 'no fallback')}",
        "saturation": f"fewest R within {SATURATION:.0%} of the way from chance to the group's value at the largest "
                      "R; factor = R_max / R (the seed's '5 models match 2000' reading)",
        "high_mem_vs_random": "fewest R_a at which high_mem reaches what random reaches with the largest R; "
                              "factor = R_max / R_a",
        "capped": "true when R (R_a) is the smallest size evaluated: the factor is then limited by the population "
                  "(R_max), a lower bound on what a larger population would show",
        "bound": "RECONSTRUCTED (seed math stripped, spec 6.2): N_i = c / H^2_i (Lemma 2; H^2 of the Gaussian IN/OUT "
                 "fits of phi) and N_i = 2c / mem_i^2 (Corollary 1 via H^2 >= mem^2/2), c = 1 unknown: only the "
                 "scaling and the const-free ratio between groups are predictions"}


def _tables(cfg: RunConfig, store: RunStore, groups: dict[str, np.ndarray], targets: list[int], epoch: int,
            keep: np.ndarray, labels: np.ndarray, opts: MemorizationOptions, cache: dict) -> dict[str, Any]:
    """Per attack of the run: :func:`group_metrics` for every group (or the reason it was skipped)."""
    tables: dict[str, Any] = {}
    for a in cfg.attacks:
        label = a.key
        try:
            scores, source = attack_scores(store, a, epoch, targets, keep, labels, cache)
        except PrivauditError as err:
            tables[label] = {"skipped": str(err)}
            continue
        tables[label] = {"scores": source, "groups": {
            g: group_metrics(scores, keep[targets], mask, fpr=opts.fpr, mode=cfg.evaluation.tpr_mode,
                             n_boot=opts.n_boot, seed=opts.seed) for g, mask in groups.items()}}
    return tables


def _correlations(mem: memo.MemorizationResult, pscore: np.ndarray, tpr: np.ndarray, group_ids: np.ndarray | None,
                  opts: MemorizationOptions) -> dict[str, Any]:
    """Spearman of mem vs privacy score and vs per-sample TPR, over all samples and inside the group."""
    n_boot = max(opts.n_boot, 1)
    report = memo.memorization_report(mem, pscore, tpr, n_boot=n_boot, seed=opts.seed)
    if group_ids is not None:
        u = group_ids == 1
        report["under_represented"] = memo.memorization_report(mem.mem[u], pscore[u], tpr[u], n_boot=n_boot,
                                                               seed=opts.seed)
    return report


def _write(store: RunStore, doc: dict[str, Any], arrays: dict[str, np.ndarray], masks: dict[str, np.ndarray],
           curve: list[dict], bound: dict[str, Any], sizes, opts: MemorizationOptions) -> dict[str, Path]:
    paths = {"json": store.save_json(f"{OUT}/memorization.json", doc)}
    for name, arr in arrays.items():
        paths[name] = store.save_npy(f"{OUT}/{name}.npy", np.asarray(arr, dtype=np.float32))
    for name in ("high_mem", "random"):
        if name in masks:
            paths[f"{name}_mask"] = store.save_npy(f"{OUT}/{name}_mask.npy", masks[name])
    title = f"{doc['run']}: {opts.attack}, {len(sizes)} budgets, {opts.budget_targets} targets"
    return paths | plot_budget(curve, bound, sizes, store.path(OUT), fpr=opts.fpr, title=title)


def run_memorization(run_dir: str | Path, opts: MemorizationOptions = MemorizationOptions()) -> MemorizationOutput:
    """The whole stage on an existing run (module docstring); returns the JSON document and paths."""
    store = RunStore(run_dir)
    cfg: RunConfig = pipeline.read_config(store)
    epoch = opts.epoch or cfg.training.epochs
    if epoch not in pipeline.signal_epochs(cfg):
        raise ConfigError(f"--epoch {epoch}: the run has logits for epochs {pipeline.signal_epochs(cfg)} only")
    if not store.signal_file("logits", epoch).exists():
        raise ConfigError(f"{store.root} has no logits for epoch {epoch}: run `privaudit run` on it first")
    keep = np.asarray(store.load_npy("keep.npy"))
    m_models, n = keep.shape
    opts.check(m_models)
    labels = np.asarray(store.load_npy("data/y.npy"))[:n]
    group_ids = np.asarray(store.load_npy("data/group.npy"))[:n] if store.path("data", "group.npy").exists() else None
    cache: dict = {}

    # 1. memorization (all models; the selection uses the reference models only)
    correct = correctness(pipeline.load_logits(store, epoch), labels)
    mem_all = memo.feldman_zhang(correct, keep)
    t_table = opts.table_targets or cfg.evaluation.targets
    n_excluded = max(t_table, opts.budget_targets)
    mem_sel = memo.feldman_zhang(correct[n_excluded:], keep[n_excluded:])

    # 2. privacy score, per-sample TPR, correlations
    phi = pipeline.load_signal(store, "phi", epoch, labels, cache)
    pscore = memo.privacy_score(phi, keep)
    spec = get_attack(opts.attack)
    signal = pipeline.load_signal(store, spec.signal, epoch, labels, cache)
    tpr_targets = list(range(opts.tpr_targets or m_models))
    tpr = memo.per_sample_tpr(score_targets(spec, signal, keep, labels, tpr_targets), keep[tpr_targets], opts.fpr)

    # 3. per-group tables for every attack of the run
    groups = table_groups(group_ids, mem_sel.mem, opts.threshold)
    tables = _tables(cfg, store, groups, list(range(t_table)), epoch, keep, labels, opts, cache)

    # 4. shadow-model budget and the reconstructed bound
    bgroups = budget_groups(groups["high_mem"], group_ids, opts.seed)
    curve, sizes = budget_curve(spec, signal, keep, labels, bgroups, opts)
    h2 = sb.hellinger_from_signal(phi, keep)
    bound = bounds(h2, mem_all.mem, bgroups, sizes)
    tpr_key = sb.metric_name(opts.fpr)
    reductions = {"saturation": [saturation(curve, g, metric, chance) for g in bgroups
                                 for metric, chance in (("auc", 0.5), (tpr_key, opts.fpr))],
                  "high_mem_vs_random": [cross_reduction(curve, metric) for metric in ("auc", tpr_key)]}

    doc = {"run": cfg.name, "epoch": epoch, "n_models": m_models, "n_samples": n,
           "attack": opts.attack, "fpr": opts.fpr, "threshold": opts.threshold,
           "definitions": definitions(opts, m_models=m_models, n_excluded=n_excluded, t_table=t_table,
                                      n_tpr=len(tpr_targets), has_groups=group_ids is not None),
           "memorization": {"all_models": mem_all.summary(), "selection": mem_sel.summary(),
                            "by_group": {g: _mem_summary(mem_all.mem, mask, opts.threshold)
                                         for g, mask in groups.items()}},
           "correlations": _correlations(mem_all, pscore, tpr, group_ids, opts),
           "tables": tables,
           "budget": {"sizes": list(sizes), "groups": {g: int(m.sum()) for g, m in bgroups.items()},
                      "curve": curve, "reductions": reductions, "bound": bound}}
    arrays = {"mem": mem_all.mem, "mem_se": mem_all.se, "mem_selection": mem_sel.mem, "privacy_score": pscore,
              "per_sample_tpr": tpr, "hellinger_sq": h2}
    return MemorizationOutput(doc, _write(store, doc, arrays, bgroups, curve, bound, sizes, opts))
