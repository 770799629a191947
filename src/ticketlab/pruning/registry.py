"""Pruning strategies by name, and ``prune``: the one entry point the lottery runner calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

import torch

from ticketlab import TicketlabError
from ticketlab.pruning import magnitude, random, structured
from ticketlab.pruning.mask import Mask
from ticketlab.spec import PruningSpec

if TYPE_CHECKING:
    from ticketlab.models.base import WeightInfo

# A strategy: (spec, weights, mask, infos, generator) -> next mask, pure, never reviving a weight.
Strategy = Callable[..., Mask]

STRATEGIES: dict[str, Strategy] = {
    "magnitude": magnitude.prune,
    "random": random.prune,
    "structured": structured.prune,   # whole filters / neurons ([S3] Fig 5)
}


def prune(spec: PruningSpec, weights: Mapping[str, torch.Tensor], mask: Mask,
          infos: Mapping[str, WeightInfo], *, generator: torch.Generator | None = None) -> Mask:
    """The next level's mask: ``spec.strategy`` applied to ``weights`` within ``mask``.

    ``mask`` holds exactly the prunable weight tensors; ``infos`` tags them (kind, prunable);
    ``generator`` drives randomized strategies. The result is always a subset of ``mask``.
    """
    strategy = STRATEGIES.get(spec.strategy)
    if strategy is None:
        raise TicketlabError(f"unknown pruning strategy {spec.strategy!r}; "
                             f"valid strategies: {', '.join(sorted(STRATEGIES))}")
    _validate(weights, mask, infos)
    return strategy(spec, weights, mask, infos, generator)


def _validate(weights: Mapping[str, torch.Tensor], mask: Mask, infos: Mapping[str, WeightInfo]) -> None:
    untagged = [n for n in mask if n not in infos]
    if untagged:
        raise TicketlabError(f"prune: no WeightInfo for masked tensors {untagged}")
    unprunable = [n for n in mask if not infos[n].prunable]
    if unprunable:
        raise TicketlabError(f"prune: the mask holds unprunable tensors {unprunable}; "
                             "build it from the model's prunable weights only")
    missing = [n for n in mask if n not in weights]
    if missing:
        raise TicketlabError(f"prune: no weights given for masked tensors {missing}")
    wrong = [n for n in mask if tuple(weights[n].shape) != tuple(mask[n].shape)]
    if wrong:
        raise TicketlabError(f"prune: mask and weight shapes differ for {wrong}; "
                             "the mask comes from a different model")
