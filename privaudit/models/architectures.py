"""Single-model architectures (plain ``nn.Module``): an MLP and the small CNNs of Carlini et al.

The CNN follows LiRA's ``cnn32``/``cnn64`` family (``research/mi_lira_2021/train.py``): blocks of
3x3 convolution + ReLU + 2x2 max-pool with widths ``width, 2*width, 2*width`` (capped at the
input resolution), global average pool, linear head. No BatchNorm: its batch statistics would mix
members and non-members and, stacked over models, couple the models of a group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from privaudit.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}


@dataclass(frozen=True)
class ArchSpec:
    """What network to build: ``kind`` is ``mlp`` or ``cnn``."""

    kind: str = "mlp"
    hidden: tuple[int, ...] = (128,)
    width: int = 32
    depth: int = 3
    activation: str = "relu"


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def build_mlp(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Sequential:
    sizes = [int(torch.tensor(input_shape).prod()), *spec.hidden, n_classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_activation(spec.activation))
    return nn.Sequential(*layers)


def build_cnn(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Sequential:
    if len(input_shape) != 3:
        raise ConfigError(f"the CNN needs image inputs [C, H, W], got input shape {input_shape}")
    channels, size = input_shape[0], min(input_shape[1:])
    layers: list[nn.Module] = []
    width = spec.width
    for block in range(spec.depth):
        out = spec.width * (1 if block == 0 else 2)
        layers += [nn.Conv2d(channels, out, 3, padding=1), _activation(spec.activation)]
        if size >= 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        channels, width = out, out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes)]
    return nn.Sequential(*layers)


def build_model(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """One freshly initialised model (initialisation uses torch's global RNG: seed it first)."""
    if spec.kind == "mlp":
        return build_mlp(spec, input_shape, n_classes)
    if spec.kind == "cnn":
        return build_cnn(spec, input_shape, n_classes)
    raise ConfigError(f"unknown architecture {spec.kind!r}; choose 'mlp' or 'cnn'")


def init_model(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int, seed: int) -> nn.Module:
    """Model initialised from ``seed`` alone (so a model's init never depends on its group)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build_model(spec, input_shape, n_classes)
    finally:
        torch.random.set_rng_state(state)
