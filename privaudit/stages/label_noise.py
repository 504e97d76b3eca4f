"""Stage ``label_noise``: each model's label-only distance to its decision boundary under Gaussian
noise, ``signals/epoch_E/label_noise_distance.npy float32 [M, n, 1]`` (Choquette-Choo, Tramer,
Carlini, Papernot, "Label-Only Membership Inference Attacks", ICML 2021; estimator and its
randomness: :mod:`privaudit.signals.label_noise`).

Computed only when an attack to be scored reads the signal (``label_noise``), group by group like
the curvature (finished groups are kept; the settings are recorded with every part, so changed
settings recompute). The noise depends only on (seed, sample id, draw): a model's distances do not
depend on the grouping.
"""

from __future__ import annotations

from privaudit.config import AttackConfig, RunConfig
from privaudit.runtime import plan
from privaudit.runtime.groupwork import per_group_signal
from privaudit.runtime.run import Layout, Run
from privaudit.signals import label_noise as ln

SIGNAL = "label_noise_distance"


def label_noise_settings(cfg: RunConfig) -> dict:
    """The signal's settings for this run (the library defaults, seeded by the run's seed)."""
    return ln.settings(cfg.seed)


def label_noise_group_task(run_dir: str, model_ids: list[int], epoch: int, settings: dict, on_progress) -> str:
    """One group's ``[K, n, 1]`` part under ``settings``."""
    run = Run(run_dir)
    cfg = run.config()
    x, y = run.pool()
    values = ln.distances_of(plan.load_group(run, cfg, model_ids, epoch), x, y, settings)
    on_progress(values.shape[0])
    return str(run.save_npy(Layout.signal(SIGNAL, epoch, model_ids), values, meta={"settings": settings}))


def needed(cfg: RunConfig, attacks: list[AttackConfig] | None = None) -> bool:
    """Some attack of ``attacks`` (default: the config's) reads the signal."""
    return any(a.signal_name == SIGNAL for a in (cfg.attacks if attacks is None else attacks))


def label_noise(run: Run, cfg: RunConfig, console=None, *, attacks: list[AttackConfig] | None = None,
                epoch: int | None = None) -> None:
    """``signals/epoch_E/label_noise_distance.npy [M, n, 1]`` when ``attacks`` need it."""
    if not needed(cfg, attacks):
        return
    epoch = epoch or cfg.training.epochs
    s = label_noise_settings(cfg)
    what = f"label-only noise distance ({s['draws']} draws x {s['steps'] + 1} noise levels)"
    per_group_signal(run, cfg, SIGNAL, epoch, label_noise_group_task, what, console, s)
    run.mark("label_noise", epoch=epoch, **s)
