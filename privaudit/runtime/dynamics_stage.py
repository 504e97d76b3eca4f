"""The dynamics stage: per-sample membership vulnerability across training checkpoints
(Chen, Wang, Baracaldo, Kadhe, Yu 2025, arXiv 2507.23291; spec ``ALGORITHMS.md`` §7).

Reads a checkpointed run (``training.checkpoints``), scores every checkpoint with one attack
(leave-one-model-out through :func:`privaudit.runtime.pipeline.evaluate`, cached per epoch in
``results/epoch_EEEE/scores_<label>.npy``), derives learning difficulty from the checkpoint
logits of the IN models, runs :func:`privaudit.analysis.dynamics.analyze` and writes

```
results/dynamics/dynamics.json        every metric, the definitions used, the claims verdicts
results/dynamics/trajectories.npy     float [P, n, 2]: (FPR_i, TPR_i) per checkpoint
results/dynamics/final_vulnerability.npy, difficulty_<name>.npy   float [n]
results/dynamics/trajectories.png, com_path.png, early_prediction.png
```

Only the paper's abstract is primary; every operational definition (thresholds, regions,
difficulty measures, early-prediction protocol, the verdict rules in :func:`claims`) is a
privaudit **reconstruction**, and the output says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privaudit.analysis import dynamics as dyn
from privaudit.config import AttackConfig, RunConfig
from privaudit.errors import ConfigError
from privaudit.runtime import pipeline
from privaudit.runtime.store import RunStore

OUT = "results/dynamics"
MIN_CHECKPOINTS = 2
MIN_HV = 10                 # fewer final highly-vulnerable samples than this: no verdict from the HV region
EARLY_FRACTION = 0.5        # "early" = the last checkpoint at or before this fraction of training
EARLY_PRECISION = 0.5       # "largely determined": at least half of the final top-k already found
SECONDARY_PRECISION = 0.7   # the secondary summary's "~70 % identified early"


@dataclass
class DynamicsOutput:
    report: dyn.DynamicsReport
    doc: dict[str, Any]
    scored_epochs: list[int]          # checkpoints (re)scored by this call; [] when all were cached
    paths: dict[str, Path]


# -- inputs --------------------------------------------------------------------------------------
def checkpoint_epochs(cfg: RunConfig, store: RunStore) -> list[int]:
    """The run's signal epochs (checkpoints + final); ConfigError when fewer than 2."""
    epochs = pipeline.signal_epochs(cfg)
    if len(epochs) < MIN_CHECKPOINTS:
        raise ConfigError(f"{store.root} has {len(epochs)} checkpoint (epoch {epochs}); dynamics needs at "
                          f"least {MIN_CHECKPOINTS}: train a new run with checkpoints, e.g. privaudit run CONFIG "
                          f"--name NEW --set 'training.checkpoints=[1,2,4]'")
    return epochs


def attack_label(attack: str, n_targets: int, cfg: RunConfig) -> str:
    """Score-file label: the attack name when the run's own target count is used (reuses the scores of
    ``privaudit run``), else ``<attack>_T<n>`` so differently sized target sets never overwrite each other."""
    return attack if n_targets == cfg.evaluation.targets else f"{attack}_T{n_targets}"


def _scores_path(epoch: int, label: str) -> str:
    return f"results/epoch_{epoch:04d}/scores_{label}.npy"   # where pipeline.evaluate(save=True) writes


def score_checkpoints(cfg: RunConfig, store: RunStore, epochs: list[int], attack: str,
                      n_targets: int) -> tuple[np.ndarray, list[int], str]:
    """Scores ``float [P, T, n]`` of targets ``0..T-1`` at every epoch, scoring only the epochs
    whose score file is missing or has another shape. Returns (scores, epochs scored now, label)."""
    from privaudit.attacks.registry import get_attack

    get_attack(attack)                                                    # unknown name -> one-line error
    label = attack_label(attack, n_targets, cfg)
    ev_cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"targets": n_targets})})
    n = pipeline.n_audit(store)
    out, scored = [], []
    for epoch in epochs:
        rel = _scores_path(epoch, label)
        if store.path(rel).exists() and store.load_npy(rel, mmap=True).shape == (n_targets, n):
            out.append(np.asarray(store.load_npy(rel), dtype=np.float64))
            continue
        res = pipeline.evaluate(ev_cfg, store, attacks=[AttackConfig(name=attack, label=label)],
                                epoch=epoch, save=True)
        out.append(np.asarray(res[label].scores, dtype=np.float64))
        scored.append(epoch)
    return np.stack(out), scored, label


def difficulty_signals(logits: list[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-checkpoint training signals from logits ``[M, n, A, C]`` (one array per checkpoint):
    cross-entropy loss and correctness of the first (un-augmented) query. Returns
    ``loss float [E, M, n]`` and ``correct bool [E, M, n]``."""
    from privaudit.signals.transforms import derive

    loss = np.stack([derive("loss", np.asarray(lg[:, :, :1]), labels)[..., 0] for lg in logits])
    correct = np.stack([np.asarray(lg[:, :, 0]).argmax(axis=-1) == labels[None] for lg in logits])
    return loss.astype(np.float32), correct


def forgetting_resolution(epochs: list[int]) -> str:
    """How faithful the forgetting count is to Toneva et al. 2019 for these checkpoint epochs."""
    if list(epochs) == list(range(1, epochs[-1] + 1)):
        return ("checkpoints at every epoch: forgetting events are exactly Toneva et al. (2019)'s count at "
                "epoch resolution (correctness of the clean input evaluated after each epoch)")
    return (f"checkpoints at epochs {list(epochs)} only: forgetting events are a SUBSAMPLED APPROXIMATION of "
            "Toneva et al. (2019) (events between checkpoints are missed, counts are lower bounds); "
            "first-learned epochs are resolved only to the checkpoint grid")


# -- analysis on arrays --------------------------------------------------------------------------
def split_half(scores: np.ndarray, keep_targets: np.ndarray, epochs, *, fpr: float, top_frac: float,
               n_boot: int, seed: int) -> dict[str, Any]:
    """Cross-model early prediction [privaudit addition, not in the paper]: vulnerability at each
    checkpoint measured on one random half A of the targets versus the final vulnerability measured on
    the other half B. Its value at the last checkpoint is the split-half reliability of the final
    vulnerability, i.e. the ceiling any early predictor can reach given measurement noise; unlike the
    same-model curve it cannot be inflated by model-specific noise that persists across checkpoints."""
    t = scores.shape[1]
    if t < 4:
        return {"available": False, "reason": f"needs >= 4 targets, got {t}"}
    perm = np.random.default_rng(seed).permutation(t)
    a, b = np.sort(perm[: t // 2]), np.sort(perm[t // 2:])
    tra = dyn.trajectories(scores[:, a], keep_targets[a], fpr=fpr)
    trb = dyn.trajectories(scores[-1:, b], keep_targets[b], fpr=fpr)
    curve = dyn.early_prediction_curve(np.concatenate([tra, trb]), top_frac=top_frac, n_boot=n_boot, seed=seed)
    drop_last = {k: v[:-1] if isinstance(v, list) and len(v) == len(epochs) + 1 else v for k, v in curve.items()}
    drop_last["checkpoint"] = list(map(int, epochs))
    rho = drop_last["spearman"][-1]
    drop_last["reliability_spearman_brown"] = (2 * rho / (1 + rho)) if rho is not None and rho > -1 else None
    drop_last.update(available=True, half_a=a.tolist(), half_b=b.tolist())
    return drop_last


def hv_identification(region_seq: np.ndarray, epochs) -> dict[str, Any]:
    """Region-based early identification [reconstructed reading of the secondary summary's "~70 % of the
    final highly vulnerable samples identified within the first ~150 epochs"]: at each checkpoint,
    ``recall`` = |HV_t & HV_final| / |HV_final| (final highly-vulnerable samples already in the region) and
    ``precision`` = |HV_t & HV_final| / |HV_t|, with 95% Clopper-Pearson intervals; ``chance`` = |HV_t| / n
    (the recall expected if membership of HV_t were unrelated to the final region). Unlike the top-k
    curve it has no ties problem when many samples saturate at (FPR, TPR) = (0, 1)."""
    from privaudit.evaluation.audit import clopper_pearson

    r = np.asarray(region_seq)
    ok = (r >= 0).all(axis=0)
    hv = r[:, ok] == dyn.HIGHLY_VULNERABLE                             # [P, n]
    final, n_final = hv[-1], int(hv[-1].sum())
    out: dict[str, Any] = {"checkpoint": list(map(int, epochs)), "n_final": n_final, "n": int(ok.sum())}
    if n_final == 0:
        return out | {"available": False}
    both = (hv & final).sum(axis=1)
    n_t = hv.sum(axis=1)
    rec_lo, rec_hi = clopper_pearson(both, n_final, 0.05, "two")
    prec_lo, prec_hi = clopper_pearson(both, np.maximum(n_t, 1), 0.05, "two")
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(n_t > 0, both / np.maximum(n_t, 1), np.nan)
    return out | {"available": True, "recall": (both / n_final).tolist(), "recall_lo": np.asarray(rec_lo).tolist(),
                  "recall_hi": np.asarray(rec_hi).tolist(), "precision": prec.tolist(),
                  "precision_lo": np.where(n_t > 0, prec_lo, np.nan).tolist(),
                  "precision_hi": np.where(n_t > 0, prec_hi, np.nan).tolist(),
                  "n_hv": n_t.tolist(), "chance": (n_t / max(int(ok.sum()), 1)).tolist()}


def _early_index(epochs) -> int:
    ep = np.asarray(epochs, dtype=float)
    early = np.flatnonzero(ep <= EARLY_FRACTION * ep[-1])
    return int(early[-1]) if early.size else 0


def claims(report: dyn.DynamicsReport, cross: dict[str, Any] | None = None,
           hv: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Verdicts on the seed's two claims, with the (reconstructed) rule used for each."""
    out = []
    for name, c in report.correlations.items():
        lo, hi, rho = c["ci_low"], c["ci_high"], c["rho"]
        if not np.isfinite(rho) or not np.isfinite(lo):
            verdict = "undetermined"
        elif lo > 0:
            verdict = "reproduced"
        elif hi < 0:
            verdict = "opposite sign"
        else:
            verdict = "not reproduced (CI contains 0)"
        out.append({"claim": "learning difficulty correlates with final vulnerability [abstract]",
                    "measure": f"Spearman(difficulty={name}, final TPR_i - FPR_i)", "value": rho,
                    "ci": [lo, hi], "n": c["n"], "verdict": verdict,
                    "rule": "[reconstructed] reproduced when the 95% bootstrap CI of rho lies above 0 "
                            "(harder = more vulnerable)"})
    ep = report.early_prediction
    i = _early_index(report.epochs)
    prec, lo = ep["precision"][i], ep["precision_lo"][i]
    if prec is None or not np.isfinite(prec) or lo is None or not np.isfinite(lo):
        verdict = "undetermined (no interval: bootstrap off or no samples)"
    elif lo > ep["chance"] and prec >= EARLY_PRECISION:
        verdict = "reproduced"
    elif lo > ep["chance"]:
        verdict = "partly (above chance, below 50 %)"
    else:
        verdict = "not reproduced"
    reach = [e for e, p in zip(report.epochs, ep["precision"]) if p is not None and p >= SECONDARY_PRECISION]
    entry = {"claim": "final most-vulnerable samples are identifiable early [abstract]",
             "measure": f"precision of top-{ep['k']} at epoch {int(report.epochs[i])} of {int(report.epochs[-1])} "
                        f"vs final top-{ep['k']} (chance {ep['chance']:.3f})",
             "value": prec, "ci": [lo, ep["precision_hi"][i]], "n": ep["n"], "verdict": verdict,
             "first_epoch_precision_ge_0.7": int(reach[0]) if reach else None,
             "rule": f"[reconstructed] 'early' = last checkpoint <= {EARLY_FRACTION:.0%} of training; reproduced "
                     f"when precision >= {EARLY_PRECISION} and its 95% CI lower bound > chance (same target models)"}
    if cross and cross.get("available"):
        entry["cross_model_precision"] = cross["precision"][i]
        entry["cross_model_ceiling"] = cross["precision"][-1]
    out.append(entry)
    if hv is not None:
        out.append(_hv_claim(hv, report.epochs, i))
    return out


def _hv_claim(hv: dict[str, Any], epochs, i: int) -> dict[str, Any]:
    claim = "final most-vulnerable samples are identifiable early [abstract]"
    rule = (f"[reconstructed] share of the final highly-vulnerable region already in it at the last checkpoint "
            f"<= {EARLY_FRACTION:.0%} of training; reproduced when >= {EARLY_PRECISION} with its 95% "
            "Clopper-Pearson lower bound above chance (= share of all samples in the region then)")
    if not hv.get("available") or hv["n_final"] < MIN_HV:
        return {"claim": claim, "measure": f"recall of the final highly-vulnerable set ({hv['n_final']} samples at "
                                           f"the end; a verdict needs >= {MIN_HV})",
                "value": hv["recall"][i] if hv.get("available") else None,
                "ci": [hv["recall_lo"][i], hv["recall_hi"][i]] if hv.get("available") else [None, None],
                "n": hv["n_final"], "verdict": "undetermined (too few highly-vulnerable samples)", "rule": rule}
    rec, lo, chance = hv["recall"][i], hv["recall_lo"][i], hv["chance"][i]
    verdict = ("reproduced" if lo > chance and rec >= EARLY_PRECISION else
               "partly (above chance, below 50 %)" if lo > chance else "not reproduced")
    reach = [e for e, r in zip(epochs, hv["recall"]) if r >= SECONDARY_PRECISION]
    return {"claim": claim, "measure": f"share of the {hv['n_final']} final highly-vulnerable samples already in "
                                       f"that region at epoch {int(epochs[i])} (chance {chance:.3f})",
            "value": rec, "ci": [lo, hv["recall_hi"][i]], "n": hv["n_final"], "verdict": verdict,
            "first_epoch_recall_ge_0.7": int(reach[0]) if reach else None, "rule": rule}


def analyze_population(scores: np.ndarray, keep_targets: np.ndarray, epochs, *, train_loss=None,
                       train_correct=None, train_keep=None, fpr: float = 0.01, top_frac: float = 0.1,
                       n_boot: int = 200, seed: int = 0) -> tuple[dyn.DynamicsReport, dict[str, Any]]:
    """Pure part of the stage: :func:`privaudit.analysis.dynamics.analyze` plus the cross-model
    (split-half) curve, the highly-vulnerable-region identification and the claims verdicts.
    Returns the report and its JSON document."""
    ep = [int(e) for e in epochs]
    report = dyn.analyze(scores, keep_targets, ep, train_loss=train_loss, train_correct=train_correct,
                         train_keep=train_keep, fpr=fpr, top_frac=top_frac, n_boot=n_boot, seed=seed)
    if train_correct is not None:   # first-learned in epochs, not checkpoint indices
        tk = keep_targets if train_keep is None else train_keep
        report.difficulty["first_learned"] = dyn.first_learned_epoch(train_correct, tk, epochs=ep)
        report.correlations["first_learned"] = dyn.difficulty_vulnerability_correlation(
            report.difficulty["first_learned"], report.final_vulnerability, n_boot=n_boot, seed=seed)
    cross = split_half(scores, keep_targets, ep, fpr=fpr, top_frac=top_frac, n_boot=n_boot, seed=seed)
    hv = hv_identification(report.regions, ep)
    doc = report.to_dict()
    doc["early_prediction_cross_model"] = dyn._jsonable(cross)
    doc["early_identification_hv"] = dyn._jsonable(hv)
    doc["claims"] = dyn._jsonable(claims(report, cross, hv))
    doc["definitions"] = DEFINITIONS
    return report, doc


DEFINITIONS = {
    "provenance": "Chen et al. 2025 (arXiv 2507.23291): only the abstract is primary; every definition below "
                  "is a privaudit RECONSTRUCTION (spec ALGORITHMS.md section 7)",
    "trajectory": "per checkpoint and target model a global threshold at the fixed FPR on that target's OUT "
                  "scores; TPR_i = fraction of targets with i IN and flagged, FPR_i = same over OUT targets",
    "vulnerability": "TPR_i - FPR_i (per-sample membership advantage)",
    "regions": "highly_vulnerable: TPR >= 0.5 and FPR <= 0.1; leaky: TPR - FPR >= 0.1; safe: the rest",
    "com_displacement": "straight-line distance between the first and last population centroid on the "
                        "[0,1]^2 plane (x100 = percentage points); path_length sums the steps",
    "encoding_speed": "mean over samples and steps of ||delta (FPR_i, TPR_i)|| per epoch",
    "entropy": "Shannon entropy (nats) of the 10x10 histogram of the population on the plane; change = last - first",
    "peak_entry_probability": "max over steps of P(enter highly_vulnerable | not in it at the previous checkpoint)",
    "early_identification_hv": "share of the final highly_vulnerable samples already in that region at each "
                               "checkpoint (recall) and its precision, 95% Clopper-Pearson intervals",
    "early_prediction": "top-k (k = top_frac * n) of TPR_i - FPR_i at each checkpoint vs the final top-k: precision "
                        "(= recall), expected overlap under random tie-breaking; Spearman vs final; 95% bootstrap CIs",
    "difficulty": "from the checkpoint logits of the models that trained on the sample (un-augmented query): mean "
                  "training loss over checkpoints, first-learned epoch (correct from then on; inf = never), "
                  "forgetting events (correct -> wrong between consecutive checkpoints)",
}


# -- plots ---------------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_trajectories(traj: np.ndarray, final_v: np.ndarray, epochs, path: Path, *, n_show: int = 60,
                      title: str = "", seed: int = 0) -> Path:
    """Trajectories of ``n_show`` samples coloured by final vulnerability: half evenly spaced in its rank,
    half from the final top 10 %. Points are jittered by up to a quarter of the coordinate resolution
    (1 / #targets per axis), because per-sample rates are discrete and would otherwise overlap."""
    plt = _plt()
    ok = np.flatnonzero(np.isfinite(traj).all(axis=(0, 2)))
    order = ok[np.argsort(final_v[ok], kind="stable")]
    spread = order[np.linspace(0, len(order) - 1, min(n_show // 2, len(order))).astype(int)]
    top = order[-max(1, len(order) // 10):]
    rng = np.random.default_rng(seed)
    pick = np.unique(np.concatenate([spread, rng.choice(top, min(n_show - len(spread), len(top)), replace=False)]))
    vals = np.unique(traj[:, ok])
    step = np.diff(vals).min() if vals.size > 1 else 0.02
    jit = rng.uniform(-step / 4, step / 4, size=(len(pick), 2))
    fig, ax = plt.subplots(figsize=(5.6, 5))
    vmin, vmax = float(np.nanmin(final_v[ok])), float(np.nanmax(final_v[ok]))
    cmap, norm = plt.get_cmap("viridis"), plt.Normalize(vmin, max(vmax, vmin + 1e-9))
    for j, i in enumerate(sorted(pick, key=lambda i: final_v[i])):
        c = cmap(norm(final_v[i]))
        x, y = traj[:, i, 0] + jit[j, 0], traj[:, i, 1] + jit[j, 1]
        ax.plot(x, y, "-", color=c, lw=0.8, alpha=0.6)
        ax.plot(x[-1], y[-1], "o", color=c, ms=3.5)
    ax.plot([0, 1], [0, 1], "k--", lw=0.6)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=norm)
    fig.colorbar(sm, ax=ax, label="final vulnerability TPR_i - FPR_i")
    x_hi = min(1.03, max(0.25, 1.15 * float(np.nanmax(traj[:, pick, 0])) + step))   # FPR_i stays small at low FPR
    ax.set(xlim=(-0.03 * x_hi, x_hi), ylim=(-0.03, 1.03), xlabel="FPR_i (fraction of OUT targets flagged)",
           ylabel="TPR_i (fraction of IN targets flagged)")
    ax.set_title(title or "sample trajectories", fontsize=10)
    ax.text(0.98, 0.02, f"{len(pick)} samples (dot = final, epochs {int(epochs[0])}..{int(epochs[-1])}; jittered)",
            transform=ax.transAxes, ha="right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_com(com: np.ndarray, epochs, path: Path, title: str = "") -> Path:
    """Path of the population centre of mass on the plane (percentage points), labelled by epoch."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.plot(100 * com[:, 0], 100 * com[:, 1], "o-")
    for (x, y), e in zip(100 * com, epochs):
        ax.annotate(str(int(e)), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="mean FPR_i (%)", ylabel="mean TPR_i (%)", title=title or "centre of mass (labels: epoch)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_early_prediction(doc: dict[str, Any], path: Path, title: str = "") -> Path:
    """Early-prediction curve with 95% bootstrap intervals (reuses report.plots.line_plot)."""
    from privaudit.report.plots import line_plot

    def series(curve: dict[str, Any], key: str):
        y = np.array([np.nan if v is None else v for v in curve[key]], dtype=float)
        lo = np.array([np.nan if v is None else v for v in curve[key + "_lo"]], dtype=float)
        hi = np.array([np.nan if v is None else v for v in curve[key + "_hi"]], dtype=float)
        return y, np.clip(np.nan_to_num(np.stack([y - lo, hi - y]), nan=0.0), 0.0, None)

    ep = doc["early_prediction"]
    lines = {f"precision@top{ep['top_frac']:.0%} (same models)": series(ep, "precision"),
             "Spearman vs final": series(ep, "spearman")}
    cross = doc.get("early_prediction_cross_model") or {}
    if cross.get("available"):
        lines["precision, half A vs final half B"] = series(cross, "precision")
    hv = doc.get("early_identification_hv") or {}
    if hv.get("available"):
        lines[f"recall of the {hv['n_final']} final highly-vulnerable"] = series(hv, "recall")
    lines[f"chance ({ep['chance']:.2f})"] = (np.full(len(ep["checkpoint"]), ep["chance"]), None)
    return line_plot(ep["checkpoint"], lines, path, xlabel="epoch", ylabel="value",
                     title=title or "early prediction of the final top-vulnerable set")


# -- the stage -----------------------------------------------------------------------------------
def run_dynamics(run_dir: str | Path, *, attack: str = "lira_online", fpr: float = 0.01, top_frac: float = 0.1,
                 targets: int | None = None, n_boot: int = 200, seed: int = 0) -> DynamicsOutput:
    """Score every checkpoint (cached), compute difficulty and dynamics, write ``results/dynamics/``.

    ``targets``: number of target models (default: every model of the population, so each sample is
    IN for exactly ``pkeep * M`` targets under the balanced design; leave-one-model-out either way)."""
    store = RunStore(run_dir)
    cfg = pipeline.read_config(store)
    epochs = checkpoint_epochs(cfg, store)
    for name, value in (("fpr", fpr), ("top_frac", top_frac)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must lie in (0, 1], got {value}")
    m = cfg.population.n_models
    n_targets = m if targets is None else int(targets)
    if not 2 <= n_targets <= m:
        raise ConfigError(f"targets must lie in 2..{m} (the population size), got {n_targets}")
    if any(not store.signal_file("logits", e).exists() for e in epochs):
        pipeline.compute_signals(cfg, store)                              # resumes; needs the checkpoint models
    scores, scored, label = score_checkpoints(cfg, store, epochs, attack, n_targets)
    keep = store.load_npy("keep.npy")
    labels = np.asarray(store.load_npy("data/y.npy"))[:pipeline.n_audit(store)]
    loss, correct = difficulty_signals([pipeline.load_logits(store, e) for e in epochs], labels)
    report, doc = analyze_population(scores, keep[:n_targets], epochs, train_loss=loss, train_correct=correct,
                                     train_keep=keep, fpr=fpr, top_frac=top_frac, n_boot=n_boot, seed=seed)
    doc = {"run": cfg.name, "attack": attack, "scores_label": label, "n_targets": n_targets, "n_models": m,
           "dataset": cfg.data.name, "arch": cfg.model.arch, "optimizer": cfg.training.optimizer,
           "training_epochs": cfg.training.epochs, "forgetting_resolution": forgetting_resolution(epochs),
           "difficulty_models": "all models, each sample over the models that trained on it (IN)"} | doc
    paths = {"json": store.save_json(f"{OUT}/dynamics.json", doc),
             "trajectories": store.save_npy(f"{OUT}/trajectories.npy", report.trajectories.astype(np.float32)),
             "final_vulnerability": store.save_npy(f"{OUT}/final_vulnerability.npy", report.final_vulnerability)}
    for name, d in report.difficulty.items():
        paths[f"difficulty_{name}"] = store.save_npy(f"{OUT}/difficulty_{name}.npy", d)
    paths["plot_trajectories"] = plot_trajectories(report.trajectories, report.final_vulnerability, epochs,
                                                   store.path(OUT, "trajectories.png"),
                                                   title=f"{cfg.name}: {attack}, FPR {fpr:g}")
    paths["plot_com"] = plot_com(report.center_of_mass, epochs, store.path(OUT, "com_path.png"),
                                 title=f"{cfg.name}: centre of mass (labels: epoch)")
    paths["plot_early"] = plot_early_prediction(doc, store.path(OUT, "early_prediction.png"),
                                                title=f"{cfg.name}: early prediction ({attack})")
    store.mark("dynamics", attack=attack, label=label, epochs=epochs, scored=scored)
    return DynamicsOutput(report, doc, scored, paths)
