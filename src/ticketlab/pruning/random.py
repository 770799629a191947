"""Random pruning and random-mask controls (PROTOCOL 1.11, §6 A13).

``prune`` removes the same *number* of weights per group as magnitude pruning would (scope
'layer': per-layer counts at the per-type rates; scope 'global': [S3] "global random" over the
pool), choosing uniformly at random. ``random_like`` builds a random mask matching a reference
mask's counts, per layer ([S3] "preserve LPR") or in total.

Randomness comes only from the caller's ``torch.Generator``, so a seed fixes the mask. Ranking by a
random permutation (rather than by torch.rand, which ties at 2^-24 resolution on large layers)
makes every k-subset of the survivors exactly equally likely.
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

MODES = ("per_layer", "preserve_lpr", "global")


def prune(spec: PruningSpec, weights: Mapping[str, torch.Tensor], mask: Mask,
          infos: Mapping[str, WeightInfo], generator: torch.Generator | None = None) -> Mask:
    """Remove the rule's count of survivors from each group, chosen uniformly; ``weights`` is unused."""
    return prune_round(spec, mask, infos, _random_scores(mask, _require(generator, "random pruning")))


def random_like(mask: Mask, generator: torch.Generator, *, mode: str, reference: Mask) -> Mask:
    """A random mask inside ``mask``'s kept positions with ``reference``'s counts.

    ``mask`` gives the candidate positions (``Mask.ones`` for a fresh mask; a previous random mask
    for nested ones). mode 'per_layer' (= 'preserve_lpr'): each layer keeps exactly
    ``reference.layer_counts()[name]`` positions, uniformly chosen. mode 'global': exactly
    ``reference.count()`` positions uniformly over all layers, so layer densities come out ≈ equal.
    """
    if mode not in MODES:
        raise TicketlabError(f"unknown random mask mode {mode!r}; valid modes: {', '.join(MODES)}")
    if set(mask) != set(reference) or any(mask[n].shape != reference[n].shape for n in mask):
        raise TicketlabError("random_like: mask and reference cover different tensors or shapes; "
                             "both must come from the same model")
    scores = _random_scores(mask, _require(generator, "random_like"))
    have, want = mask.layer_counts(), reference.layer_counts()
    if mode == "global":
        excess = sum(have.values()) - sum(want.values())
        if excess < 0:
            raise TicketlabError(f"random_like: reference keeps {sum(want.values())} weights "
                                 f"but only {sum(have.values())} positions are candidates")
        return mask.drop_lowest(scores, excess)
    for name in mask:
        if want[name] > have[name]:
            raise TicketlabError(f"random_like: reference keeps {want[name]} weights in {name} "
                                 f"but only {have[name]} positions are candidates")
        mask = mask.drop_lowest({name: scores[name]}, have[name] - want[name])
    return mask


def _random_scores(mask: Mask, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One permutation over all positions, split per tensor: a uniform ranking within any subset."""
    perm = torch.randperm(mask.size(), generator=generator, device=generator.device)
    scores, start = {}, 0
    for name, m in mask.items():
        scores[name] = perm[start:start + m.numel()].view(m.shape)
        start += m.numel()
    return scores


def _require(generator: torch.Generator | None, what: str) -> torch.Generator:
    if generator is None:
        raise TicketlabError(f"{what} needs a torch.Generator (seed it from the run's spec)")
    return generator
