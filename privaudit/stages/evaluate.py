"""Stage ``evaluate``: every configured attack, leave-one-model-out over the target models
(Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022, Sec. V):
scores (``results/epoch_E/scores_<attack>.npy``, float64 as computed), metrics with intervals
(``metrics.json``, with the population's train / test accuracy) and per-slice metrics
(``slices.json``)."""

from __future__ import annotations

from privaudit.config import AttackConfig, RunConfig
from privaudit.evaluation.protocol import AttackResult, result_from_scores
from privaudit.evaluation.results import TPR_CONVENTION, MetricsDocument, Utility
from privaudit.evaluation.utility import utility as model_utility
from privaudit.runtime import plan
from privaudit.runtime.run import Layout, Run


def evaluate(run: Run, cfg: RunConfig, console=None, *, attacks: list[AttackConfig] | None = None,
             epoch: int | None = None) -> dict[str, AttackResult]:
    """Score and evaluate ``attacks`` (default: the config's); earlier attacks stay in ``metrics.json``."""
    epoch = epoch or cfg.training.epochs
    ev = cfg.evaluation
    attacks = list(cfg.attacks if attacks is None else attacks)
    keep_t = run.keep()[: ev.targets]
    targets = list(range(ev.targets))
    results = {}
    with plan.progress(console, f"attacks on {ev.targets} target models", len(attacks), "attacks") as advance:
        for a in attacks:
            scores = run.scores(a, epoch, ev.targets, save=True)
            results[a.key] = result_from_scores(a.key, a.signal_name, scores, keep_t, targets, fprs=tuple(ev.fprs),
                                                mode=ev.tpr_mode, n_boot=ev.bootstrap, seed=ev.seed,
                                                params=dict(a.params))
            advance(1)
    utility = model_utility(run.signal("logits", epoch), run.keep(), run.labels())
    doc = metrics_document(cfg, results, epoch, utility)
    rel = Layout.epoch_metrics(epoch)
    if run.has(rel):   # keep attacks scored earlier (each entry names its own targets)
        doc.attacks = MetricsDocument.from_json(run.load_json(rel)).attacks | doc.attacks
    run.save_json(rel, doc.to_json())
    if epoch == cfg.training.epochs:
        run.save_json(Layout.metrics, doc.to_json())
    run.save_json(Layout.epoch_slices(epoch), slices_document(run, cfg, results, epoch))
    run.mark("evaluate", epoch=epoch, attacks=list(results))
    return results


def metrics_document(cfg: RunConfig, results: dict[str, AttackResult], epoch: int,
                     utility: Utility | None = None) -> MetricsDocument:
    """The run's ``metrics.json`` at ``epoch``, with the population's utility at that epoch."""
    ev = cfg.evaluation
    return MetricsDocument(
        run=cfg.name, epoch=epoch, n_models=cfg.population.n_models, targets=list(range(ev.targets)),
        protocol="leave-one-model-out: each target's attack is fitted on the other models only",
        tpr_convention=TPR_CONVENTION[ev.tpr_mode],
        intervals=f"95% interval of the mean over targets: spread between targets plus {ev.bootstrap} joint bootstrap resamples of the shared samples, bias-corrected, t quantile (privaudit.evaluation.intervals)",
        attacks={k: r.metrics() for k, r in results.items()}, utility=utility)


def slices_document(run: Run, cfg: RunConfig, results: dict[str, AttackResult], epoch: int) -> dict:
    """Metrics per class, per canary kind and per mixture group; attacks scored earlier are kept."""
    from privaudit.evaluation.slices import run_slices

    ev = cfg.evaluation
    doc = run_slices(results, run.keep()[: ev.targets], run.labels(), kind=run.optional_pool("kind"),
                     group=run.optional_pool("group"), fprs=tuple(ev.fprs), mode=ev.tpr_mode, n_boot=ev.bootstrap,
                     seed=ev.seed)
    rel = Layout.epoch_slices(epoch)
    if run.has(rel):
        old = run.load_json(rel)
        for family, rows in doc["slicings"].items():
            for label, row in rows.items():
                earlier = old.get("slicings", {}).get(family, {}).get(label, {}).get("attacks", {})
                row["attacks"] = earlier | row["attacks"]
    return doc
