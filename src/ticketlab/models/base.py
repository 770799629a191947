"""What every model exposes to pruning and training: a tag per weight tensor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

KINDS = ("conv", "fc", "output")


@dataclass(frozen=True)
class WeightInfo:
    """A weight tensor (kernel or matrix; never a bias or BN parameter)."""

    kind: str        # 'conv', 'fc' or 'output'
    prunable: bool   # False for tensors the paper never prunes (e.g. resnet20's 1x1 projections and FC)


class Model(nn.Module):
    """Base class: subclasses fill ``self.weight_infos`` (parameter name -> WeightInfo) in __init__.

    ``input_shape`` (C, H, W) and ``num_classes`` record what the model was built for, so callers
    that need a dummy batch (SNIP, shape checks) do not have to carry them separately; ``spec``, by
    what (data-parallel ranks build their replicas from it).
    """

    weight_infos: dict[str, WeightInfo]
    input_shape: tuple[int, ...]
    num_classes: int
    spec = None        # the ModelSpec ``models.build`` made it from

    def weight_info(self) -> dict[str, WeightInfo]:
        """Every weight tensor by parameter name, in ``named_parameters`` order."""
        return dict(self.weight_infos)

    def prunable_weights(self) -> dict[str, "nn.Parameter"]:
        params = dict(self.named_parameters())
        return {name: params[name] for name, info in self.weight_infos.items() if info.prunable}

    def tag_weights(self, output: nn.Linear, unprunable: Iterable[nn.Module] = ()) -> None:
        """Fill ``weight_infos`` from the layers: Conv2d -> 'conv', Linear -> 'fc', ``output`` -> 'output'.

        Every conv and linear weight is tagged, prunable unless its module is in ``unprunable``;
        call this at the end of ``__init__``, once all layers exist.
        """
        frozen = {id(m) for m in unprunable}
        infos = {}
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d):
                kind = "conv"
            elif isinstance(module, nn.Linear):
                kind = "output" if module is output else "fc"
            else:
                continue
            infos[f"{name}.weight"] = WeightInfo(kind, id(module) not in frozen)
        # named_modules and named_parameters walk the same registration order, but say so in code.
        order = [name for name, _ in self.named_parameters()]
        self.weight_infos = {name: infos[name] for name in order if name in infos}
