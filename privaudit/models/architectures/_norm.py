"""The normalisation layer the image architectures share (``model.norm``)."""

from __future__ import annotations

import math

from torch import nn

NORMS = ("batch", "group", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``batch``: BatchNorm2d (running statistics are buffers, saved with the model); ``group``:
    GroupNorm (Wu & He, ECCV 2018; works under DP-SGD: no cross-sample statistics) with up to 32
    groups of at least 2 channels (``gcd(32, channels // 2)``: 32 groups from 64 channels, as the
    paper's default); ``none``: identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, max(1, channels // 2)), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def needs_images(input_shape: tuple[int, ...], name: str) -> None:
    from privaudit.errors import ConfigError

    if len(input_shape) != 3:
        raise ConfigError(f"{name} needs image inputs [C, H, W], got input shape {list(input_shape)}; "
                          f"use model.arch: mlp for tabular data")
