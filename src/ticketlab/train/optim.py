"""Optimizers and learning-rate schedules.

Fused optimizer kernels are used wherever torch has them: besides being faster, the default CPU
Adam calls sqrt on exactly-zero second moments (every pruned weight) and that path is much slower
in this torch build (docs/speed.md); the fused kernel does not have the problem.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from ticketlab import TicketlabError
from ticketlab.spec import TrainingSpec


def build_optimizer(spec: TrainingSpec, params: Iterable[torch.nn.Parameter], device: torch.device) -> torch.optim.Optimizer:
    """The optimizer of ``spec``. Coupled weight decay adds wd*theta to the gradient (PyTorch style);
    decoupled weight decay is AdamW for Adam and applied by ``decoupled_decay`` for SGD."""
    params = list(params)
    fused = device.type in ("cpu", "cuda")
    if spec.optimizer == "adam":
        cls = torch.optim.AdamW if spec.decoupled_weight_decay else torch.optim.Adam
        return cls(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay, fused=fused)
    coupled = 0.0 if spec.decoupled_weight_decay else spec.weight_decay
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=coupled, fused=fused)


@torch.no_grad()
def decoupled_decay(spec: TrainingSpec, params: Iterable[torch.nn.Parameter], lr: float) -> None:
    """SGDW-style decay theta <- theta * (1 - lr * wd), applied before the step (AdamW does its own)."""
    if spec.optimizer == "sgd" and spec.decoupled_weight_decay and spec.weight_decay:
        factor = 1.0 - lr * spec.weight_decay
        for p in params:
            p.mul_(factor)


class Schedule:
    """lr(step) for a run of ``total`` iterations: linear warmup from 0 over ``warmup`` iterations,
    then constant, step decay (x gamma at each milestone) or cosine decay to 0.

    Step decay multiplies the *base* lr, so a milestone inside the warmup still applies to the
    warmed-up value (PROTOCOL A11: Resnet-18's 20K warmup ends exactly at its first drop).

    With ``schedule_start`` s > 0 the lr is the constant base before step s, and the warmup and the
    decay run on the steps after it, as if a run of ``total - s`` iterations began there: [S0]'s 16K
    constant-lr phase before each cycle's warmup + cosine over 48K (milestones stay absolute steps)."""

    def __init__(self, spec: TrainingSpec, iterations_per_epoch: int, total: int):
        self.base = spec.lr
        self.kind = spec.schedule
        self.gamma = spec.gamma
        self.start = spec.schedule_start.iterations(iterations_per_epoch)
        self.warmup = spec.warmup.iterations(iterations_per_epoch)
        self.milestones = sorted(m.iterations(iterations_per_epoch) for m in spec.milestones)
        self.total = total
        if self.start and self.start >= total:
            raise TicketlabError(f"training.schedule_start ({self.start} iterations) must come before the end of "
                                 f"training ({total}): lower it or raise training.steps")

    def __call__(self, step: int) -> float:
        lr = self.base
        if step < self.start:
            return lr
        if self.kind == "step":
            lr *= self.gamma ** sum(step >= m for m in self.milestones)
        local = step - self.start
        if self.kind == "cosine":
            span = max(self.total - self.start - self.warmup, 1)
            progress = min(max(local - self.warmup, 0) / span, 1.0)
            lr *= 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.warmup and local < self.warmup:
            lr *= local / self.warmup
        return lr
