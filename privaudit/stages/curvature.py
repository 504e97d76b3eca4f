"""Stage ``curvature``: input-loss curvature of every model on every audited sample,
``signals/epoch_E/curvature.npy [M, n, A]`` (Ravikumar, Soufleri, Roy, "Curvature Clues: Decoding
Deep Learning Privacy with Input Loss Curvature", NeurIPS 2024).

Queries: identity, plus the mirror image when ``curvature.mirror`` (the paper's two augmentations).
Each query uses its own seed for the random directions, shared by all models (grouping-invariant).
The settings that produced the array are recorded with it: a rerun with the same settings skips
finished work, changed settings recompute.
"""

from __future__ import annotations

import numpy as np
import torch

from privaudit.config import CurvatureConfig, RunConfig
from privaudit.runtime import plan
from privaudit.runtime.plan import curvature_queries, curvature_settings, zo_batch_size
from privaudit.runtime.groupwork import per_group_signal
from privaudit.runtime.notices import plural
from privaudit.runtime.run import Layout, Run
from privaudit.signals import curvature as est
from privaudit.signals.curvature import stable_cross_entropy
from privaudit.training.augment import apply_query


def curvature_of_group(cfg: RunConfig, group, x: torch.Tensor, y: torch.Tensor,
                       loss_fn=stable_cross_entropy) -> np.ndarray:
    """``float32[K, n, A]`` for one group under the configured estimator (per-sample loss
    ``loss_fn``, default :func:`stable_cross_entropy`)."""
    c = cfg.curvature
    dtype = torch.float64 if c.dtype == "float64" else torch.float32
    group = group.to(dtype).eval().requires_grad_(False)   # input derivatives only
    device = next(group.parameters()).device
    x, y, ids = x.to(device), y.to(device), torch.arange(len(y), device=device)
    out = []
    for a, q in enumerate(curvature_queries(cfg, x.dim() == 4)):
        xq = apply_query(x, q).to(dtype)
        seed = cfg.seed * 1000 + a
        if c.estimator == "zero_order":
            v = est.zero_order_curvature(group.forward, xq, y, n_models=group.n_models, h=c.h, rounds=c.rounds,
                                         seed=seed, sample_ids=ids, dtype=dtype,
                                         batch_size=zo_batch_size(cfg.model.arch, device), loss_fn=loss_fn)
        else:
            fn = est.hutchinson_trace if c.estimator == "hutchinson" else est.hutchinson_trace_sq
            v = fn(group.forward_each, xq, y, n_models=group.n_models, probes=c.rounds, seed=seed,
                   sample_ids=ids, dtype=dtype, loss_fn=loss_fn)
        out.append(v.detach().float().cpu().numpy())
    return np.stack(out, axis=-1)


def curvature_group_task(run_dir: str, model_ids: list[int], epoch: int, settings: dict, on_progress) -> str:
    """One group's ``[K, n, A]`` part under ``settings`` (which override the run's stored config)."""
    run = Run(run_dir)
    cfg = run.config()
    fields = {k: v for k, v in settings.items() if k in CurvatureConfig.model_fields}
    cfg = cfg.model_copy(update={"curvature": CurvatureConfig(**fields)})
    x, y = run.pool()
    values = curvature_of_group(cfg, plan.load_group(run, cfg, model_ids, epoch), torch.from_numpy(x),
                                torch.from_numpy(y))
    on_progress(values.shape[0])
    return str(run.save_npy(Layout.signal("curvature", epoch, model_ids), values, meta={"settings": settings}))


def curvature(run: Run, cfg: RunConfig, console=None, epoch: int | None = None) -> None:
    """``signals/epoch_E/curvature.npy [M, n, A]`` for the configured estimator."""
    if cfg.curvature is None:
        return
    epoch = epoch or cfg.training.epochs
    settings = curvature_settings(cfg)
    what = f"input curvature ({cfg.curvature.estimator}, {plural(cfg.curvature.rounds, 'round')})"
    per_group_signal(run, cfg, "curvature", epoch, curvature_group_task, what, console, settings)
    run.mark("curvature", epoch=epoch, **settings)
