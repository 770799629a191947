"""Magnitude pruning ([S1] §1, PROTOCOL 1.2, 1.4): remove the surviving weights with the smallest |w|.

Scope 'layer' prunes each layer at its type's rate; scope 'global' pools the tensors of
``spec.global_types`` and ranks them together. Ties go to the lower position (stable sort), so the
mask is a deterministic function of the weights; ``pruning.ties=keep`` instead keeps all weights tied
with the last survivor, on [EXT-a]'s float32 score (|w| + 1) - 1, as [S0]'s counts show.
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
    if spec.ties == "keep":
        # [EXT-a]'s score: adding 1 in float32 rounds |w| to multiples of 2**-23 near 0, so small weights
        # tie, and every weight tied with the last survivor stays (PROTOCOL A17: [S0]'s +16..+162)
        scores = {name: (s.float() + 1) - 1 for name, s in scores.items()}
    return prune_round(spec, mask, infos, scores, keep_ties=spec.ties == "keep")


def prune_to_counts(weights: Mapping[str, torch.Tensor], mask: Mask, counts: Mapping[str, int]) -> Mask:
    """Within each layer, keep the ``counts[layer]`` surviving weights of largest |w| ([S3]'s
    LPR-constrained masks, PROTOCOL 1.20: another mask's layer-wise pruning ratio, this run's weights)."""
    if set(counts) != set(mask):
        raise TicketlabError(f"prune_to_counts: counts for {sorted(counts)}, mask over {sorted(mask)}")
    have = mask.layer_counts()
    grow = {n: (counts[n], have[n]) for n in mask if not 0 <= counts[n] <= have[n]}
    if grow:
        raise TicketlabError(f"prune_to_counts: target counts outside 0..survivors for {grow} (target, survivors); "
                             "a pruned weight is never revived")
    for name in mask:
        score = weights[name].detach().abs()
        if not bool(torch.isfinite(score).all()):
            raise TicketlabError(f"weights of {name} are NaN or infinite (training diverged); "
                                 "lower the learning rate or check the run before pruning")
        mask = mask.drop_lowest({name: score}, have[name] - counts[name])
    return mask
