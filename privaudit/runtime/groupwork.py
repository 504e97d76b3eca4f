"""Work done group by group over a population: one task per group of models, each writing its
own part of a signal, assembled into one array; finished parts are kept, so an interrupted run or
a grown population computes only what is missing."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from privaudit.config import RunConfig
from privaudit.runtime import plan
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.run import Layout, Run


def per_group_signal(run: Run, cfg: RunConfig, name: str, epoch: int, task: Callable[..., Any],
                     description: str, console=None, settings: dict | None = None) -> None:
    """Compute signal ``name`` group by group (``task(run_dir, model_ids, epoch, settings)``
    writes one group's part with ``meta={"settings": settings}``) and assemble ``name.npy [M, ...]``.
    ``settings`` is what else determines the signal: parts computed with others are recomputed."""
    final = Layout.signal(name, epoch)
    m = cfg.population.n_models
    fresh = lambda rel: run.has(rel) and (run.meta(rel) or {}).get("settings") == settings
    if fresh(final) and run.load_npy(final, mmap=True).shape[0] == m:
        return
    todo = [ids for ids in plan.groups(cfg) if not fresh(Layout.signal(name, epoch, ids))]
    if todo:
        with plan.progress(console, description, sum(len(ids) for ids in todo), "models") as advance:
            tasks = [{"run_dir": str(run.root), "model_ids": ids, "epoch": epoch, "settings": settings}
                     for ids in todo]
            run_tasks(task, tasks, **plan.schedule(cfg), advance=advance)
    parts = [run.load_npy(Layout.signal(name, epoch, ids)) for ids in plan.groups(cfg)]
    run.save_npy(final, np.concatenate(parts), meta={"settings": settings})
