"""mlp: a fully connected network, ``Flatten -> (Linear -> activation) x len(hidden) -> Linear``."""

from __future__ import annotations

import torch
from torch import nn

from privaudit.models.architectures._common import Architecture, ArchSpec, _activation


def build_mlp(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Sequential:
    sizes = [int(torch.tensor(input_shape).prod()), *spec.hidden, n_classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_activation(spec.activation))
    return nn.Sequential(*layers)


ARCHITECTURE = Architecture(
    "mlp", build_mlp, "fully connected: Linear + activation per `hidden` width, any input shape",
    defaults={"hidden": (128,)})
