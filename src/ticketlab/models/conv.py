"""Conv-2, Conv-4 and Conv-6 ([S1] Fig 2, App. H): VGG-like CIFAR networks, one class for all three.

Each of ``blocks`` blocks is [conv3x3, conv3x3, maxpool 2] at 64, 128, 256 channels; then
flatten -> FC256 -> FC256 -> output, ReLU throughout, biases everywhere (never pruned).

Padding: 'same' reproduces [S1]'s counts (Conv-2 4,300,992 weights); 'valid' reproduces [S4]'s
(3,317,952), PROTOCOL §6 A6.

Dropout ([S1] §3 and H.5 do not say where): when ``dropout > 0`` it follows the ReLU of each
hidden FC layer (FC256, FC256), nowhere in the conv blocks: the usual place in VGG-style
networks (AlexNet, VGG), and where these networks keep most of their weights [GK]. The output
layer sees the dropped activations.
"""

from __future__ import annotations

import torch
from torch import nn

from ticketlab import TicketlabError
from ticketlab.models.base import Model

_WIDTHS = (64, 128, 256)
_FC = (256, 256)


class ConvNet(Model):
    def __init__(self, blocks: int, padding: str, dropout: float,
                 input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        channels, height, width = input_shape
        pad = 1 if padding == "same" else 0
        layers: list[nn.Module] = []
        for out in _WIDTHS[:blocks]:
            layers += [nn.Conv2d(channels, out, 3, padding=pad), nn.ReLU(),
                       nn.Conv2d(out, out, 3, padding=pad), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
            # each unpadded 3x3 conv trims 2 pixels; the pool halves (floor)
            height, width = (height - 4 * (1 - pad)) // 2, (width - 4 * (1 - pad)) // 2
        if height < 1 or width < 1:
            raise TicketlabError(f"input {tuple(input_shape)} is too small for {blocks} conv blocks with "
                                 f"padding={padding!r}; use a larger input or padding='same'")
        self.features = nn.Sequential(*layers)
        widths = [channels * height * width, *_FC]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output = nn.Linear(widths[-1], num_classes)
        self.tag_weights(output=self.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # flatten reads NCHW order whatever the memory format, so channels_last gives the same logits
        x = self.features(x).flatten(1)
        for layer in self.hidden:
            x = self.dropout(torch.relu(layer(x)))
        return self.output(x)
