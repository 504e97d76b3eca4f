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
K = 5 with two threads, and is identical with one). Parallelism comes from running groups side by
side (:func:`privaudit.runtime.executor.run_tasks`: threads, one intra-op thread each), so a group
trains under the same thread count however it is scheduled.

**A training step** (:func:`_fit`, every backend): gather each model's batch from the dataset,
which lives on the training device (moved once in :func:`_train`; the epoch's index and
augmentation plan is moved there once per epoch, :func:`stack_plans`; augmentation is tensor ops
on that device, :mod:`privaudit.training.augment`: no host-to-device copy and no host sync per
step), forward (:func:`make_forward`), :func:`step_loss` (each model's mean label-smoothed
cross-entropy in fp32, summed over the models), and ``opt.step(closure)`` -- once for Adam/SGD,
twice for SAM (:class:`~privaudit.training.recipe.SAM`: per-model gradient norm; BatchNorm running
statistics from the forward at ``w`` only). Learning rate: linear warm-up, then the schedule
(:func:`~privaudit.training.recipe.lr_factor`).

* ``precision: bf16`` -- ``torch.autocast(device, bfloat16)`` around the forward, the loss in
  fp32, parameters and optimizer state fp32. It is for GPUs. On a CPU it runs but is slow, and
  under ``vmap`` the convolutions stay fp32 there (vmap turns ``conv2d`` into
  ``aten::convolution``, which has an autocast kernel for CUDA but not for the CPU in torch 2.13).
  It changes more than the last bits: a BatchNorm ResNet's bf16 gradient at initialisation is ~30%
  off the fp32 one in relative L2 (CPU, ``loop``, ``resnet`` width 4-16, random labels; a CNN
  without BatchNorm: ~2% after training). fp32 is the default, and the only precision with the
  bit-for-bit grouping guarantee.
* ``compile: true`` -- ``torch.compile`` of the forward (:func:`compiled`): the per-model module's
  ``forward_each`` for ``loop`` (one graph serves every model: no recompilation per model), the
  stacked ``forward_each`` for ``wide``/``vmap``; training falls back to eager with a warning if
  compilation fails. Cost: 15-25 s on the first use in a process with a cold Inductor cache (2-core
  CPU: Inductor builds its C++ kernels), 1-6 s with a warm cache, per distinct graph (a new group
  size or batch shape may recompile). Worth it for long GPU runs only. The bit-for-bit grouping
  guarantee holds for compiled ``loop`` training (one graph per model) but is not claimed for
  compiled ``wide``/``vmap`` (the generated kernels depend on K).
* channels_last: the ``loop`` backend converts each model and batch
  (:class:`~privaudit.models.group.ModuleList`); ``vmap`` gets :func:`stacked_channels_last`
  batches on a GPU (:data:`VMAP_CHANNELS_LAST`). On this 2-core CPU it was mixed for ``vmap``
  (K = 4, batch 32, 32x32: ResNet-18 width 8 1.04x, WRN-10-2 1.15x, the LiRA CNN 0.69x), so the
  CPU keeps NCHW.

Cost, measured against the previous trainer on the ``benchmarks/train_throughput.py`` workloads
(2-core CPU, interleaved, 2026-11-30): on one thread, as a scheduled group, the aligned layout costs
0-4% (digits MLP K = 8/32/64: 0.96/0.98/0.97 of the old model-samples/s; Purchase-sized MLP and
MNIST CNN: 0.99-1.00). A group trained in-process by a two-thread process (a run of one group, or
``workers: 1``) now uses one thread: 1.45x slower for the digits MLP (K = 32), 1.8x for the
Purchase-sized MLP (K = 32) and the MNIST CNN (``loop``, K = 8).
"""

from __future__ import annotations

import math
import warnings
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
from privaudit.training.recipe import PRECISIONS, Recipe, lr_factor, make_optimizer

BACKENDS = ("auto", "wide", "vmap", "loop")
TRAINING_THREADS = 1   # intra-op threads while training on a CPU (see the module docstring)
VMAP_CHANNELS_LAST = ("cuda",)   # devices where vmap gets channels_last image batches (see the docstring)

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
    """Stacked, augmented batch ``[K, b, ...]`` of step ``step``: each model gathers its own rows
    (on ``x``'s device, from the epoch's plan already there: no host-to-device copy per step)."""
    idx = plan["idx"][:, step]
    xb = x[idx.reshape(-1)]
    if x.dim() == 4 and (recipe.mirror or recipe.shift):
        flat = lambda name: plan[name][:, step].reshape(-1)
        xb = shift_and_mirror(xb, flat("flip") if recipe.mirror else None, flat("dx"), flat("dy"), recipe.shift)
    return xb.reshape(*idx.shape, *x.shape[1:])


def stacked_channels_last(xb: torch.Tensor) -> torch.Tensor:
    """A stacked image batch ``[K, B, C, H, W]`` laid out in memory as ``[B, H, W, K, C]``: under
    ``vmap`` each model's slice is channels_last, and so is the grouped convolution ``[B, K*C, H, W]``
    that vmap's convolution batching rule makes of the K convolutions (a view, no copy)."""
    return xb.permute(1, 3, 4, 0, 2).contiguous().permute(3, 0, 4, 1, 2)


def batch_layout(group: ModelGroup, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a training batch goes through before the forward: :func:`stacked_channels_last` for
    image models under ``vmap`` on the devices of :data:`VMAP_CHANNELS_LAST` (the ``loop`` backend
    converts per model, :class:`~privaudit.models.group.ModuleList`); else nothing."""
    if isinstance(group, VmapGroup) and uses_channels_last(group.spec) and device.type in VMAP_CHANNELS_LAST:
        return lambda xb: stacked_channels_last(xb) if xb.dim() == 5 else xb
    return lambda xb: xb


def compiled(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.compile(fn)``; if a compiled call fails (compilation happens on the first call and
    on recompiles), a warning and plain ``fn`` from then on."""
    fast, ok = torch.compile(fn), [True]

    def call(xb: torch.Tensor) -> torch.Tensor:
        if ok[0]:
            try:
                return fast(xb)
            except Exception as err:  # noqa: BLE001 - any compiler failure: train eagerly
                ok[0] = False
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                              f"training without compilation", RuntimeWarning, stacklevel=2)
        return fn(xb)
    return call


def make_forward(group: ModelGroup, recipe: Recipe, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training forward ``x [K, b, ...] -> logits [K, b, C]``: the group's ``forward_each``,
    compiled if ``recipe.compile``, under bf16 autocast if ``recipe.precision == "bf16"``."""
    if recipe.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {recipe.precision!r}; choose one of {', '.join(PRECISIONS)}")
    fn = compiled(group.forward_each) if recipe.compile else group.forward_each
    if recipe.precision == "fp32":
        return fn

    def forward(xb: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn(xb)
    return forward


def step_loss(logits: torch.Tensor, yb: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Each model's mean (label-smoothed) cross-entropy, at least in fp32 (bf16 logits are cast up;
    fp64 models keep fp64), summed over the models: a model's gradient does not depend on K."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum",
                           label_smoothing=recipe.label_smoothing) / recipe.batch_size


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
    ``on_progress(n_model_steps)`` after each step of each model (or of the whole stack).
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
    opt = make_optimizer(recipe, group.parameters(), stacked=not isinstance(group, ModuleList),
                         buffers=list(group.buffers()))
    forward, layout = make_forward(group, recipe, x.device), batch_layout(group, x.device)
    total = recipe.epochs * steps
    for epoch in range(1, recipe.epochs + 1):
        plan = stack_plans([epoch_plan(root_seed, m, epoch, mem, steps, recipe)
                            for m, mem in zip(model_ids, members)], x.device)
        for step in range(steps):
            set_lr(opt, recipe, (epoch - 1) * steps + step, total)
            xb, yb = layout(plan_batch(x, plan, step, recipe)), y[plan["idx"][:, step]]

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                loss = step_loss(forward(xb), yb, recipe)
                loss.backward()
                return loss
            loss = opt.step(closure)        # SAM calls it twice
            if on_progress:
                on_progress(len(model_ids))     # per step: a stopping run stops its tasks within one step
        end_of_epoch(group, epoch, recipe, model_ids, bool(torch.isfinite(loss)), on_checkpoint)
    group.eval()


def end_of_epoch(group: ModelGroup, epoch: int, recipe: Recipe, model_ids: list[int], finite: bool,
                 on_checkpoint: CheckpointFn | None) -> None:
    """Shared by every training loop: stop on divergence, save checkpoints."""
    if not finite:
        raise TrainingError(f"training diverged (non-finite loss or parameters) in epoch {epoch} of models "
                            f"{model_ids[0]}..{model_ids[-1]}; lower the learning rate")
    if on_checkpoint and epoch in recipe.checkpoints:
        on_checkpoint(epoch, group.state())
