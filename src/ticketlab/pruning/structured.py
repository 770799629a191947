"""Structured magnitude pruning ([S3] Fig 5, PROTOCOL 1.21): remove whole units, not single weights.

A unit is an output channel of a convolution (a filter: ``weight[i]``, all its input channels and taps)
or an output neuron of a fully connected layer (a row). Its score is the L1 (``pruning.structure_norm=l1``)
or L2 norm of its weights; a round removes ``round(rate * surviving units)`` of the lowest-scoring ones,
per layer at its type's rate (scope 'layer') or pooled (scope 'global', over ``pruning.global_types``),
where units of different sizes compete by their norm per weight (mean |w| for L1, RMS for L2). The
output layer's units are the classes and are never removed.

The seeds leave every detail of [S3]'s structured pruning open (unit, score, ranking, what happens to
the survivors, grids), so these are decisions, recorded in the README; results made with them are not
reproductions of [S3] Fig 5. Masks cover weights only, as everywhere here: a removed unit's bias (and
BN affine parameters) still train, so it outputs a constant, not zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import torch

from ticketlab import TicketlabError
from ticketlab.pruning.mask import Mask
from ticketlab.pruning.schedule import removal_count
from ticketlab.spec import PruningSpec

if TYPE_CHECKING:
    from ticketlab.models.base import WeightInfo


def unit_scores(spec: PruningSpec, weight: torch.Tensor, mask: torch.Tensor, per_weight: bool) -> torch.Tensor:
    """The norm of every unit (dim 0) of ``weight`` over its surviving weights; ``per_weight`` divides by
    the unit's size (L1: mean |w|; L2: RMS), so that units of different layers compare."""
    kept = (weight.detach() * mask).reshape(weight.shape[0], -1).abs()
    size = kept.shape[1]
    if spec.structure_norm == "l1":
        score = kept.sum(1)
        return score / size if per_weight else score
    score = kept.pow(2).sum(1).sqrt()
    return score / size ** 0.5 if per_weight else score


def prune(spec: PruningSpec, weights: Mapping[str, torch.Tensor], mask: Mask,
          infos: Mapping[str, WeightInfo], generator: torch.Generator | None = None) -> Mask:
    """The next level's mask: whole units of the lowest norm removed; ``generator`` is unused."""
    names = [n for n in mask if infos[n].kind != "output"]
    bad = [n for n in names if not bool(torch.isfinite(weights[n]).all())]
    if bad:
        raise TicketlabError(f"weights of {bad} are NaN or infinite (training diverged); "
                             "lower the learning rate or check the run before pruning")
    per_weight = spec.scope == "global"
    alive = Mask.from_tensors({n: mask[n].reshape(mask[n].shape[0], -1).any(1) for n in names})   # units with a survivor
    scores = {n: unit_scores(spec, weights[n], mask[n], per_weight) for n in names}
    if spec.scope == "layer":
        for n in names:
            alive = alive.drop_lowest({n: scores[n]}, removal_count(spec.rate_for(infos[n].kind), int(alive[n].sum())))
    else:
        pool = [n for n in names if infos[n].kind in spec.global_types]
        if pool:
            alive = alive.drop_lowest({n: scores[n] for n in pool},
                                      removal_count(spec.global_rate, sum(int(alive[n].sum()) for n in pool)))
    shape = lambda n: (-1,) + (1,) * (mask[n].dim() - 1)
    return Mask.from_tensors({n: mask[n] & alive[n].view(shape(n)) if n in alive else mask[n] for n in mask})
