"""Pipeline stage: input-loss curvature of every model on every sample, ``curvature.npy [M, n, A]``.

Queries: identity, plus the mirror image when ``curvature.mirror`` (the paper's two augmentations).
Each query uses its own seed for the random directions, shared by all models (grouping-invariant).
"""

from __future__ import annotations

import numpy as np
import torch

from privaudit.config import RunConfig
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.pipeline import groups, load_group, load_pool, progress_bar, read_config
from privaudit.runtime.store import RunStore
from privaudit.signals import curvature as est
from privaudit.training.augment import apply_query


def curvature_queries(cfg: RunConfig, is_image: bool) -> list[tuple[bool, int, int]]:
    return [(False, 0, 0), (True, 0, 0)] if cfg.curvature.mirror and is_image else [(False, 0, 0)]


def curvature_of_group(cfg: RunConfig, group, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``float32[K, n, A]`` for one group under the configured estimator."""
    c = cfg.curvature
    dtype = torch.float64 if c.dtype == "float64" else torch.float32
    group = group.to(dtype)
    ids = torch.arange(len(y))
    out = []
    for a, q in enumerate(curvature_queries(cfg, x.dim() == 4)):
        xq = apply_query(x, q).to(dtype)
        seed = cfg.seed * 1000 + a
        if c.estimator == "zero_order":
            v = est.zero_order_curvature(group.forward, xq, y, n_models=group.n_models, h=c.h, rounds=c.rounds,
                                         seed=seed, sample_ids=ids, dtype=dtype)
        else:
            fn = est.hutchinson_trace if c.estimator == "hutchinson" else est.hutchinson_trace_sq
            v = fn(group.forward_each, xq, y, n_models=group.n_models, probes=c.rounds, seed=seed,
                   sample_ids=ids, dtype=dtype)
        out.append(v.detach().float().numpy())
    return np.stack(out, axis=-1)


def curvature_group_task(run_dir: str, group: int, epoch: int, on_progress) -> str:
    store = RunStore(run_dir)
    cfg = read_config(store)
    x, y, _ = load_pool(store, audited_only=True)
    values = curvature_of_group(cfg, load_group(cfg, store, group, epoch), x, y)
    on_progress(values.shape[0])
    return str(store.save_npy(store.signal_file("curvature", epoch, group), values))


def compute_curvature(cfg: RunConfig, store: RunStore, epoch: int | None = None) -> None:
    epoch = epoch or cfg.training.epochs
    final = store.signal_file("curvature", epoch)
    if final.exists():
        return
    all_groups = groups(cfg)
    todo = [g for g in range(len(all_groups)) if not store.signal_file("curvature", epoch, g).exists()]
    if todo:
        with progress_bar(f"curvature ({cfg.curvature.estimator}, {cfg.curvature.rounds} rounds)",
                          sum(len(all_groups[g]) for g in todo)) as advance:
            tasks = [{"run_dir": str(store.root), "group": g, "epoch": epoch} for g in todo]
            run_tasks(curvature_group_task, tasks, workers=cfg.training.workers, advance=advance)
    parts = [store.load_npy(store.signal_file("curvature", epoch, g)) for g in range(len(all_groups))]
    store.save_npy(final, np.concatenate(parts))
    for g in range(len(all_groups)):
        store.signal_file("curvature", epoch, g).unlink()
    store.mark("curvature", epoch=epoch, estimator=cfg.curvature.estimator)
