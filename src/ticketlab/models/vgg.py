"""VGG-19 for CIFAR ([S1] App. I.2, after Liu et al. 2019).

16 conv3x3 layers with BN and ReLU (no conv bias: BN's beta replaces it), four max-pools, a
global average pool and one FC 512 -> classes with bias. 20,018,880 conv weights (all prunable)
and 5,120 output weights, which [S1] never prunes.
"""

from __future__ import annotations

import torch
from torch import nn

from ticketlab.models.base import Model

# channel widths, 'M' = 2x2 max-pool
_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)


class VGG(Model):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        channels = input_shape[0]
        layers: list[nn.Module] = []
        for item in _CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        # Liu et al. pool the final 2x2 map with AvgPool2d(2); the adaptive pool is the same at
        # 32x32 and still works on other input sizes.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.output = nn.Linear(channels, num_classes)
        self.tag_weights(output=self.output, unprunable=[self.output])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.features(x)).flatten(1))
