"""Train a group of K models at once, the fastest way each architecture allows on a CPU.

Backends (chosen by measurement, ``benchmarks/train_throughput.py``, ``benchmarks/RESULTS.md``):

* ``wide`` — MLPs as one stacked network (:class:`~privaudit.models.group.WideMLP`): one batched
  matmul per layer for all K models, one fused Adam over the stacked parameters. Each model gets its
  own gathered index batch (``X[idx[k]]``), never a masked shared batch.
* ``loop`` — any architecture, one model after another, channels_last for CNNs (CNNs gain nothing
  from stacking on a CPU; channels_last gives ~1.3x over a plain per-model loop).
* ``vmap`` — any architecture, stacked parameters through ``torch.func.vmap`` (measured slower than
  ``wide`` for MLPs and than ``loop`` for CNNs on a 2-core CPU; the CNN default on a GPU, where a
  per-model loop of tiny kernels leaves the device idle).

**A model depends only on ``(root seed, model index)``, bit for bit on a CPU, whatever its group.**
Its initialisation, data order and augmentation are drawn from its own seeds: every epoch each
model walks its own permutation of its IN samples for ``steps_per_epoch`` steps (a global number,
so the stacked models stay in lockstep). The loss summed over models (each model's mean) keeps each
model's gradient independent of K. Its arithmetic is too: the stacked backends lay every model's
block out on the same alignment whatever its position and K (:mod:`privaudit.models.group`), and
training runs on one intra-op thread (:func:`training_threads`), because a multi-threaded GEMM
splits one small matrix product between the threads differently from a batch of them (measured:
the weight gradient of a ``7 x 5`` layer over 64 rows differs in the last bit between K = 1 and
K = 5 with two threads, and is identical with one). Parallelism comes from worker processes
(:func:`privaudit.runtime.executor.run_tasks`), one thread each, so a group trains under the same
thread count whether it runs in a worker or in-process.

Cost, measured against the previous trainer on the ``benchmarks/train_throughput.py`` workloads
(2-core CPU, interleaved, 2026-11-30): on one thread, as in a worker, the aligned layout costs
0-4% (digits MLP K = 8/32/64: 0.96/0.98/0.97 of the old model-samples/s; Purchase-sized MLP and
MNIST CNN: 0.99-1.00). A group trained in-process by a two-thread process (a run of one group, or
``workers: 1``) now uses one thread: 1.45x slower for the digits MLP (K = 32), 1.8x for the
Purchase-sized MLP (K = 32) and the MNIST CNN (``loop``, K = 8).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from privaudit.device import as_device
from privaudit.errors import ConfigError, TrainingError
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.models.group import ModelGroup, ModuleList, VmapGroup, WideMLP, stack_states, uses_channels_last
from privaudit.training.augment import draw_augmentations, shift_and_mirror
from privaudit.training.recipe import Recipe, lr_factor, make_optimizer

BACKENDS = ("auto", "wide", "vmap", "loop")
TRAINING_THREADS = 1   # intra-op threads while training on a CPU (see the module docstring)

CheckpointFn = Callable[[int, dict[str, torch.Tensor]], None]
ProgressFn = Callable[[int], None]


def model_seed(root_seed: int, model_index: int) -> int:
    """The seed of model ``model_index``'s initialisation (independent of grouping)."""
    return int(np.random.SeedSequence([root_seed, model_index]).generate_state(1)[0])


@contextmanager
def training_threads(device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with :data:`TRAINING_THREADS` intra-op threads on a CPU (restored after), so
    that a model's arithmetic does not depend on how many threads the calling process has."""
    before = torch.get_num_threads()
    pin = torch.device(device).type == "cpu" and before != TRAINING_THREADS
    if pin:
        torch.set_num_threads(TRAINING_THREADS)
    try:
        yield
    finally:
        if pin:
            torch.set_num_threads(before)


def choose_backend(spec: ArchSpec, backend: str = "auto", device: torch.device | str = "cpu") -> str:
    """``auto``: ``wide`` for MLPs; for CNNs ``loop`` on a CPU and ``vmap`` on a GPU (measured,
    ``benchmarks/RESULTS.md``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown training backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "wide" and not spec.is_stackable_mlp:
        raise ConfigError(f"the 'wide' backend stacks the package's MLPs only; use 'loop' or 'vmap' for "
                          f"{spec.factory or spec.kind}")
    if backend == "auto":
        if spec.is_stackable_mlp:
            return "wide"
        return "vmap" if torch.device(device).type == "cuda" else "loop"
    return backend


def steps_per_epoch(keep: np.ndarray, batch_size: int) -> int:
    """One global number of steps per epoch: the mean training-set size over batch size."""
    return max(1, int(round(keep.sum(axis=1).mean() / batch_size)))


@dataclass(frozen=True)
class EpochPlan:
    """One model's batches for one epoch: ``idx [S, b]`` and augmentation draws ``[S, b]``."""

    idx: np.ndarray
    flip: np.ndarray
    dx: np.ndarray
    dy: np.ndarray


def epoch_plan(root_seed: int, model_index: int, epoch: int, members: np.ndarray, steps: int,
               recipe: Recipe) -> EpochPlan:
    """Model ``model_index``'s batch order and augmentation in ``epoch`` (depends on nothing else)."""
    rng = np.random.default_rng([root_seed, 0x7472, model_index, epoch])
    need = steps * recipe.batch_size
    reps = math.ceil(need / len(members))
    order = np.concatenate([rng.permutation(members) for _ in range(reps)])[:need]
    flip, dx, dy = draw_augmentations(rng, need, mirror=recipe.mirror, shift=recipe.shift)
    shape = (steps, recipe.batch_size)
    return EpochPlan(order.reshape(shape), flip.reshape(shape), dx.reshape(shape), dy.reshape(shape))


def stack_plans(plans: list[EpochPlan], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The epoch's plans of K models as tensors ``[K, S, b]`` on ``device`` (built once per epoch)."""
    return {name: torch.from_numpy(np.stack([getattr(p, name) for p in plans])).to(device)
            for name in ("idx", "flip", "dx", "dy")}


def plan_batch(x: torch.Tensor, plan: dict[str, torch.Tensor], step: int, recipe: Recipe) -> torch.Tensor:
    """Stacked, augmented batch ``[K, b, ...]`` of step ``step``: each model gathers its own rows."""
    idx = plan["idx"][:, step]
    xb = x[idx.reshape(-1)]
    if x.dim() == 4 and (recipe.mirror or recipe.shift):
        flat = lambda name: plan[name][:, step].reshape(-1)
        xb = shift_and_mirror(xb, flat("flip"), flat("dx"), flat("dy"), recipe.shift)
    return xb.reshape(*idx.shape, *x.shape[1:])


def set_lr(opt: torch.optim.Optimizer, recipe: Recipe, step: int, total: int) -> None:
    for group in opt.param_groups:
        group["lr"] = recipe.lr * lr_factor(recipe, step, total)


def train_group(x: torch.Tensor, y: torch.Tensor, keep: np.ndarray, model_ids: list[int], *,
                spec: ArchSpec, recipe: Recipe, n_classes: int, root_seed: int, steps: int,
                backend: str = "auto", device: torch.device | str = "cpu",
                on_checkpoint: CheckpointFn | None = None, on_progress: ProgressFn | None = None) -> ModelGroup:
    """Train the models ``model_ids`` (rows of the full ``keep[M, n]``) on ``device`` and return
    them as a group (on that device).

    ``on_checkpoint(epoch, stacked_state)`` is called after each epoch in ``recipe.checkpoints``;
    ``on_progress(n_model_steps)`` after each epoch of each model (or of the whole stack).
    """
    device = as_device(device)
    backend = choose_backend(spec, backend, device)
    with training_threads(device):
        return _train(x, y, keep, model_ids, spec, recipe, n_classes, root_seed, steps, backend, device,
                      on_checkpoint, on_progress)


def _train(x: torch.Tensor, y: torch.Tensor, keep: np.ndarray, model_ids: list[int], spec: ArchSpec,
           recipe: Recipe, n_classes: int, root_seed: int, steps: int, backend: str, device: torch.device,
           on_checkpoint: CheckpointFn | None, on_progress: ProgressFn | None) -> ModelGroup:
    input_shape = tuple(x.shape[1:])
    x, y = x.to(device), y.to(device)
    inits = [init_model(spec, input_shape, n_classes, model_seed(root_seed, m)).to(device) for m in model_ids]
    members = [np.flatnonzero(keep[m]) for m in model_ids]
    if backend in ("wide", "vmap"):
        group = (WideMLP if backend == "wide" else VmapGroup)(spec, input_shape, n_classes, stack_states(inits))
        _fit(group, x, y, model_ids, members, recipe, root_seed, steps, on_checkpoint, on_progress)
        return group.eval()
    checkpoints: dict[int, list[dict[str, torch.Tensor]]] = {e: [] for e in recipe.checkpoints}
    for model, m, mem in zip(inits, model_ids, members):
        single = ModuleList([model], channels_last=uses_channels_last(spec))
        record = (lambda e, s: checkpoints[e].append(s)) if checkpoints else None
        _fit(single, x, y, [m], [mem], recipe, root_seed, steps, record, on_progress)
    if on_checkpoint:
        for epoch, states in checkpoints.items():
            on_checkpoint(epoch, {n: torch.cat([s[n] for s in states]) for n in states[0]})
    return ModuleList(inits, channels_last=uses_channels_last(spec)).eval()


def _fit(group: ModelGroup, x: torch.Tensor, y: torch.Tensor, model_ids: list[int],
         members: list[np.ndarray], recipe: Recipe, root_seed: int, steps: int,
         on_checkpoint: CheckpointFn | None, on_progress: ProgressFn | None) -> None:
    """The training loop shared by every backend: gather, augment, forward, summed loss, step."""
    group.train()
    opt = make_optimizer(recipe, group.parameters())
    total = recipe.epochs * steps
    for epoch in range(1, recipe.epochs + 1):
        plan = stack_plans([epoch_plan(root_seed, m, epoch, mem, steps, recipe)
                            for m, mem in zip(model_ids, members)], x.device)
        for step in range(steps):
            set_lr(opt, recipe, (epoch - 1) * steps + step, total)
            xb = plan_batch(x, plan, step, recipe)
            yb = y[plan["idx"][:, step]]
            logits = group.forward_each(xb)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1),
                                   reduction="sum") / recipe.batch_size
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        end_of_epoch(group, epoch, recipe, model_ids, steps, bool(torch.isfinite(loss)), on_checkpoint, on_progress)
    group.eval()


def end_of_epoch(group: ModelGroup, epoch: int, recipe: Recipe, model_ids: list[int], steps: int, finite: bool,
                 on_checkpoint: CheckpointFn | None, on_progress: ProgressFn | None) -> None:
    """Shared by every training loop: stop on divergence, save checkpoints, report progress."""
    if not finite:
        raise TrainingError(f"training diverged (non-finite loss or parameters) in epoch {epoch} of models "
                            f"{model_ids[0]}..{model_ids[-1]}; lower the learning rate")
    if on_checkpoint and epoch in recipe.checkpoints:
        on_checkpoint(epoch, group.state())
    if on_progress:
        on_progress(len(model_ids) * steps)
