"""The dynamics study on a run: how each of your samples becomes vulnerable across the training
checkpoints (``training.checkpoints``), after Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the
Dynamics of Membership Privacy in Deep Learning", arXiv:2507.23291, 2025.

Every checkpoint is scored with one attack, leave-one-model-out, through :meth:`Run.scores` (the
evaluation's saved scores where they fit, computed otherwise; nothing is cached here); learning
difficulty comes from the checkpoint logits of the models that trained on each sample; then
:func:`~privaudit.studies.dynamics.analysis.analyze_population` runs on the arrays. Writes only
under ``Layout.study("dynamics")``: ``dynamics.json`` (every metric, the definitions used and the
findings), ``trajectories.npy`` (float [P, n, 2]: (FPR_i, TPR_i) per checkpoint),
``final_vulnerability.npy`` and ``difficulty_<name>.npy`` (float [n]) and the plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from privaudit.attacks.registry import get_attack
from privaudit.config import CURVATURE_SIGNAL, AttackConfig, RunConfig
from privaudit.errors import ConfigError
from privaudit.runtime.plan import signal_epochs
from privaudit.runtime.run import Layout, Run
from privaudit.studies.dynamics import NAME
from privaudit.studies.dynamics.analysis import DynamicsReport, analyze_population
from privaudit.studies.dynamics.difficulty import difficulty_signals, forgetting_resolution
from privaudit.studies.dynamics.plots import plot_com, plot_early_prediction, plot_trajectories

MIN_CHECKPOINTS = 2


@dataclass
class DynamicsOutput:
    report: DynamicsReport
    doc: dict[str, Any]


def checkpoint_epochs(cfg: RunConfig, run: Run) -> list[int]:
    """The run's signal epochs (checkpoints + final); ConfigError when fewer than 2."""
    epochs = signal_epochs(cfg)
    if len(epochs) < MIN_CHECKPOINTS:
        raise ConfigError(f"{run.root} has {len(epochs)} checkpoint (epoch {epochs}); dynamics needs at "
                          f"least {MIN_CHECKPOINTS}: train a new run with checkpoints, e.g. privaudit run CONFIG "
                          f"--name NEW --set 'training.checkpoints=[1,2,4]'")
    return epochs


def score_checkpoints(run: Run, epochs: list[int], attack: AttackConfig, n_targets: int) -> np.ndarray:
    """Scores ``float [P, T, n]`` of targets ``0..T-1`` at every epoch (:meth:`Run.scores`)."""
    return np.stack([run.scores(attack, epoch, n_targets) for epoch in epochs])


def _check_inputs(run: Run, cfg: RunConfig, epochs: list[int], attack: AttackConfig, console) -> None:
    """The checkpoint logits (computed now when missing: the query stage resumes) and, for a
    curvature attack, curvature at every checkpoint."""
    if any(not run.has(Layout.signal("logits", e)) for e in epochs):
        from privaudit.stages.query import query

        query(run, cfg, console)
    if attack.signal_name == CURVATURE_SIGNAL and any(not run.has(Layout.signal(CURVATURE_SIGNAL, e)) for e in epochs):
        raise ConfigError(f"--attack {attack.name} needs input curvature at every checkpoint {epochs}, which this run "
                          f"computes only at the final epoch; choose an attack on logits (e.g. lira_online)")


def run_dynamics(run: Run, cfg: RunConfig, *, attack: str = "lira_online", fpr: float = 0.01, top_frac: float = 0.1,
                 targets: int | None = None, n_boot: int = 200, seed: int = 0, console=None) -> DynamicsOutput:
    """Score every checkpoint, compute difficulty and dynamics, write the study's artifacts (the
    caller holds ``run.writer()``).

    ``targets``: number of target models (default: every model of the population, so each sample is
    IN for exactly ``pkeep * M`` targets under the balanced design; leave-one-model-out either way)."""
    epochs = checkpoint_epochs(cfg, run)
    for name, value in (("fpr", fpr), ("top_frac", top_frac)):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must lie in (0, 1], got {value}")
    get_attack(attack)                                                    # unknown name -> one-line error
    m = cfg.population.n_models
    n_targets = m if targets is None else int(targets)
    if not 2 <= n_targets <= m:
        raise ConfigError(f"targets must lie in 2..{m} (the population size), got {n_targets}")
    attack_cfg = AttackConfig(name=attack)
    _check_inputs(run, cfg, epochs, attack_cfg, console)
    scores = score_checkpoints(run, epochs, attack_cfg, n_targets)
    keep = run.keep()
    logits = [run.load_npy(Layout.signal("logits", e), mmap=True) for e in epochs]
    loss, correct = difficulty_signals(logits, run.labels())
    report, doc = analyze_population(scores, keep[:n_targets], epochs, train_loss=loss, train_correct=correct,
                                     train_keep=keep, fpr=fpr, top_frac=top_frac, n_boot=n_boot, seed=seed)
    doc = {"run": cfg.name, "attack": attack, "n_targets": n_targets, "n_models": m,
           "dataset": cfg.data.name, "arch": cfg.model.arch, "optimizer": cfg.training.optimizer,
           "training_epochs": cfg.training.epochs, "forgetting_resolution": forgetting_resolution(epochs),
           "difficulty_models": "all models, each sample over the models that trained on it (IN)"} | doc
    run.save_json(Layout.study(NAME, "dynamics.json"), doc)
    run.save_npy(Layout.study(NAME, "trajectories.npy"), report.trajectories.astype(np.float32))
    run.save_npy(Layout.study(NAME, "final_vulnerability.npy"), report.final_vulnerability)
    for name, d in report.difficulty.items():
        run.save_npy(Layout.study(NAME, f"difficulty_{name}.npy"), d)
    plot_trajectories(run, report.trajectories, report.final_vulnerability, epochs,
                      title=f"{cfg.name}: {attack}, FPR {fpr:g}")
    plot_com(run, report.center_of_mass, epochs, title=f"{cfg.name}: centre of mass (labels: epoch)")
    plot_early_prediction(run, doc, title=f"{cfg.name}: early prediction ({attack})")
    run.mark(NAME, attack=attack, epochs=epochs, n_targets=n_targets)
    return DynamicsOutput(report, doc)
