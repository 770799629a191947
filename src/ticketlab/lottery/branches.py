"""Branches: what a level trains besides its IMP job. Each control is one short function returning
a ``Branch`` (a mask, the weights to start from, the hyperparameters); the runner trains them all
through the same job code, so none copies the loop.

Decisions (PROTOCOL A13, A14): random-mask controls sample an independent mask per level with the
ticket's exact per-layer counts ('preserve_lpr' = 'per_layer') or its total count ('global'), and start
from a fresh Glorot init unless lottery.random_init=theta0; reinit from D_m permutes each layer's
surviving init values (sampling without replacement); pruning at iteration 0 iterates magnitude pruning
of theta_0 level by level with the same rates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ticketlab import models
from ticketlab.data import stable_seed
from ticketlab.pruning import Mask, prune, random_like
from ticketlab.spec import LotteryExperimentSpec, PruningSpec, TrainSpec


@dataclass(frozen=True)
class Branch:
    name: str
    spec: TrainSpec                  # hyperparameters of this job (seeds included)
    mask: Mask
    init: dict[str, torch.Tensor]    # the state the job starts from (masked by the job)
    start_step: int = 0


@dataclass(frozen=True)
class LevelContext:
    """What the controls of one level need to know."""

    seed: int
    trial: int
    level: int
    mask: Mask                        # the ticket's mask at this level
    theta0: dict[str, torch.Tensor]   # the trial's initialisation
    eval_spec: TrainSpec              # hyperparameters the controls train with
    infos: dict
    init_std: dict[str, float]
    input_shape: tuple
    num_classes: int
    pruning: PruningSpec              # the rule that produced the ticket's mask ...
    rounds: int                       # ... applied this many times (the level; 1 for one-shot)


def _seed(*parts) -> int:
    return stable_seed(*parts) % (2 ** 31)


def fresh_init(spec: TrainSpec, input_shape, num_classes, seed: int) -> tuple[TrainSpec, dict]:
    """A new draw from the model's init distribution D_theta, and the spec that records its seed."""
    spec = replace(spec, model=replace(spec.model, init_seed=seed))
    return spec, models.build(spec.model, input_shape, num_classes).state_dict()


def reinit(exp: LotteryExperimentSpec, ctx: LevelContext, i: int) -> Branch:
    """[S1] random reinitialisation: the ticket's mask, a fresh theta_0' ~ D_theta."""
    spec, init = fresh_init(ctx.eval_spec, ctx.input_shape, ctx.num_classes, _seed("reinit", ctx.seed, ctx.trial, ctx.level, i))
    return Branch(f"reinit_{i}", spec, ctx.mask, init)


def random_mask(exp: LotteryExperimentSpec, ctx: LevelContext, mode: str, i: int) -> Branch:
    """Random sparsity at the ticket's counts ('global' or per layer); fresh init unless random_init=theta0."""
    generator = torch.Generator().manual_seed(_seed("random_mask", mode, ctx.seed, ctx.trial, ctx.level, i))
    mask = random_like(Mask.ones({n: m.shape for n, m in ctx.mask.items()}), generator, mode=mode, reference=ctx.mask)
    spec, init = ctx.eval_spec, ctx.theta0
    if exp.lottery.random_init == "fresh":
        spec, init = fresh_init(spec, ctx.input_shape, ctx.num_classes, _seed("random_init", mode, ctx.seed, ctx.trial, ctx.level, i))
    return Branch(f"random_{mode}_{i}", spec, mask, init)


def dm_reinit(exp: LotteryExperimentSpec, ctx: LevelContext, i: int) -> Branch:
    """[S1] F.3: each layer's surviving weights get a permutation of that layer's surviving theta_0 values."""
    generator = torch.Generator().manual_seed(_seed("dm_reinit", ctx.seed, ctx.trial, ctx.level, i))
    init = {k: v.clone() for k, v in ctx.theta0.items()}
    for name, m in ctx.mask.items():
        flat = init[name].view(-1)
        kept = m.view(-1).nonzero().squeeze(1)
        flat[kept] = flat[kept][torch.randperm(len(kept), generator=generator)]
    return Branch(f"dm_reinit_{i}", ctx.eval_spec, ctx.mask, init)


def noise(exp: LotteryExperimentSpec, ctx: LevelContext, c: float) -> Branch:
    """[S1] F.7: theta_0 + N(0, (c * sigma_l)^2) per layer, sigma_l the std of the layer's init distribution."""
    generator = torch.Generator().manual_seed(_seed("noise", c, ctx.seed, ctx.trial, ctx.level))
    init = {k: v.clone() for k, v in ctx.theta0.items()}
    for name in ctx.mask:
        init[name] += c * ctx.init_std[name] * torch.randn(init[name].shape, generator=generator)
    return Branch(f"noise_{c:g}", ctx.eval_spec, ctx.mask, init)


def prune_at_init(exp: LotteryExperimentSpec, ctx: LevelContext) -> Branch:
    """[S1] F.4: magnitude-prune |theta_0| round after round (no training), keep theta_0, train."""
    mask = Mask.ones({n: m.shape for n, m in ctx.mask.items()})
    weights = {n: ctx.theta0[n] for n in mask}
    for _ in range(ctx.rounds):
        mask = prune(ctx.pruning, weights, mask, ctx.infos)
    return Branch("prune_at_init", ctx.eval_spec, mask, ctx.theta0)


def controls(exp: LotteryExperimentSpec, ctx: LevelContext) -> list[Branch]:
    """Every control branch the experiment asks for at this level."""
    lot = exp.lottery
    branches = [reinit(exp, ctx, i) for i in range(lot.reinits)]
    for mode in lot.random_controls:
        branches += [random_mask(exp, ctx, mode, i) for i in range(lot.random_trials)]
    branches += [dm_reinit(exp, ctx, i) for i in range(lot.dm_reinits)]
    branches += [noise(exp, ctx, c) for c in lot.noise]
    if lot.prune_at_init:
        branches.append(prune_at_init(exp, ctx))
    return branches
