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
from privaudit.runtime.notices import collected_warnings, plural
from privaudit.runtime.run import Layout, Run


def evaluate(run: Run, cfg: RunConfig, console=None, *, attacks: list[AttackConfig] | None = None,
             epoch: int | None = None) -> dict[str, AttackResult]:
    """Score and evaluate ``attacks`` (default: the config's); earlier attacks stay in ``metrics.json``.
    Python warnings raised while an attack is scored become notes naming the attack (``notes``)."""
    epoch = epoch or cfg.training.epochs
    ev = cfg.evaluation
    attacks = list(cfg.attacks if attacks is None else attacks)
    rel = Layout.epoch_metrics(epoch)
    old = MetricsDocument.from_json(run.load_json(rel)) if run.has(rel) else None
    results, notes = {}, []
    with plan.progress(console, f"attacks on {plural(ev.targets, 'target model')}", len(attacks),
                       "attacks") as advance:
        for a in attacks:
            results[a.key], found = _score(run, cfg, a, epoch, old.notes if old else [])
            notes += found
            advance(1)
    utility = model_utility(run.signal("logits", epoch), run.keep(), run.labels())
    doc = metrics_document(cfg, results, epoch, utility, notes)
    if old is not None:   # keep attacks scored earlier (each entry names its own targets), and their notes
        doc.attacks = old.attacks | doc.attacks
        doc.notes = [n for n in old.notes if _attack_of(n) not in results] + doc.notes
    run.save_json(rel, doc.to_json())
    if epoch == cfg.training.epochs:
        run.save_json(Layout.metrics, doc.to_json())
    run.save_json(Layout.epoch_slices(epoch), slices_document(run, cfg, results, epoch))
    run.mark("evaluate", epoch=epoch, attacks=list(results))
    return results


def _score(run: Run, cfg: RunConfig, a: AttackConfig, epoch: int,
           old_notes: list[str]) -> tuple[AttackResult, list[str]]:
    """Attack ``a``'s result and its notes: one line per warning raised while scoring it; scores
    reused from disk raise no signal warnings, so their earlier notes are kept."""
    ev = cfg.evaluation
    saved = lambda: run.manifest()["artifacts"].get(Layout.scores(a.key, epoch))
    before = saved()
    with collected_warnings() as caught:
        scores = run.scores(a, epoch, ev.targets, save=True)
        result = result_from_scores(a.key, a.signal_name, scores, run.keep()[: ev.targets], list(range(ev.targets)),
                                    fprs=tuple(ev.fprs), mode=ev.tpr_mode, n_boot=ev.bootstrap, seed=ev.seed,
                                    params=dict(a.params))
    kept = [n for n in old_notes if _attack_of(n) == a.key] if saved() == before else []
    return result, list(dict.fromkeys(kept + [f"{a.key}: {line}" for line in caught]))


def _attack_of(note: str) -> str:
    """The attack a note is about (notes read ``"<attack>: <what happened and what to do>"``)."""
    return note.split(": ", 1)[0]


def metrics_document(cfg: RunConfig, results: dict[str, AttackResult], epoch: int,
                     utility: Utility | None = None, notes: list[str] | None = None) -> MetricsDocument:
    """The run's ``metrics.json`` at ``epoch``, with the population's utility at that epoch."""
    ev = cfg.evaluation
    return MetricsDocument(
        run=cfg.name, epoch=epoch, n_models=cfg.population.n_models, targets=list(range(ev.targets)),
        protocol="leave-one-model-out: each target's attack is fitted on the other models only",
        tpr_convention=TPR_CONVENTION[ev.tpr_mode],
        intervals=f"95% interval of the mean over targets: spread between targets plus {ev.bootstrap} joint bootstrap resamples of the shared samples, bias-corrected, t quantile (privaudit.evaluation.intervals)",
        attacks={k: r.metrics() for k, r in results.items()}, utility=utility, notes=list(notes or []))


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
