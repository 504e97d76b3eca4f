"""What a run config implies, computed in one place: the architecture, the recipe, the groups of
models, the checkpoint epochs, the queries, how tasks are scheduled, and a trained group loaded
back from its file."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from privaudit.config import ModelConfig, RunConfig
from privaudit.device import resolve_device
from privaudit.models.architectures import ArchSpec
from privaudit.runtime.run import Layout, Run
from privaudit.training.augment import query_grid
from privaudit.training.recipe import Recipe


def arch_spec(cfg: RunConfig, model: "ModelConfig | None" = None) -> ArchSpec:
    """The architecture of the reference models (or of ``model``, e.g. ``cfg.target_model()``)."""
    m = model or cfg.model
    sized = {k: getattr(m, k) for k in ("width", "depth", "widen", "norm") if getattr(m, k) is not None}
    return ArchSpec(kind=m.arch, hidden=tuple(m.hidden or ()), activation=m.activation, factory=m.factory,
                    kwargs=dict(m.kwargs), **sized)


def recipe(cfg: RunConfig) -> Recipe:
    t = cfg.training
    return Recipe(epochs=t.epochs, batch_size=t.batch_size, optimizer=t.optimizer, lr=t.lr,
                  momentum=t.momentum, weight_decay=t.weight_decay, sam_rho=t.sam_rho, schedule=t.schedule,
                  milestones=tuple(t.milestones), gamma=t.gamma, warmup_epochs=t.warmup_epochs,
                  label_smoothing=t.label_smoothing, precision=t.precision, compile=t.compile,
                  mirror=t.mirror, shift=t.shift, checkpoints=tuple(t.checkpoints))


def groups(cfg: RunConfig) -> list[list[int]]:
    """Model ids split into groups of ``models_per_group`` (the last one may be smaller)."""
    m, k = cfg.population.n_models, cfg.population.models_per_group
    return [list(range(s, min(s + k, m))) for s in range(0, m, k)]


def signal_epochs(cfg: RunConfig) -> list[int]:
    """Epochs whose models are queried: every checkpoint and the final one."""
    return sorted(set(cfg.training.checkpoints) | {cfg.training.epochs})


def queries(cfg: RunConfig) -> list[tuple[bool, int, int]]:
    q = cfg.queries
    return query_grid(mirror=q.mirror, shift=q.shift, stride=q.stride)


def curvature_settings(cfg: RunConfig) -> dict[str, Any]:
    """What determines a curvature array besides the model (recorded with it)."""
    return {"seed": cfg.seed, **cfg.curvature.model_dump(mode="json"), "loss": "stable_cross_entropy"}


def curvature_queries(cfg: RunConfig, is_image: bool) -> list[tuple[bool, int, int]]:
    """Identity, plus the mirror image when ``curvature.mirror`` (as in Curvature Clues)."""
    return [(False, 0, 0), (True, 0, 0)] if cfg.curvature.mirror and is_image else [(False, 0, 0)]


def zo_batch_size(arch: str, device: torch.device | str = "cpu") -> int:
    """Samples per zero-order chunk (the forward sees 4x as many inputs): on a CPU 32 for
    convolutional nets (every architecture but the MLP), which run 2-3x faster per sample on 128
    inputs than on 4,096 (cache-resident activations), 1024 for MLPs (tiny forwards: large batches
    amortise the per-call overhead; ``benchmarks/curvature_cost.py``); 1024 on a GPU. The target's
    curvature uses the same chunks, so it is rounded exactly as a population model's."""
    return 32 if arch != "mlp" and torch.device(device).type == "cpu" else 1024


def uses_gpu(cfg: RunConfig) -> bool:
    if cfg.training.executor == "ray":   # the Ray head itself may have no GPU
        return cfg.training.device == "cuda" or (cfg.training.device == "auto" and torch.cuda.is_available())
    return resolve_device(cfg.training.device).type == "cuda"


def schedule(cfg: RunConfig) -> dict[str, Any]:
    """How the executor runs the groups: ``workers`` at a time in threads on a CPU (one after
    another on a GPU, and with ``compile``, whose tracing is not thread-safe), or Ray tasks with one
    GPU each when the run uses a GPU."""
    gpu = uses_gpu(cfg)
    one = gpu or cfg.training.compile
    return {"workers": 1 if one else cfg.training.workers, "executor": cfg.training.executor,
            "gpus_per_task": 1.0 if gpu else 0.0}


def load_group(run: Run, cfg: RunConfig, model_ids: list[int], epoch: int | None = None):
    """The trained group of ``model_ids`` at checkpoint ``epoch`` (default: final), on the run's device."""
    from privaudit.models.group import group_from_state
    from privaudit.training.trainer import choose_backend

    final = epoch is None or epoch == cfg.training.epochs
    blob = run.load_torch(Layout.group_models(model_ids, None if final else epoch))
    info = run.pool_info()
    device = resolve_device(cfg.training.device)
    backend = choose_backend(arch_spec(cfg), cfg.training.backend, device)
    group = group_from_state(arch_spec(cfg), tuple(info["input_shape"]), info["n_classes"], blob["state"], backend)
    return group.to(device)


@contextmanager
def progress(console, description: str, total: int | None, unit: str = "") -> Iterator[Any]:
    """A progress bar on ``console`` (none when ``console`` is None); yields ``advance(n)``. With a
    ``total`` it counts ``unit`` (a plural noun: ``3/8 models``); ``total=None`` is one step of
    unknown length, shown with its elapsed time and full when the step ends. The bar gives way
    first: words and numbers wrap on a narrow console, they are never cut."""
    if console is None:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn
    from rich.table import Column

    whole = lambda: Column(no_wrap=True, overflow="ignore")
    counts = (MofNCompleteColumn(table_column=whole()), TextColumn(unit, table_column=whole()),
              TimeElapsedColumn(table_column=whole()), TimeRemainingColumn(table_column=whole()))
    counts = counts if total is not None else counts[2:3]
    rest = 8 * len(counts) + (len(f"{total}/{total}") + len(unit) - 14 if total is not None else 0)
    bar = BarColumn(bar_width=max(4, min(40, console.width - len(description) - rest - 2)))
    with Progress(TextColumn("{task.description}", table_column=Column(overflow="fold")), bar, *counts,
                  console=console, transient=False) as live:
        task = live.add_task(description, total=total)
        try:
            yield lambda n=1: live.advance(task, n)
        except BaseException:
            live.live.transient = True   # an error stays one line, with no bar above it
            raise
        if total is None:
            live.update(task, total=1, completed=1)
