"""wrn: the WideResNet (Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016) that LiRA
trains on CIFAR-10 (Carlini et al., IEEE S&P 2022: WRN-16-4; its code uses
``objax.zoo.wide_resnet.WideResNet(depth=16, width=4)``): WRN-``depth``-``widen`` has three groups
of ``n = (depth - 4) / 6`` pre-activation blocks (norm-ReLU-conv, twice) at ``16 * widen``,
``32 * widen`` and ``64 * widen`` channels (strides 1, 2, 2) after a 3x3 stem of 16 channels, then
norm-ReLU, global average pool and a linear head. No dropout. WRN-16-4 and WRN-28-2 (the
``depth``/``widen`` of the LiRA and DP-SGD literature) and tiny ones for tests.
"""

from __future__ import annotations

import torch
from torch import nn

from privaudit.models.architectures._common import Architecture, ArchSpec
from privaudit.models.architectures._norm import norm_layer, needs_images


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.bn1, self.relu = norm_layer(norm, cin), nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        return self.conv2(self.relu(self.bn2(self.conv1(o)))) + skip


class WideResNet(nn.Module):
    def __init__(self, in_channels: int, n_classes: int, depth: int, widen: int, norm: str):
        super().__init__()
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        for g, stride in enumerate((1, 2, 2)):
            layers += [PreActBlock(widths[g] if j == 0 else widths[g + 1], widths[g + 1], stride if j == 0 else 1, norm)
                       for j in range(n)]
        layers += [norm_layer(norm, widths[-1]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(widths[-1], n_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_wrn(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> WideResNet:
    needs_images(input_shape, "wrn")
    return WideResNet(input_shape[0], n_classes, spec.depth, spec.widen, spec.norm)


def check_wrn(model) -> str | None:
    if model.depth < 10 or (model.depth - 4) % 6:
        return f"wrn: depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {model.depth}"
    return None


ARCHITECTURE = Architecture(
    "wrn", build_wrn, "WideResNet WRN-depth-widen (LiRA: WRN-16-4): pre-activation blocks at "
                      "16/32/64 x widen, BatchNorm (norm: group for DP-SGD)",
    defaults={"depth": 16, "widen": 4, "norm": "batch"}, check=check_wrn)
