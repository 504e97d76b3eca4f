"""resnet: the CIFAR ResNet-18/34 (He, Zhang, Ren, Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016), in the CIFAR layout that Curvature Clues trains (Ravikumar et al.,
NeurIPS 2024) and that ``kuangliu/pytorch-cifar`` popularised: a 3x3 stride-1 stem (no 7x7 stem,
no max-pool), four stages of BasicBlocks ([2, 2, 2, 2] for ResNet-18, [3, 4, 6, 3] for ResNet-34)
at ``width x (1, 2, 4, 8)`` channels with stride 2 between stages, global average pool, linear
head. ``width`` (default 64, the paper's) scales every stage, so tests can train tiny ones;
``norm`` chooses BatchNorm (default), GroupNorm (for DP-SGD) or none.
"""

from __future__ import annotations

import torch
from torch import nn

from privaudit.models.architectures._common import Architecture, ArchSpec
from privaudit.models.architectures._norm import norm_layer, needs_images

LAYOUTS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm_layer(norm, cout))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, in_channels: int, n_classes: int, blocks: tuple[int, ...], width: int, norm: str):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), norm_layer(norm, width),
                                  nn.ReLU())
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2 ** i
            stages += [BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1, norm)
                       for j in range(n)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build_resnet(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> ResNet:
    needs_images(input_shape, "resnet")
    return ResNet(input_shape[0], n_classes, LAYOUTS[spec.depth], spec.width, spec.norm)


def check_resnet(model) -> str | None:
    if model.depth not in LAYOUTS:
        return f"resnet: depth must be 18 or 34, got {model.depth}"
    return None


ARCHITECTURE = Architecture(
    "resnet", build_resnet, "CIFAR ResNet-18/34 (depth 18|34): 3x3 stem, BasicBlocks at width x 1/2/4/8, "
                            "BatchNorm (norm: group for DP-SGD)",
    defaults={"depth": 18, "width": 64, "norm": "batch"}, check=check_resnet)
