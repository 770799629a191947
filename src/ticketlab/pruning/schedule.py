"""How many weights each round removes: the one home of the count rule, shared by every strategy.

A round splits the mask into pruning groups (each layer under scope='layer', one pool under
scope='global') and removes ``round(rate * survivors)`` from each group (Python's round, half to
even: the rule that reproduces [S4] Table 6 exactly, PROTOCOL 1.6 and A23). Strategies differ only
in *which* survivors go (smallest |w|, random, ...), never in how many, so ``schedule`` can predict
every count before any training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from ticketlab import TicketlabError
from ticketlab.pruning.mask import Mask
from ticketlab.spec import PruningSpec

if TYPE_CHECKING:  # only for annotations: pruning needs a tag per tensor, not the model zoo
    from ticketlab.models.base import WeightInfo


def removal_count(rate: float, remaining: int) -> int:
    """Weights a group of ``remaining`` survivors loses in one round at ``rate``."""
    if not 0.0 <= rate < 1.0:
        # PruningSpec already rejects such rates; this guards specs built around its validation.
        raise TicketlabError(f"a pruning rate must be in [0, 1), got {rate}")
    return round(rate * remaining)


def groups(spec: PruningSpec, names: Sequence[str], infos: Mapping[str, WeightInfo]) -> list[tuple[list[str], float]]:
    """The pruning groups of one round over the prunable tensors ``names``: ``[(members, rate), ...]``.

    Under scope='global', prunable tensors whose kind is not in ``spec.global_types`` form no
    group: they keep their mask.
    """
    if spec.scope == "layer":
        return [([n], spec.rate_for(infos[n].kind)) for n in names]
    pool = [n for n in names if infos[n].kind in spec.global_types]
    return [(pool, spec.global_rate)] if pool else []


def prune_round(spec: PruningSpec, mask: Mask, infos: Mapping[str, WeightInfo],
                scores: Mapping[str, torch.Tensor], keep_ties: bool = False) -> Mask:
    """One round: from each group remove the rule's count of survivors with the lowest ``scores``
    (with ``keep_ties``, fewer: those tied with the lowest survivor stay)."""
    counts = mask.layer_counts()
    for members, rate in groups(spec, list(mask), infos):
        survivors = sum(counts[n] for n in members)
        mask = mask.drop_lowest({n: scores[n] for n in members}, removal_count(rate, survivors), keep_ties=keep_ties)
    return mask


def schedule(shapes: Mapping[str, Sequence[int]], infos: Mapping[str, WeightInfo],
             spec: PruningSpec, levels: int) -> list[dict]:
    """Predicted counts for levels 0..``levels``, without training (``ticketlab schedule``).

    Each row: ``{"level", "weights_remaining", "pm", "layers"}``; ``pm`` is a percent whose
    denominator is every weight tensor in ``infos``, unprunable ones included (PROTOCOL 1.1).
    Under scope='layer' every layer's count is exact. Under scope='global' only the pool's total
    is fixed by the rule (how it splits over layers depends on the weights), so pooled layers
    read ``None`` and the row adds ``"pool_remaining"``. Shapes of non-weights (biases, BN)
    are ignored. Under strategy='structured' whole units (dim 0) go, so a layer keeps its surviving
    units times the unit's size (the output layer keeps all); pooled over layers, units differ in
    size and only the weights decide, so those rows read ``None`` for the counts.
    """
    if spec.strategy == "structured":
        return _structured_schedule(shapes, infos, spec, levels)
    missing = [n for n in infos if n not in shapes]
    if missing:
        raise TicketlabError(f"schedule: no shape given for weight tensors {missing}")
    if levels < 0:
        raise TicketlabError(f"schedule: levels must be >= 0, got {levels}")
    sizes = {n: _numel(shapes[n]) for n in infos}
    total = sum(sizes.values())
    prunable = [n for n in infos if infos[n].prunable]
    group_list = groups(spec, prunable, infos)
    pooled = set(group_list[0][0]) if spec.scope == "global" and group_list else set()

    remaining = dict(sizes)
    pool_remaining = sum(sizes[n] for n in pooled)
    rows = []
    for level in range(levels + 1):
        if level > 0:
            if spec.scope == "layer":
                for members, rate in group_list:
                    (name,) = members
                    remaining[name] -= removal_count(rate, remaining[name])
            elif pooled:
                pool_remaining -= removal_count(spec.global_rate, pool_remaining)
        kept = pool_remaining + sum(remaining[n] for n in infos if n not in pooled)
        row = {"level": level, "weights_remaining": kept, "pm": 100.0 * kept / total if total else 100.0,
               "layers": {n: (None if n in pooled else remaining[n]) for n in infos}}
        if spec.scope == "global":
            row["pool_remaining"] = pool_remaining
        rows.append(row)
    return rows


def _structured_schedule(shapes: Mapping[str, Sequence[int]], infos: Mapping[str, WeightInfo],
                         spec: PruningSpec, levels: int) -> list[dict]:
    sizes = {n: _numel(shapes[n]) for n in infos}
    total = sum(sizes.values())
    units = {n: int(shapes[n][0]) for n in infos if infos[n].prunable and infos[n].kind != "output"}
    pooled = {n for n in units if infos[n].kind in spec.global_types} if spec.scope == "global" else set()
    rows = []
    for level in range(levels + 1):
        if level > 0 and spec.scope == "layer":
            units = {n: u - removal_count(spec.rate_for(infos[n].kind), u) for n, u in units.items()}
        unknown = level > 0 and bool(pooled)
        layers = {n: None if unknown and n in pooled else
                  (units[n] * (sizes[n] // int(shapes[n][0])) if n in units else sizes[n]) for n in infos}
        kept = None if unknown else sum(layers.values())
        row = {"level": level, "weights_remaining": kept, "pm": None if kept is None else 100.0 * kept / total,
               "layers": layers}
        if spec.scope == "global":
            row["pool_remaining"] = None if unknown else sum(sizes[n] for n in pooled)
        rows.append(row)
    return rows


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
