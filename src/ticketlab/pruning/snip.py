"""SNIP: prune at initialization by connection sensitivity (PROTOCOL 1.15, 1.16; Lee et al. 2018, [S4] §4.3-4.4).

The network computes with ``c ⊙ m ⊙ θ``; the saliency of weight j is ``|∂L/∂c_j|`` at c = 1, with L
the mean cross-entropy on one mini-batch. That equals ``|θ_j · ∂L/∂θ_j|`` on the masked network, so
one backward pass gives every score, and a pruned weight scores 0 (its value never reaches L).
Scores are not divided by Σ|g| ([S4]'s s_j): a positive constant changes no ranking.

``snip_mask`` keeps the highest scores either per layer (``counts``: match an LTH mask layer by
layer) or over all prunable tensors together (``total``: match in total, as the original SNIP
ranks globally); PROTOCOL 1.15 leaves the choice open, so both exist. ``iterative_snip_mask``
prunes along a schedule, recomputing the scores on the currently masked network each step.

The forward pass runs in eval mode, as in Lee et al.'s released code (``is_train: False`` in
``snip/prune.py``): dropout is off, so a mask is a deterministic function of (θ, mask, batch), and
batch norm uses its running statistics and updates nothing. Ties are broken as ``Mask.drop_lowest``
does: among equal scores the lower flat index (and, when ranking globally, the earlier tensor)
goes first.
"""

from __future__ import annotations

import numbers
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ticketlab import TicketlabError
from ticketlab.pruning.mask import Mask

Batch = tuple[torch.Tensor, torch.Tensor]


def saliency(model: nn.Module, state: Mapping[str, torch.Tensor], mask: Mask,
             x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``|∂L/∂c_j|`` at c = 1 for every weight in ``mask`` (= the model's prunable weights).

    ``state`` is a full state_dict for ``model`` (e.g. θ0); the pass runs on copies of it on
    ``x.device`` through ``torch.func.functional_call``, so neither ``state`` nor the model's own
    parameters, gradients or buffers change (the model's train/eval flags are restored after).
    Pruned positions score exactly 0, whatever their value in ``state``.
    """
    _check_model(model, state, mask)
    params = {name: t.detach().to(x.device, copy=True) for name, t in state.items()}
    weights = {}
    for name, m in mask.items():
        # masked_fill, not a multiply: a pruned inf/NaN must not leak into the loss as NaN
        weights[name] = params[name].masked_fill(~m.to(x.device), 0).requires_grad_()
    params.update(weights)

    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(functional_call(model, params, (x,)), y)
            grads = torch.autograd.grad(loss, list(weights.values()))
    finally:
        for module, training in modes.items():
            module.training = training
    return {name: (g * w.detach()).abs().masked_fill_(~mask[name].to(g.device), 0)
            for (name, w), g in zip(weights.items(), grads)}


def snip_mask(model: nn.Module, state: Mapping[str, torch.Tensor], mask: Mask,
              x: torch.Tensor, y: torch.Tensor, *,
              counts: Mapping[str, int] | None = None, total: int | None = None) -> Mask:
    """Keep the highest-saliency weights inside ``mask``: exactly ``counts[name]`` per tensor, or
    exactly ``total`` over all tensors ranked together. Give exactly one of the two.

    The result is a subset of ``mask`` (pruned positions are never candidates, so never revived).
    """
    if (counts is None) == (total is None):
        raise TicketlabError("snip_mask: give exactly one of counts (match per layer) and total (match in total)")
    drops = (_layer_drops(mask.layer_counts(), counts) if counts is not None
             else _total_drop(mask.count(), total))
    scores = saliency(model, state, mask, x, y)
    bad = [n for n, s in scores.items() if not bool(torch.isfinite(s).all())]
    if bad:
        # NaN sorts as largest and would silently survive; scores this broken rank nothing.
        raise TicketlabError(f"snip_mask: saliency of {bad} is NaN or infinite; check the weights in "
                             "state and the batch (a loss that overflows gives no ranking)")
    if isinstance(drops, int):
        return mask.drop_lowest(scores, drops)
    for name, n in drops.items():
        mask = mask.drop_lowest({name: scores[name]}, n)
    return mask


def iterative_snip_mask(model: nn.Module, state: Mapping[str, torch.Tensor], mask: Mask,
                        batches: Sequence[Batch], *,
                        counts_schedule: Sequence[Mapping[str, int]] | None = None,
                        totals_schedule: Sequence[int] | None = None) -> Mask:
    """Iterative SNIP ([S4] §4.4, PROTOCOL 1.16): prune step by step to each target of a schedule.

    Give exactly one schedule: per-tensor kept counts (``counts_schedule``) or kept totals
    (``totals_schedule``), non-increasing step to step. Step i scores the network masked by step
    i-1's result with ``batches[i]`` (the last batch once the list runs out, so one batch is reused
    by every step; a fresh batch per step is the caller's choice), then keeps that step's target.
    Each step's mask is a subset of the previous one; the last is returned.
    """
    if (counts_schedule is None) == (totals_schedule is None):
        raise TicketlabError("iterative_snip_mask: give exactly one of counts_schedule and totals_schedule")
    per_layer = counts_schedule is not None
    steps = list(counts_schedule if per_layer else totals_schedule)
    if not steps:
        raise TicketlabError("iterative_snip_mask: the schedule is empty")
    if isinstance(batches, torch.Tensor) or not batches or isinstance(batches[0], torch.Tensor):
        raise TicketlabError("iterative_snip_mask: batches must be a non-empty sequence of (x, y) pairs")
    if len(batches) > len(steps):
        raise TicketlabError(f"iterative_snip_mask: {len(batches)} batches for {len(steps)} steps; "
                             "the extra batches would never be used")
    # Check the whole schedule before any pass: a bad last step should not waste the others.
    previous = mask.layer_counts() if per_layer else mask.count()
    for i, target in enumerate(steps):
        try:
            (_layer_drops if per_layer else _total_drop)(previous, target)
        except TicketlabError as exc:
            raise TicketlabError(f"iterative_snip_mask step {i}: {exc} (a schedule must not increase)") from None
        previous = target
    for i, target in enumerate(steps):
        x, y = batches[min(i, len(batches) - 1)]
        target_kw = {"counts": target} if per_layer else {"total": target}
        mask = snip_mask(model, state, mask, x, y, **target_kw)
    return mask


# ---------------------------------------------------------------------- helpers

def _layer_drops(have: Mapping[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    """Per-tensor removals to go from ``have`` kept weights to ``counts``."""
    if set(counts) != set(have):
        raise TicketlabError(f"counts must name exactly the mask's tensors; missing "
                             f"{sorted(set(have) - set(counts))}, unknown {sorted(set(counts) - set(have))}")
    bad = {n: c for n, c in counts.items() if not _is_count(c) or not 0 <= c <= have[n]}
    if bad:
        raise TicketlabError("each count must be an int between 0 and the weights the mask keeps in that "
                             "tensor; got " + ", ".join(f"{n}: {c!r} of {have[n]}" for n, c in bad.items()))
    return {n: have[n] - int(counts[n]) for n in have}


def _total_drop(available: int, total: int) -> int:
    if not _is_count(total) or not 0 <= total <= available:
        raise TicketlabError(f"total must be an int between 0 and the {available} weights the mask keeps, "
                             f"got {total!r}")
    return available - int(total)


def _is_count(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_model(model: nn.Module, state: Mapping[str, torch.Tensor], mask: Mask) -> None:
    prunable = model.prunable_weights()
    if set(mask) != set(prunable):
        raise TicketlabError(f"SNIP: the mask must cover exactly the model's prunable weights; missing "
                             f"{sorted(set(prunable) - set(mask))}, unknown {sorted(set(mask) - set(prunable))}")
    expected = model.state_dict()
    if set(state) != set(expected):
        raise TicketlabError(f"SNIP: state does not match the model; missing {sorted(set(expected) - set(state))}, "
                             f"unexpected {sorted(set(state) - set(expected))}")
    wrong = [n for n in expected if tuple(state[n].shape) != tuple(expected[n].shape)]
    wrong += [n for n in mask if tuple(mask[n].shape) != tuple(expected[n].shape) and n not in wrong]
    if wrong:
        raise TicketlabError(f"SNIP: shapes of {wrong} differ between the model, state and mask; "
                             "all three must come from the same model")
