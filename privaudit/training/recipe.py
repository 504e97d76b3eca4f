"""A training recipe: optimizer, learning-rate schedule, epochs, batch size, augmentation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from privaudit.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"          # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"         # constant | cosine | step
    milestones: tuple[float, ...] = (0.6, 0.8)   # step schedule: fractions of training
    gamma: float = 0.1
    mirror: bool = False             # training augmentation: random horizontal mirror
    shift: int = 0                   # training augmentation: random shift (reflect padding), pixels
    checkpoints: tuple[int, ...] = field(default_factory=tuple)  # epochs at which to save models


def make_optimizer(recipe: Recipe, params) -> torch.optim.Optimizer:
    """Elementwise optimizers only: they act on stacked ``[K, ...]`` parameters unchanged."""
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
    raise ConfigError(f"unknown optimizer {recipe.optimizer!r}; choose 'adam' or 'sgd'")


def lr_factor(recipe: Recipe, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``."""
    progress = step / max(total_steps, 1)
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if recipe.schedule == "step":
        return recipe.gamma ** sum(progress >= m for m in recipe.milestones)
    raise ConfigError(f"unknown schedule {recipe.schedule!r}; choose constant, cosine or step")
