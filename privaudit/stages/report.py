"""Stage ``report``: the self-contained ``report/index.html`` (and, on request, its PDF), built from
everything the run holds -- ``metrics.json`` and the saved scores, the target's results, slices,
curvature, every study's section, the DP audit -- so the report never disagrees with the files
next to it. It opens with a verdict on the audited model (the user's target when there is one,
else the training recipe; :mod:`privaudit.report.verdict`), then one section per result, each with
a stable id (``verdict``, ``utility``, ``attacks``, ``target``, ``slices``, ``vulnerable``,
``curvature``, ``memorization``, ``dynamics``, ``dp-audit``, ``many-run``, ``configuration``,
``environment``). Every command that adds results rebuilds it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from privaudit.config import RunConfig
from privaudit.evaluation.results import MetricsDocument
from privaudit.report import format as fmt
from privaudit.report import html as rh
from privaudit.report.html import SampleTable, Section
from privaudit.report.verdict import audited_samples, strongest, verdict
from privaudit.runtime.run import Layout, Run

N_EXPOSED = 20
SLICE_ATTACKS = 6          # columns of the per-slice tables: the strongest attacks
STUDIES_BEFORE_AUDIT = ("memorization", "dynamics")


@dataclass
class Inputs:
    """What one report is built from (read once, through the run)."""

    run: Run
    cfg: RunConfig
    epoch: int
    final: bool
    doc: MetricsDocument                 # the population's metrics at this epoch
    target: MetricsDocument | None       # the user's target model's (final epoch only)
    audit: dict[str, Any] | None         # the DP audit of this epoch
    claim: dict[str, Any] | None         # the DP claim
    keep: np.ndarray
    labels: np.ndarray

    def scores(self, attack: str) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [T, n], keep [T, n])`` of an attack's own targets at this epoch."""
        t = len(self.doc.attacks[attack].targets)
        return np.asarray(self.run.load_npy(Layout.scores(attack, self.epoch))[:t]), self.keep[:t]

    def subject(self) -> str:
        if self.target is not None:
            return f"your target model ({Path(self.cfg.target.model).name})"
        return (f"the training recipe ({self.cfg.population.n_models} {_arch(self.cfg)} models on "
                f"{self.cfg.data.name}, epoch {self.epoch})")


def report(run: Run, cfg: RunConfig, console=None, *, epoch: int | None = None, pdf: bool = False) -> Path:
    """Write the report of ``epoch`` (default: final), and its PDF with ``pdf``; return the HTML's path."""
    x = _inputs(run, cfg, epoch or cfg.training.epochs)
    page = rh.Page(title=f"privaudit report: {cfg.name}", subtitle=_subtitle(x), date=_now(),
                   sections=_sections(x))
    rel = Layout.report if x.final else Layout.epoch_report(x.epoch)
    run.save_text(rel, rh.render_page(page))
    if pdf:
        from privaudit.report.pdf import print_pdf

        run.save_bytes(Layout.report_pdf(None if x.final else x.epoch), print_pdf(rh.render_page(page, expand=True)))
    run.mark("report", epoch=x.epoch, pdf=pdf)
    return run.path(rel)


def _inputs(run: Run, cfg: RunConfig, epoch: int) -> Inputs:
    final = epoch == cfg.training.epochs
    doc = MetricsDocument.from_json(run.load_json(Layout.epoch_metrics(epoch)))
    target = None
    if final and cfg.target is not None and run.has(Layout.target_metrics):
        target = MetricsDocument.from_json(run.load_json(Layout.target_metrics))
    rel = Layout.audit if final else Layout.epoch_audit(epoch)
    audit = run.load_json(rel) if run.has(rel) else None
    claim = audit["claimed"] if audit is not None else (
        run.load_json(Layout.dp_claim) if final and run.has(Layout.dp_claim) else None)
    return Inputs(run, cfg, epoch, final, doc, target, audit, claim, run.keep(), run.labels())


def _sections(x: Inputs) -> list[Section]:
    """Every section the run has results for, in the report's order."""
    studies = _study_sections(x)
    early = sorted((s for s in studies if s.id in STUDIES_BEFORE_AUDIT), key=lambda s: STUDIES_BEFORE_AUDIT.index(s.id))
    late = [s for s in studies if s.id not in STUDIES_BEFORE_AUDIT]
    built = [_verdict(x), _utility(x), _attacks(x), _target(x), _slices(x), _vulnerable(x), _curvature(x), *early,
             _dp_audit(x), *late, _configuration(x), _environment(x)]
    return [s for s in built if s is not None]


def _arch(cfg: RunConfig) -> str:
    return cfg.model.factory or cfg.model.arch


def _subtitle(x: Inputs) -> str:
    cfg = x.cfg
    dp = "" if cfg.training.dp is None else " · DP-SGD"
    return (f"{cfg.data.name}, {x.keep.shape[1]:,} samples · {cfg.population.n_models} {_arch(cfg)} models, "
            f"{cfg.training.epochs} epochs{dp} · epoch {x.epoch}" + (" (checkpoint)" if not x.final else ""))


def _now() -> str:
    from datetime import datetime

    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


# -- verdict and utility ---------------------------------------------------------------------------

def _verdict(x: Inputs) -> Section | None:
    doc = x.target if x.target is not None else x.doc
    v = verdict(x.subject(), doc, audit=x.audit, claim=x.claim, recipe=x.doc if x.target is not None else None)
    return Section("verdict", "Verdict", "How exposed the audited model's training data is, in one sentence, "
                   "graded into a risk level; every number comes from the tables below.", rh.verdict(v))


def _utility(x: Inputs) -> Section | None:
    rows = fmt.utility_rows(x.doc, x.target)
    if not rows:
        return None
    return Section("utility", "Utility", "What the audited models are worth: their accuracy on the samples they "
                   "trained on (members) and on samples they never saw (non-members). A large gap means the "
                   "models fit their training data much better than new data, which is what membership "
                   "inference exploits.", rh.table(fmt.utility_table(rows, x.epoch)))


# -- attacks on the population and on the target ---------------------------------------------------

ATTACKS_INTRO = ("Each attack gives every sample a score: higher means 'more likely a training member'. AUC is the "
                 "probability that a random member scores above a random non-member (0.5 = guessing, 1 = perfect). "
                 "TPR @ FPR x% is the share of members the attack finds when it may wrongly flag x% of non-members; "
                 "guessing gives TPR = FPR, so the TPR at a low FPR is the number that matters for privacy.")


def _saved(x: Inputs, rel: str, png: bytes) -> bytes:
    """``png``, stored as the run's artifact ``rel`` (the report embeds it too)."""
    x.run.save_bytes(rel, png)
    return png


def _by_strength(doc: MetricsDocument) -> list[str]:
    """The attacks, strongest first: mean TPR at the lowest resolvable FPR, then AUC."""
    op = strongest(doc)
    value = lambda e: -1.0 if e is None or e.unresolved else e.mean
    return sorted(doc.attacks, key=lambda k: (-value(doc.attacks[k].summary.get(op.key) if op else None),
                                              -value(doc.attacks[k].summary.get("auc"))))


def _attacks(x: Inputs) -> Section | None:
    from privaudit.report.plots import roc_loglog, score_quantiles

    names = _by_strength(x.doc)
    curves = {k: x.scores(k) for k in names}
    shown = ",".join(names)
    roc = _saved(x, Layout.results(x.epoch, "roc.png"), roc_loglog(
        curves, title=f"{x.cfg.name}: ROC, mean over each attack's target models"))
    hist = _saved(x, Layout.results(x.epoch, "score_histograms.png"), score_quantiles(
        curves, title="where members and non-members fall among a target model's scores"))
    body = rh.join(rh.metrics_html(x.doc, "population"), *[rh.note(f"note: {n}") for n in x.doc.notes],
                   rh.image(roc, "ROC curves, log-log", "Log-log ROC (as in LiRA): the left part is the low-FPR "
                            "regime. Attacks strongest first; grey band: FPRs the non-members cannot resolve.",
                            data_figure="roc", data_attacks=shown),
                   rh.image(hist, "score distributions", "Each score replaced by its quantile among its target "
                            "model's scores: guessing puts members and non-members at density 1; a leaking attack "
                            "piles members up at the right.", data_figure="score-quantiles", data_attacks=shown))
    return Section("attacks", f"Attacks on the population (epoch {x.epoch})", ATTACKS_INTRO, body)


def _target(x: Inputs) -> Section | None:
    from privaudit.report.plots import roc_loglog

    if x.target is None:
        return None
    members = x.run.load_npy(Layout.target_members)
    curves = {k: (x.run.load_npy(Layout.target_scores(k))[None], members[None]) for k in _by_strength(x.target)}
    roc = _saved(x, Layout.target_file("roc.png"), roc_loglog(curves, title="your target model: ROC"))
    accuracy = None if x.target.utility is None else rh.paragraph(
        fmt.target_accuracy_text(x.target.utility, int(members.sum()), int((~members).sum())))
    notes = [rh.note(f"note: {n}") for n in x.target.notes]
    body = rh.join(accuracy, *notes, rh.metrics_html(x.target, "target"),
                   rh.image(roc, "ROC curves of the target model", data_figure="target-roc",
                            data_attacks=",".join(curves)))
    return Section("target", "Your target model", f"The same attacks against the model you trained, with all "
                   f"{x.cfg.population.n_models} population models as reference models; the truth is your "
                   f"members file.", body)


def _slices(x: Inputs) -> Section | None:
    if not x.run.has(Layout.epoch_slices(x.epoch)):
        return None
    shown = _by_strength(x.doc)[:SLICE_ATTACKS]
    rest = len(x.doc.attacks) - len(shown)
    body = rh.join(rh.slices_html(x.run.load_json(Layout.epoch_slices(x.epoch)), attacks=shown),
                   rh.note(f"the {len(shown)} strongest attacks; all {len(x.doc.attacks)} in "
                           f"{Layout.epoch_slices(x.epoch)}") if rest else None)
    return Section("slices", "Per-slice AUC", "The attacks' AUC within groups of samples (per class, per canary "
                   "kind, per mixture group): leakage is often concentrated in a few groups.", body)


# -- the most exposed samples ----------------------------------------------------------------------

def _vulnerable(x: Inputs) -> Section | None:
    table = _exposed_target(x) if x.target is not None else _exposed_population(x)
    return Section("vulnerable", "Most exposed samples", f"The {N_EXPOSED} samples of {x.subject()} that are "
                   "easiest to identify as members, with what the model predicts for them; atypical, "
                   "mislabeled or duplicated samples typically lead this list.", rh.samples(table))


def _input_cell(x: Inputs, pool: np.ndarray, info: dict[str, Any], i: int) -> dict[str, Any]:
    from privaudit.report.samples import feature_text, thumbnail

    if pool.ndim == 4 and pool.shape[1] in (1, 3):
        return {"image": thumbnail(pool[i], info.get("mean"), info.get("std")), "features": ("", "")}
    return {"image": "", "features": feature_text(pool[i])}


def _kinds(x: Inputs) -> Callable[[int], str] | None:
    from privaudit.data.canaries import KINDS

    kind = x.run.optional_pool("kind")
    if kind is None or not kind.any():
        return None
    names = {code: name for name, code in KINDS.items()}
    return lambda i: names.get(int(kind[i]), str(kind[i]))


def _exposed_target(x: Inputs) -> SampleTable:
    """The target's samples with the highest score of the strongest attack on it."""
    from privaudit.evaluation.utility import predictions

    op = strongest(x.target)
    attack = op.attack if op is not None else next(iter(x.target.attacks))
    scores = x.run.load_npy(Layout.target_scores(attack))
    members = x.run.load_npy(Layout.target_members)
    pred = predictions(x.run.load_npy(Layout.signal("target_logits", x.epoch), mmap=True)[0])
    top = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:N_EXPOSED]
    kinds = _kinds(x)
    pool, info = x.run.pool()[0], x.run.pool_info()
    t = SampleTable(["rank", "sample", "label", "predicted", "membership", f"score\n({attack})"]
                    + (["kind"] if kinds else []),
                    caption=f"ranked by the score of {attack}, the strongest attack on your model; membership "
                            f"from your members file; every score in {Layout.target_scores(attack)}")
    for r, i in enumerate(top, 1):
        cells = [str(r), str(i), str(x.labels[i]), str(pred[i]), "member" if members[i] else "non-member",
                 f"{scores[i]:.6g}"] + ([kinds(i)] if kinds else [])
        t.rows.append(_input_cell(x, pool, info, i) | {"cells": cells, "attrs": {"data-sample": str(i)}})
    return t


def _exposed_population(x: Inputs) -> SampleTable:
    """The samples with the highest privacy score d(x) over all models (Carlini et al. 2022, Sec. VII-B)."""
    from privaudit.evaluation.per_sample import privacy_score
    from privaudit.evaluation.utility import predictions
    from privaudit.report.samples import majority

    risk = privacy_score(x.run.signal("phi", x.epoch), x.keep)
    rel = Layout.results(x.epoch, "privacy_score.npy")
    x.run.save_npy(rel, risk)
    top = np.argsort(-np.nan_to_num(risk, nan=-np.inf), kind="stable")[:N_EXPOSED]
    pred = predictions(x.run.load_npy(Layout.signal("logits", x.epoch), mmap=True)[:, top])
    kinds = _kinds(x)
    pool, info = x.run.pool()[0], x.run.pool_info()
    m, counts = x.keep.shape[0], x.keep[:, top].sum(axis=0)
    varying = counts.min() != counts.max()
    t = SampleTable(["rank", "sample", "label", "predicted\nwhen a member", "predicted\nwhen not"]
                    + ([f"member of\n(of {m} models)"] if varying else []) + ["privacy\nscore d(x)"]
                    + (["kind"] if kinds else []),
                    caption="predicted: the majority prediction (and its share) of the models that trained on "
                            "the sample, and of those that did not" + ("" if varying else
                            f"; each sample trained {counts[0]} of the {m} models") +
                            "; d(x) = |mu_in - mu_out| / (sigma_in + sigma_out) of the LiRA statistic phi over "
                            f"all models (Carlini et al. 2022, Sec. VII-B); every score in {rel}")
    for j, i in enumerate(top):
        inside = x.keep[:, i]
        cells = ([str(j + 1), str(i), str(x.labels[i]), majority(pred[:, j], inside), majority(pred[:, j], ~inside)]
                 + ([str(counts[j])] if varying else []) + [f"{risk[i]:.3f}"] + ([kinds(i)] if kinds else []))
        t.rows.append(_input_cell(x, pool, info, i) | {"cells": cells, "attrs": {"data-sample": str(i)}})
    return t


# -- curvature, studies, DP audit ------------------------------------------------------------------

def _curvature(x: Inputs) -> Section | None:
    from privaudit.report.plots import histograms

    if not x.run.has(Layout.signal("curvature", x.epoch)):
        return None
    curv = x.run.load_npy(Layout.signal("curvature", x.epoch)).mean(axis=-1)
    panels = {f"all {curv.shape[0]} models": (curv.ravel(), x.keep.ravel())}
    medians = f"median curvature: members {np.median(curv[x.keep]):.3g}, non-members {np.median(curv[~x.keep]):.3g}"
    if x.target is not None and x.run.has(Layout.signal("target_curvature", x.epoch)):
        mine = x.run.load_npy(Layout.signal("target_curvature", x.epoch))[0].mean(axis=-1)
        members = x.run.load_npy(Layout.target_members)
        panels["your target model (zero-order)"] = (mine, members)
        medians += (f"; your target model: members {np.median(mine[members]):.3g}, non-members "
                    f"{np.median(mine[~members]):.3g}")
    png = _saved(x, Layout.results(x.epoch, "curvature_histogram.png"), histograms(
        panels, xlabel="curvature", log_x=True, title="input loss curvature: members vs non-members"))
    return Section("curvature", "Input loss curvature", "How sharply the loss changes when a sample's input is "
                   "perturbed. Models sit in flatter regions (lower curvature) around their training samples, "
                   "so curvature separates members from non-members (Ravikumar et al., NeurIPS 2024).",
                   rh.join(rh.image(png, "curvature histograms", medians, data_figure="curvature")))


def _study_sections(x: Inputs) -> list[Section]:
    """Every study's section (final epoch only), id = the study's name."""
    from markupsafe import Markup

    from privaudit.studies import studies

    if not x.final:
        return []
    sections = []
    for study in studies():
        if (found := study.report_section(x.run)) is not None:
            heading, body = found
            sections.append(Section(study.name.replace("_", "-"), heading, "", Markup(body)))
    return sections


def _dp_audit(x: Inputs) -> Section | None:
    if x.audit is None:
        return None
    doc, num = x.audit, fmt.number
    smp = doc["samples"]
    t = fmt.TextTable(f"ε lower bounds from {doc['attack']} on {audited_samples(smp)} x {smp['n_targets']} target "
                      f"models ({smp['n_in']} IN / {smp['n_out']} OUT trials)",
                      ["bound", "ε lower bound", "confidence", "valid for the verdict", "power (perfect attack)",
                       "assumptions"], caption=str(doc.get("note", "")))
    for key, b in doc["bounds"].items():
        t.add_row(b.get("name", key), num(b["eps_lb"]), f"{b['confidence']:.0%}",
                  "yes" if b.get("valid_for_verdict") else "no (not used)", num(b.get("power_eps")),
                  str(b.get("assumptions", "")))
    claim = "the models make no DP claim" if doc.get("claimed_epsilon") is None else \
        f"claimed ε = {doc['claimed_epsilon']:.3f} (δ = {doc['delta']:g})"
    body = rh.join(rh.paragraph(f"{doc['verdict']}"), rh.note(f"{claim}; basis: {doc.get('verdict_basis', '-')}"),
                   rh.table(t))
    return Section("dp-audit", "DP audit", "A DP audit turns attack success on audited samples into a lower bound "
                   "on ε that holds with 95% confidence: a bound above the claimed ε proves the claim false; a "
                   "bound below it is consistent with the claim but cannot prove it.", body)


# -- what produced the numbers ---------------------------------------------------------------------

def _configuration(x: Inputs) -> Section | None:
    stored = x.run.config()
    configured = {a.key for a in stored.attacks}
    t = fmt.TextTable(f"attacks in this report ({len(x.doc.attacks)}, from {Layout.epoch_metrics(x.epoch)})",
                      ["attack", "signal", "parameters", "target models", "source"],
                      table_attrs={"class": "attack-list", "data-epoch": str(x.epoch)})
    for key, a in x.doc.attacks.items():
        origin = Layout.config if key in configured else "added by privaudit attack"
        t.add_row(key, a.signal, json.dumps(a.params, sort_keys=True) if a.params else "-", str(len(a.targets)),
                  origin, attrs=[{"data-attack": key}, {}, {}, {}, {}])
    text = x.run.read_text(Layout.config)
    body = rh.join(rh.key_values(_settings(stored)), rh.table(t),
                   rh.note("config.yaml lists the attacks `privaudit run` scored; `privaudit attack` adds or "
                           "re-scores attacks (and may use other target models) without changing it."),
                   rh.details(f"{Layout.config} ({len(text.splitlines())} lines)", rh.preformatted(text)))
    return Section("configuration", "Configuration", "What produced these numbers: the run's settings, the "
                   "attacks in this report and the stored config (expand to read it).", body)


def _settings(cfg: RunConfig) -> list[tuple[str, str]]:
    t, ev = cfg.training, cfg.evaluation
    dp = "none" if t.dp is None else ", ".join(f"{k}={v}" for k, v in t.dp.model_dump().items() if v is not None)
    return [("data", f"{cfg.data.name}" + (f", {cfg.data.n} samples" if cfg.data.n else "")),
            ("population", f"{cfg.population.n_models} models, pkeep {cfg.population.pkeep:g}, "
                           f"{cfg.population.design} design"),
            ("model", _arch(cfg)),
            ("training", f"{t.epochs} epochs, batch {t.batch_size}, {t.optimizer} lr {t.lr:g}, {t.schedule} schedule"),
            ("DP-SGD", dp),
            ("evaluation", f"{ev.targets} target models, FPRs {', '.join(f'{f:g}' for f in ev.fprs)}, "
                           f"TPR {ev.tpr_mode}, {ev.bootstrap} bootstrap resamples")]


def _environment(x: Inputs) -> Section | None:
    import platform
    import socket
    from importlib.metadata import PackageNotFoundError, version

    def v(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    stages = x.run.manifest()["stages"]
    train = stages.get("train", {})
    rows = [("report generated", f"{_now()} on {socket.gethostname()}"),
            ("versions", f"privaudit {v('privaudit')}, torch {v('torch')}, numpy {v('numpy')}, "
                         f"Python {platform.python_version()}"),
            ("platform", platform.platform()),
            ("training", _training_text(train)),
            ("stages finished", "; ".join(f"{k} {s.get('finished', '?')}" for k, s in stages.items())),
            ("run directory", str(x.run.root))]
    return Section("environment", "Environment", "Where and when the run was made and this report was built.",
                   rh.key_values(rows, data_section="environment"))


def _training_text(train: dict[str, Any]) -> str:
    if "seconds" not in train:
        return f"finished {train.get('finished', '?')} (device and run time not recorded by this run)"
    return (f"{train['seconds']:.1f} s on {train['device']} ({train['backend']} backend) on host {train['host']}, "
            f"finished {train['finished']}")
