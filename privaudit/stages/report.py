"""Stage ``report``: plots and the self-contained ``report/index.html``, built from what the run
holds (``metrics.json``, saved scores, the target's results, curvature, every study's section),
so the report never disagrees with the files next to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from privaudit.config import RunConfig, dump_config
from privaudit.evaluation.results import MetricsDocument
from privaudit.runtime.run import Layout, Run


def report(run: Run, cfg: RunConfig, console=None, *, epoch: int | None = None) -> Path:
    """Write the report of ``epoch`` (default: final) and return its path."""
    from privaudit.report import format as fmt
    from privaudit.report import html as rh
    from privaudit.report.plots import histograms, roc_loglog
    from privaudit.studies import studies

    epoch = epoch or cfg.training.epochs
    doc = MetricsDocument.from_json(run.load_json(Layout.epoch_metrics(epoch)))
    keep = run.keep()
    labels = run.labels()
    scores = {k: run.load_npy(Layout.scores(k, epoch))[: len(a.targets)] for k, a in doc.attacks.items()}
    keep_t = keep[: len(doc.targets)]
    roc_png = roc_loglog({k: (s, keep_t[: len(s)]) for k, s in scores.items()},
                         run.path(Layout.results(epoch, "roc.png")),
                         title=f"{cfg.name}: ROC, mean over {len(doc.targets)} targets")
    hist_png = histograms({k: (s[0], keep[0]) for k, s in scores.items()},
                          run.path(Layout.results(epoch, "score_histograms.png")), title="target model 0")
    target = None
    if cfg.target is not None and epoch == cfg.training.epochs and run.has(Layout.target_metrics):
        target = MetricsDocument.from_json(run.load_json(Layout.target_metrics))
    rows = fmt.utility_rows(doc, target)
    sections = [("Attacks", rh.metrics_html(doc))]
    if rows:
        sections.append(("Utility", fmt.utility_table(rows, epoch).html()))
    sections += [("ROC (log-log)", rh._img(roc_png)), ("Score distributions", rh._img(hist_png))]
    if target is not None:
        sections.insert(0, _target_section(run, cfg, target))
    sections.append(_vulnerable_section(run, epoch, labels, keep))
    if run.has(Layout.epoch_slices(epoch)):
        sections.append(("Per-slice AUC", rh.slices_html(run.load_json(Layout.epoch_slices(epoch)))))
    if run.has(Layout.signal("curvature", epoch)):
        curv = run.load_npy(Layout.signal("curvature", epoch)).mean(axis=-1)
        png = histograms({"all models": (curv.ravel(), keep.ravel()), "target model 0": (curv[0], keep[0])},
                         run.path(Layout.results(epoch, "curvature_histogram.png")), xlabel="curvature", log_x=True,
                         title="input loss curvature: members (train) vs non-members (test)")
        medians = f"median curvature: members {np.median(curv[keep]):.3g}, non-members {np.median(curv[~keep]):.3g}"
        if target is not None and run.has(Layout.signal("target_curvature", epoch)):
            mine = run.load_npy(Layout.signal("target_curvature", epoch))[0].mean(axis=-1)
            members = run.load_npy(Layout.target_members)
            medians += (f"; your target model (zero-order): members {np.median(mine[members]):.3g}, "
                        f"non-members {np.median(mine[~members]):.3g}")
        sections.append(("Input loss curvature", rh._img(png) + f"<p class=note>{medians}</p>"))
    if epoch == cfg.training.epochs and run.has(Layout.audit):
        sections.append(_dp_audit_section(run))
    if epoch == cfg.training.epochs:
        sections += [s for study in studies() if (s := study.report_section(run)) is not None]
    sections.append(("Configuration", f"<pre>{rh.html.escape(dump_config(cfg))}</pre>"))
    rel = Layout.report if epoch == cfg.training.epochs else Layout.epoch_report(epoch)
    run.save_text(rel, rh.render_report(title=f"privaudit report: {cfg.name}", sections=sections))
    run.mark("report", epoch=epoch)
    return run.path(rel)


def _target_section(run: Run, cfg: RunConfig, doc: MetricsDocument) -> tuple[str, str]:
    """The target's attack table and ROC, its accuracy, and its notes (reference architecture,
    curvature estimator)."""
    from privaudit.report import format as fmt
    from privaudit.report import html as rh
    from privaudit.report.plots import roc_loglog

    members = run.load_npy(Layout.target_members)
    curves = {k: (run.load_npy(Layout.target_scores(k))[None], members[None]) for k in doc.attacks}
    png = roc_loglog(curves, run.path(Layout.target_file("roc.png")), title="your target model: ROC")
    accuracy = "" if doc.utility is None else \
        f"<p>{fmt.target_accuracy_text(doc.utility, int(members.sum()), int((~members).sum()))}</p>"
    notes = "".join(f"<p class=note>note: {rh.html.escape(n)}</p>" for n in doc.notes)
    return ("Your target model", f"<p class=note>the given model, attacked with all {cfg.population.n_models} "
            "population models as references</p>" + accuracy + notes + rh.metrics_html(doc) + rh._img(png))


def _vulnerable_section(run: Run, epoch: int, labels: np.ndarray, keep: np.ndarray) -> tuple[str, str]:
    from privaudit.evaluation.per_sample import privacy_score
    from privaudit.report import html as rh

    risk = privacy_score(run.signal("phi", epoch), keep)
    run.save_npy(Layout.results(epoch, "privacy_score.npy"), risk)
    top = np.argsort(-np.nan_to_num(risk, nan=-np.inf))[:20]
    info = run.pool_info()
    x, _ = run.pool()
    grid = rh.sample_grid(x, top, [f"#{i} y={labels[i]} d={risk[i]:.1f}" for i in top], info.get("mean"),
                          info.get("std"))
    rows = "".join(f"<tr><td>{i}</td><td>{labels[i]}</td><td>{risk[i]:.2f}</td></tr>" for i in top)
    return ("Most vulnerable samples", "<p class=note>per-sample privacy score d(x) = |mu_in - mu_out| / "
            "(sigma_in + sigma_out) of phi over all models (Carlini et al. 2022, Sec. VII-B); full array in "
            f"{Layout.results(epoch, 'privacy_score.npy')}</p>" + grid +
            f"<table><tr><th>sample</th><th>label</th><th>d(x)</th></tr>{rows}</table>")


def _dp_audit_section(run: Run) -> tuple[str, str]:
    """The DP audit's verdict and every bound with its assumptions, validity and power."""
    from privaudit.report import html as rh

    doc = run.load_json(Layout.audit)
    esc = rh.html.escape
    num = lambda v: "-" if v is None else f"{v:.3f}"
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{num(b['eps_lb'])}</td><td>{b['confidence']:.0%}</td>"
                   f"<td>{'yes' if b.get('valid_for_verdict') else 'no (not used)'}</td><td>{num(b.get('power_eps'))}</td>"
                   f"<td>{esc(str(b.get('assumptions', '')))}</td></tr>" for k, b in doc["bounds"].items())
    return ("DP audit", f"<p><b>{esc(doc['verdict'])}</b></p><p class=note>{esc(str(doc.get('verdict_basis', '')))}</p>"
            "<table><tr><th>bound</th><th>eps lower bound</th><th>confidence</th><th>valid for the verdict</th>"
            f"<th>power (perfect attack)</th><th>assumptions</th></tr>{rows}</table>")
