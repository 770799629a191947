"""Magnitude pruning ([S1] §1, PROTOCOL 1.2, 1.4): remove the surviving weights with the smallest |w|.

Scope 'layer' prunes each layer at its type's rate; scope 'global' pools the tensors of
``spec.global_types`` and ranks them together. Ties go to the lower position (stable sort), so the
mask is a deterministic function of the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from ticketlab import TicketlabError
from ticketlab.pruning.mask import Mask
from ticketlab.pruning.schedule import prune_round
from ticketlab.spec import PruningSpec

if TYPE_CHECKING:
    from ticketlab.models.base import WeightInfo


def prune(spec: PruningSpec, weights: Mapping[str, torch.Tensor], mask: Mask,
          infos: Mapping[str, WeightInfo], generator: torch.Generator | None = None) -> Mask:
    """The next level's mask from the trained weights; ``generator`` is unused."""
    scores = {name: weights[name].detach().abs() for name in mask}
    bad = [name for name, s in scores.items() if not bool(torch.isfinite(s).all())]
    if bad:
        # NaN sorts as largest and would silently survive; a diverged run has no meaningful ticket.
        raise TicketlabError(f"weights of {bad} are NaN or infinite (training diverged); "
                             "lower the learning rate or check the run before pruning")
    return prune_round(spec, mask, infos, scores)
