"""Lenet-300-100 ([S1] Fig 2, G.1): a fully-connected ReLU network on flattened images.

784 -> FC300 -> FC100 -> FC10 on MNIST: 266,200 weights plus 410 biases (biases are kept and
never pruned, PROTOCOL §6 A8). Hidden sizes come from ``model.hidden``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ticketlab.models.base import Model


class Lenet(Model):
    def __init__(self, hidden: tuple[int, ...], input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        widths = [math.prod(input_shape), *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.output = nn.Linear(widths[-1], num_classes)
        self.tag_weights(output=self.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.output(x)
