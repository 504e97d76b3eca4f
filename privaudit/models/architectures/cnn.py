"""cnn: the small CNNs of Carlini et al.

The CNN follows LiRA's ``cnn32``/``cnn64`` family (Carlini, Chien, Nasr, Song, Terzis, Tramèr,
"Membership Inference Attacks From First Principles", IEEE S&P 2022; official code:
tensorflow/privacy, ``research/mi_lira_2021``): blocks of 3x3 convolution + ReLU + 2x2 max-pool
with widths ``width, 2*width, 2*width`` (capped at the input resolution), global average pool,
linear head. No BatchNorm: its batch statistics would mix members and non-members and, stacked
over models, couple the models of a group.
"""

from __future__ import annotations

from torch import nn

from privaudit.errors import ConfigError
from privaudit.models.architectures._common import Architecture, ArchSpec, _activation


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


ARCHITECTURE = Architecture(
    "cnn", build_cnn, "LiRA-style CNN: `depth` blocks of 3x3 conv + activation + 2x2 max-pool, "
                      "global average pool, linear head (images only)",
    defaults={"width": 32, "depth": 3})
