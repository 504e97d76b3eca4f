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
                   buffers: Iterable[torch.Tensor] = ()) -> torch.optim.Optimizer | FusedAdam:
    """The recipe's optimizer. ``stacked``: every parameter has a leading model axis (the ``wide``
    and ``vmap`` groups); else the parameters are one model's. ``buffers``: what SAM restores after
    its second forward (BatchNorm running statistics). Both matter to :class:`SAM` only."""
    if recipe.optimizer == "adam":
        return FusedAdam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, **sgd_options(recipe))
    if recipe.optimizer == "sam":
        return SAM(params, rho=recipe.sam_rho, stacked=stacked, buffers=buffers, **sgd_options(recipe))
    raise ConfigError(f"unknown optimizer {recipe.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


class FusedAdam:
    """``torch.optim.Adam(params, lr, weight_decay=wd, fused=True)``: the same update through the
    same kernel (``torch._fused_adam_``, Kingma & Ba, ICLR 2015, Algorithm 1, L2 weight decay),
    equal to it bit for bit (tested), but not a ``torch.optim.Optimizer``: torch wraps
    ``Optimizer.add_param_group`` and ``Optimizer.step`` so that their first call imports
    ``torch._dynamo``, 1.2-1.6 s on a 2-core CPU, about a seventh of the default audit. Offers what
    the training loops use: ``param_groups[i]["lr"]``, :meth:`zero_grad`, :meth:`step`."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params]
        self.param_groups = [{"params": self.params, "lr": lr, "weight_decay": weight_decay,
                              "betas": betas, "eps": eps}]
        self.state: dict[torch.nn.Parameter, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _state(self, p: torch.nn.Parameter) -> dict[str, torch.Tensor]:
        if p not in self.state:     # as torch's Adam: created at a parameter's first gradient
            self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                             "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return self.state[p]

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        g = self.param_groups[0]
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return loss
        states = [self._state(p) for p in params]
        steps = [st["step"] for st in states]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, [p.grad for p in params], [st["exp_avg"] for st in states],
                               [st["exp_avg_sq"] for st in states], [], steps, lr=g["lr"],
                               beta1=g["betas"][0], beta2=g["betas"][1], weight_decay=g["weight_decay"],
                               eps=g["eps"], amsgrad=False, maximize=False, grad_scale=None, found_inf=None)
        return loss


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
