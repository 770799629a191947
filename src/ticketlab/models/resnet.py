"""Residual networks: the CIFAR ResNet-20 ([S1]'s "Resnet-18") and the ImageNet ResNet-50 ([S0]).

Both are stem -> stages of residual blocks -> global average pool -> FC. A block is a chain of
conv+BN pairs with ReLU between them, added to a shortcut, then ReLU; the basic block (two 3x3)
and the bottleneck (1x1, 3x3, 1x1 x4) differ only in that chain, so one ``Block`` class serves both.

Shortcuts are 1x1 conv projections **with BN** wherever the shape changes, identity elsewhere.
For ResNet-20, [S1] counts 2,560 projection weights (so option B, not He et al.'s zero padding,
PROTOCOL §6 A5) but does not say whether BN follows; we add BN as ResNet-50 does, so both
networks share one shortcut. It adds 192 BN affine parameters and no weights, so Pm is unchanged.

ResNet-50 is torchvision's v1.5: the stride sits in the 3x3 conv of the bottleneck. Its FC has
no bias (2,048,000 weights, PROTOCOL §6 A18).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ticketlab.models.base import Model


class ConvBN(nn.Sequential):
    """A bias-free conv followed by BN (the BN's beta plays the bias)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            bn=nn.BatchNorm2d(cout),
        ))


class Block(nn.Module):
    """Residual block over ``convs`` = [(cin, cout, kernel, stride), ...]."""

    def __init__(self, convs: list[tuple[int, int, int, int]]):
        super().__init__()
        self.convs = nn.ModuleList(ConvBN(*c) for c in convs)
        cin, cout = convs[0][0], convs[-1][1]
        stride = max(c[3] for c in convs)
        self.shortcut = ConvBN(cin, cout, 1, stride) if (cin != cout or stride != 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i, layer in enumerate(self.convs):
            out = layer(out)
            if i < len(self.convs) - 1:
                out = torch.relu(out)
        return torch.relu(out + self.shortcut(x))


def basic(cin: int, width: int, stride: int) -> Block:
    return Block([(cin, width, 3, stride), (width, width, 3, 1)])


def bottleneck(cin: int, width: int, stride: int) -> Block:
    return Block([(cin, width, 1, 1), (width, width, 3, stride), (width, 4 * width, 1, 1)])


class ResNet(Model):
    """``stem`` then, per stage, ``depth`` blocks of ``width`` (stride 2 on the first block of every
    stage but the first), global average pool, FC output."""

    def __init__(self, stem: nn.Module, stem_channels: int, block, widths: tuple[int, ...],
                 depths: tuple[int, ...], input_shape: tuple[int, ...], num_classes: int,
                 output_bias: bool, prunable_shortcuts: bool):
        super().__init__()
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.stem = stem
        channels, stages = stem_channels, []
        for index, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(channels, width, 2 if (index > 0 and j == 0) else 1))
                channels = blocks[-1].convs[-1].conv.out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.output = nn.Linear(channels, num_classes, bias=output_bias)
        shortcuts = [] if prunable_shortcuts else [m for m in self.modules()
                                                   if isinstance(m, Block) and isinstance(m.shortcut, ConvBN)]
        self.tag_weights(output=self.output, unprunable=[self.output, *(b.shortcut.conv for b in shortcuts)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.stages(self.stem(x))).flatten(1))


def cifar_resnet20(input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    """He et al.'s CIFAR ResNet-20 with projection shortcuts: 270,896 weights. [S1] prunes the
    3x3 convs (stem included) and leaves the 1x1 projections and the FC alone (App. I.3)."""
    stem = nn.Sequential(ConvBN(input_shape[0], 16, 3), nn.ReLU())
    return ResNet(stem, 16, basic, (16, 32, 64), (3, 3, 3), input_shape, num_classes,
                  output_bias=True, prunable_shortcuts=False)


def resnet50(input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    """ImageNet ResNet-50: 23,454,912 conv weights, all 53 kernels prunable ([S0]; [EXT-a] prunes
    every 4-D kernel), FC 2048 x classes without bias, never pruned."""
    stem = nn.Sequential(ConvBN(input_shape[0], 64, 7, stride=2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
    return ResNet(stem, 64, bottleneck, (64, 128, 256, 512), (3, 4, 6, 3), input_shape, num_classes,
                  output_bias=False, prunable_shortcuts=True)
