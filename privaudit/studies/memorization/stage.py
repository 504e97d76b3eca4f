"""The memorization study on a run: does memorization explain which of your samples are
vulnerable, and how many reference models does an attack on them need? No retraining: the
population that feeds the attacks also yields the Feldman-Zhang estimates (Choi, Tople,
Chandrasekaran, Jha, "Why Train More? Effective and Efficient Membership Inference via
Memorization", arXiv:2310.08015, 2023, App. C, Algorithm 1).

From ``keep`` and the stored logits of the run (final epoch by default):

1. correctness ``correct[m, i] = argmax(logits[m, i, identity query]) == y_i`` -> Feldman-Zhang
   memorization with standard errors (:func:`~privaudit.studies.memorization.estimators.feldman_zhang`),
   over all models and, for choosing the high-memorization targets, over the *reference* models
   only (the target models never select their own targets);
2. the LiRA privacy score d(x) from phi and the per-sample TPR at ``fpr`` of one attack scored
   leave-one-model-out against every model (:mod:`privaudit.evaluation.per_sample`), and the
   Spearman correlations of memorization with both, with bootstrap intervals;
3. per-group tables for every attack of the run ("All", "Under-represented" from the pool's
   groups, and the high-memorization set): AUC and TPR at ``fpr`` with bootstrap intervals (the
   layout of Choi et al.'s Tables II/III);
4. the shadow-model budget curve for high-memorization vs random targets, the measured reduction
   factors, and the O(1/H^2) / O(1/mem^2) prediction next to it
   (:mod:`privaudit.studies.memorization.budget`).

Writes only under ``Layout.study("memorization")``: ``memorization.json`` (every number and the
definitions used), the per-sample arrays, the selection masks and the budget plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from privaudit.attacks.registry import ATTACKS, get_attack
from privaudit.config import AttackConfig, RunConfig
from privaudit.errors import ConfigError, PrivauditError
from privaudit.evaluation.per_sample import per_sample_tpr, privacy_score
from privaudit.runtime.plan import signal_epochs
from privaudit.runtime.run import Layout, Run
from privaudit.studies.memorization import NAME
from privaudit.studies.memorization import budget as bd
from privaudit.studies.memorization.estimators import MemorizationResult, feldman_zhang, memorization_report
from privaudit.studies.memorization.groups import budget_groups, group_metrics, table_groups
from privaudit.studies.memorization.plots import plot_budget

ARRAYS = ("mem", "mem_se", "mem_selection", "privacy_score", "per_sample_tpr", "hellinger_sq")


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


def correctness(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool [M, n]: model m classifies sample i correctly on the identity query (query 0, see
    :func:`privaudit.training.augment.query_grid`)."""
    return np.asarray(logits[:, :, 0]).argmax(axis=-1) == labels[None, :]


def _mem_summary(mem: np.ndarray, mask: np.ndarray, threshold: float) -> dict[str, Any]:
    m = mem[mask & np.isfinite(mem)]
    return {"n": int(mask.sum()), "n_valid": int(m.size),
            "mean": float(m.mean()) if m.size else None, "median": float(np.median(m)) if m.size else None,
            f"frac_above_{threshold:g}": float((m > threshold).mean()) if m.size else None}


def definitions(opts: MemorizationOptions, *, m_models: int, n_excluded: int, t_table: int, n_tpr: int,
                has_groups: bool) -> dict[str, Any]:
    """What every number of ``memorization.json`` means (written into the document)."""
    inside = " inside the under-represented group" if has_groups else ""
    return {
        "correct": "argmax of the identity query's logits == label",
        "mem": "Feldman & Zhang 2020: mean correctness over the models trained on the sample minus over the models "
               "not trained on it (all models); se = sqrt(p_in(1-p_in)/n_in + p_out(1-p_out)/n_out)",
        "mem_selection": f"the same estimator over the {m_models - n_excluded} reference models only (models "
                         f"{n_excluded}..{m_models - 1}): selects the high-memorization targets without looking "
                         "at the target models",
        "privacy_score": "d(x) = |mu_in - mu_out| / (sigma_in + sigma_out) of phi over all models "
                         "(Carlini et al. 2022 Sec. VII-B), mean over queries",
        "per_sample_tpr": f"{opts.attack} scored leave-one-model-out against {n_tpr} target models; per target one "
                          f"global strict threshold at FPR <= {opts.fpr:g}; fraction of the targets containing the "
                          "sample that flag it",
        "correlations": "Spearman's rho (scipy), two-sided p-value, 95% percentile bootstrap interval over samples; "
                        "bands of |rho| as in Choi et al. 2023 Sec. 4.1",
        "groups": {"all": "every pool sample", "under": "the pool's under-represented group (data group 1)",
                   "high_mem": f"mem_selection > {opts.threshold:g}{inside}"},
        "tables": f"targets 0..{t_table - 1}; per target the ROC over the group's own members and non-members "
                  f"(strict TPR at FPR <= {opts.fpr:g}: with fewer than 1/FPR non-members no TPR, only "
                  "needs_nonmembers, see fpr_resolution); tpr_global: the group's TPR at the target's threshold set "
                  "on all non-members; mean ± std over targets, 95% bootstrap CI of the mean",
        "budget": f"targets 0..{opts.budget_targets - 1}; R reference models drawn from the others, nested draws, "
                  f"{opts.repeats} repeats; 'random' = as many samples as high_mem, uniformly from the pool; "
                  f"R too small for {opts.attack} uses {bd.FALLBACK.get(opts.attack, 'no fallback')}",
        "saturation": f"fewest R within {bd.SATURATION:.0%} of the way from chance to the group's value at the "
                      "largest R; factor = R_max / R",
        "high_mem_vs_random": "fewest R_a at which high_mem reaches what random reaches with the largest R; "
                              "factor = R_max / R_a",
        "capped": "true when R (R_a) is the smallest size evaluated: the factor is then limited by the population "
                  "(R_max), a lower bound on what a larger population would show",
        "bound": bd.DERIVATION}


def _tables(run: Run, cfg: RunConfig, groups: dict[str, np.ndarray], t_table: int, epoch: int, keep: np.ndarray,
            opts: MemorizationOptions) -> dict[str, Any]:
    """Per attack of the run: :func:`group_metrics` for every group (or the reason it was skipped).
    Scores come from :meth:`Run.scores` (the evaluation's saved scores when they fit)."""
    tables: dict[str, Any] = {}
    for a in cfg.attacks:
        try:
            scores = run.scores(a, epoch, t_table)
        except PrivauditError as err:
            tables[a.key] = {"skipped": str(err)}
            continue
        tables[a.key] = {"groups": {
            g: group_metrics(scores, keep[:t_table], mask, fpr=opts.fpr, mode=cfg.evaluation.tpr_mode,
                             n_boot=opts.n_boot, seed=opts.seed) for g, mask in groups.items()}}
    return tables


def _correlations(mem: MemorizationResult, pscore: np.ndarray, tpr: np.ndarray, group_ids: np.ndarray | None,
                  opts: MemorizationOptions) -> dict[str, Any]:
    """Spearman of mem vs privacy score and vs per-sample TPR, over all samples and inside the group."""
    n_boot = max(opts.n_boot, 1)
    report = memorization_report(mem, pscore, tpr, n_boot=n_boot, seed=opts.seed)
    if group_ids is not None:
        u = group_ids == 1
        report["under_represented"] = memorization_report(mem.mem[u], pscore[u], tpr[u], n_boot=n_boot,
                                                          seed=opts.seed)
    return report


def run_memorization(run: Run, cfg: RunConfig, opts: MemorizationOptions = MemorizationOptions()) -> dict[str, Any]:
    """The whole study on an existing run (module docstring); writes its artifacts (the caller
    holds ``run.writer()``) and returns the JSON document."""
    epoch = opts.epoch or cfg.training.epochs
    if epoch not in signal_epochs(cfg):
        raise ConfigError(f"--epoch {epoch}: the run has logits for epochs {signal_epochs(cfg)} only")
    if not run.has(Layout.signal("logits", epoch)):
        raise ConfigError(f"{run.root} has no logits for epoch {epoch}: run `privaudit run` on it first")
    keep = run.keep()
    m_models, n = keep.shape
    opts.check(m_models)
    labels = run.labels()
    group = run.optional_pool("group")
    group_ids = None if group is None else group[:n]

    # 1. memorization (all models; the selection uses the reference models only)
    correct = correctness(run.load_npy(Layout.signal("logits", epoch), mmap=True), labels)
    mem_all = feldman_zhang(correct, keep)
    t_table = opts.table_targets or cfg.evaluation.targets
    n_excluded = max(t_table, opts.budget_targets)
    mem_sel = feldman_zhang(correct[n_excluded:], keep[n_excluded:])

    # 2. privacy score, per-sample TPR, correlations
    phi = run.signal("phi", epoch)
    pscore = privacy_score(phi, keep)
    attack = AttackConfig(name=opts.attack)
    n_tpr = opts.tpr_targets or m_models
    tpr = per_sample_tpr(run.scores(attack, epoch, n_tpr), keep[:n_tpr], opts.fpr)

    # 3. per-group tables for every attack of the run
    groups = table_groups(group_ids, mem_sel.mem, opts.threshold)
    tables = _tables(run, cfg, groups, t_table, epoch, keep, opts)

    # 4. shadow-model budget and its predicted sample complexity
    bgroups = budget_groups(groups["high_mem"], group_ids, opts.seed)
    curve, sizes = bd.budget_curve(get_attack(opts.attack), run.signal(attack.signal_name, epoch), keep, labels,
                                   bgroups, sizes=opts.budget_sizes, budget_targets=opts.budget_targets,
                                   repeats=opts.repeats, seed=opts.seed, fpr=opts.fpr, n_boot=opts.n_boot)
    h2 = bd.hellinger_from_signal(phi, keep)
    bound = bd.bounds(h2, mem_all.mem, bgroups, sizes)
    tpr_key = bd.metric_name(opts.fpr)
    reductions = {"saturation": [bd.saturation(curve, g, metric, chance) for g in bgroups
                                 for metric, chance in (("auc", 0.5), (tpr_key, opts.fpr))],
                  "high_mem_vs_random": [bd.cross_reduction(curve, metric) for metric in ("auc", tpr_key)]}

    doc = {"run": cfg.name, "epoch": epoch, "n_models": m_models, "n_samples": n,
           "attack": opts.attack, "fpr": opts.fpr, "threshold": opts.threshold,
           "definitions": definitions(opts, m_models=m_models, n_excluded=n_excluded, t_table=t_table,
                                      n_tpr=n_tpr, has_groups=group_ids is not None),
           "memorization": {"all_models": mem_all.summary(), "selection": mem_sel.summary(),
                            "by_group": {g: _mem_summary(mem_all.mem, mask, opts.threshold)
                                         for g, mask in groups.items()}},
           "correlations": _correlations(mem_all, pscore, tpr, group_ids, opts),
           "tables": tables,
           "budget": {"sizes": list(sizes), "groups": {g: int(m.sum()) for g, m in bgroups.items()},
                      "curve": curve, "reductions": reductions, "bound": bound}}
    arrays = {"mem": mem_all.mem, "mem_se": mem_all.se, "mem_selection": mem_sel.mem, "privacy_score": pscore,
              "per_sample_tpr": tpr, "hellinger_sq": h2}
    run.save_json(Layout.study(NAME, "memorization.json"), doc)
    for name, arr in arrays.items():
        run.save_npy(Layout.study(NAME, f"{name}.npy"), np.asarray(arr, dtype=np.float32))
    for name in ("high_mem", "random"):
        if name in bgroups:
            run.save_npy(Layout.study(NAME, f"{name}_mask.npy"), bgroups[name])
    plot_budget(run, curve, bound, sizes, fpr=opts.fpr,
                title=f"{cfg.name}: {opts.attack}, {len(sizes)} budgets, {opts.budget_targets} targets")
    run.mark(NAME, epoch=epoch, attack=opts.attack)
    return doc
