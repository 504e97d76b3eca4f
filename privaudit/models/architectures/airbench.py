"""airbench: the fast CIFAR-10 network of Keller Jordan's airbench (``airbench94.py``,
github.com/KellerJordan/cifar10-airbench; Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single
GPU", 2024), itself from the hlb-CIFAR10 line: a 2x2 stem convolution (24 channels, no padding),
GELU, then three conv groups at ``width x (1, 4, 4)`` channels (airbench94: 64, 256, 256), each
``conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU``, a 3x3 max-pool,
and a bias-free linear head scaled by 1/9.

What differs from airbench94: the stem is learned from a random initialisation (airbench94
initialises it by whitening the training set's 2x2 patches and freezes it), so a model here
depends on its seed alone; BatchNorm uses PyTorch's defaults. airbench's training recipe (Nesterov
SGD, label smoothing 0.2, a short warm-up) is a config: ``configs/cifar10_airbench_gpu.yaml``.
"""

from __future__ import annotations

import torch
from torch import nn

from privaudit.models.architectures._common import Architecture, ArchSpec
from privaudit.models.architectures._norm import norm_layer, needs_images


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def conv_group(cin: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), norm_layer(norm, cout),
                         nn.GELU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm_layer(norm, cout), nn.GELU())


def build_airbench(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Sequential:
    needs_images(input_shape, "airbench")
    c, w = input_shape[0], spec.width
    stem = 2 * c * 2 * 2
    return nn.Sequential(nn.Conv2d(c, stem, 2, bias=True), nn.GELU(),
                         conv_group(stem, w, spec.norm), conv_group(w, 4 * w, spec.norm),
                         conv_group(4 * w, 4 * w, spec.norm),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4 * w, n_classes, bias=False), Scale(1 / 9))


def check_airbench(model) -> str | None:
    return None


ARCHITECTURE = Architecture(
    "airbench", build_airbench, "airbench94's fast CIFAR-10 net: 2x2 stem, three conv groups at width x 1/4/4, "
                                "BatchNorm + GELU",
    defaults={"width": 64, "norm": "batch"}, check=check_airbench)
