"""A training recipe: optimizer (Adam, SGD, SAM), learning-rate warm-up and schedule, loss
(label smoothing), precision, compilation, epochs, batch size, augmentation.

Every optimizer here acts on stacked ``[K, ...]`` parameters as on a single model's: Adam and SGD
are elementwise, and :class:`SAM` takes its gradient norm per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from privaudit.errors import ConfigError

OPTIMIZERS = ("adam", "sgd", "sam")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"          # adam | sgd | sam (SAM around the SGD below)
    lr: float = 1e-3
    momentum: float = 0.9            # sgd, sam: Nesterov momentum when > 0
    weight_decay: float = 0.0
    sam_rho: float = 0.05            # sam: radius of the ascent step (Foret et al. 2021)
    schedule: str = "cosine"         # constant | cosine | step, after the warm-up
    milestones: tuple[float, ...] = (0.6, 0.8)   # step schedule: fractions of the post-warm-up steps
    gamma: float = 0.1
    warmup_epochs: float = 0.0       # linear warm-up, round(warmup_epochs * steps per epoch) steps
    label_smoothing: float = 0.0     # F.cross_entropy(label_smoothing=...)
    precision: str = "fp32"          # fp32 | bf16 (autocast on the forward; for GPUs)
    compile: bool = False            # torch.compile the training forward (start-up cost, see trainer)
    mirror: bool = False             # training augmentation: random horizontal mirror
    shift: int = 0                   # training augmentation: random shift (reflect padding), pixels
    checkpoints: tuple[int, ...] = field(default_factory=tuple)  # epochs at which to save models


def make_optimizer(recipe: Recipe, params: Iterable[torch.nn.Parameter], *, stacked: bool = True,
                   buffers: Iterable[torch.Tensor] = ()) -> torch.optim.Optimizer:
    """The recipe's optimizer. ``stacked``: every parameter has a leading model axis (the ``wide``
    and ``vmap`` groups); else the parameters are one model's. ``buffers``: what SAM restores after
    its second forward (BatchNorm running statistics). Both matter to :class:`SAM` only."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, **sgd_options(recipe))
    if recipe.optimizer == "sam":
        return SAM(params, rho=recipe.sam_rho, stacked=stacked, buffers=buffers, **sgd_options(recipe))
    raise ConfigError(f"unknown optimizer {recipe.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def sgd_options(recipe: Recipe) -> dict:
    return dict(lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                nesterov=recipe.momentum > 0)


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimization (Foret, Kleiner, Mobahi, Neyshabur, ICLR 2021, Algorithm 1;
    google-research/sam, and the PyTorch port davda54/sam, whose interface this follows) around SGD.

    One :meth:`step` takes the gradient ``g`` at ``w`` (first closure call), moves to
    ``w + rho * g / (||g|| + 1e-12)`` (davda54's epsilon), takes the gradient there (second call),
    restores ``w`` exactly and steps SGD (momentum, Nesterov, weight decay at ``w``, as davda54/sam)
    with the second gradient. ``||g||`` is **per model**: over the model axis (dim 0) of stacked
    parameters, whose zero padding has zero gradient, so a model's step is independent of its
    group. ``buffers`` are restored after the second forward, so BatchNorm's running statistics
    are those of the forward at ``w`` only -- the effect of davda54's ``disable_running_stats``
    (BatchNorm momentum 0 in the second pass), ``num_batches_tracked`` included."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, rho: float, stacked: bool,
                 buffers: Iterable[torch.Tensor] = (), **sgd: float | bool):
        if rho <= 0:
            raise ConfigError(f"sam_rho must be > 0, got {rho}")
        super().__init__(params, dict(rho=rho))
        self.base = torch.optim.SGD(self.param_groups, **sgd)
        self.param_groups = self.base.param_groups       # the same groups: set_lr reaches the base
        self.stacked, self.buffers = stacked, list(buffers)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def grad_norms(self) -> torch.Tensor:
        """The L2 norm of each model's gradient, ``[K]`` (stacked) or ``[1]``."""
        if self.stacked:
            squares = [p.grad.reshape(p.shape[0], -1).square().sum(1) for p in self._params()]
        else:
            squares = [p.grad.square().sum().reshape(1) for p in self._params()]
        return torch.stack(squares).sum(0).sqrt()

    @torch.no_grad()
    def first_step(self) -> None:
        """Move every model to ``w + rho * g / ||g||`` (``w`` kept to restore)."""
        scale = self.param_groups[0]["rho"] / (self.grad_norms() + 1e-12)
        for p in self._params():
            self.state[p]["w"] = p.detach().clone()
            p.add_(p.grad * (scale.view(-1, *[1] * (p.dim() - 1)) if self.stacked else scale))

    @torch.no_grad()
    def second_step(self) -> None:
        """Restore ``w`` and step the base SGD with the gradient taken at the perturbed point."""
        for p in self._params():
            p.copy_(self.state[p].pop("w"))
        self.base.step()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """``closure`` zeroes the gradients, computes the loss and back-propagates it; returns the
        loss at ``w``."""
        if closure is None:
            raise ConfigError("SAM takes two gradients per step: step() needs a closure "
                              "(DP-SGD does not support optimizer: sam)")
        with torch.enable_grad():
            loss = closure()
        self.first_step()
        saved = [b.clone() for b in self.buffers]
        with torch.enable_grad():
            closure()
        with torch.no_grad():
            for b, s in zip(self.buffers, saved):
                b.copy_(s)
        self.second_step()
        return loss


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    """``round(warmup_epochs * steps per epoch)`` (Python's round), at most ``total_steps``."""
    per_epoch = total_steps / max(recipe.epochs, 1)
    return min(total_steps, round(recipe.warmup_epochs * per_epoch))


def lr_factor(recipe: Recipe, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``.

    The first ``W`` = :func:`warmup_steps` steps ramp linearly, ``(step + 1) / W`` (the last
    warm-up step reaches the base rate); the schedule then runs over the remaining
    ``total_steps - W`` steps as if they were the whole training (cosine from 1 to 0, step
    milestones as fractions of them)."""
    warm = warmup_steps(recipe, total_steps)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(total_steps - warm, 1)
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if recipe.schedule == "step":
        return recipe.gamma ** sum(progress >= m for m in recipe.milestones)
    raise ConfigError(f"unknown schedule {recipe.schedule!r}; choose constant, cosine or step")
