"""Branches: what a level trains besides its IMP job. Each control is one short function returning
a ``Branch`` (a mask, the weights to start from, the hyperparameters); the runner trains them all
through the same job code, so none copies the loop. Which branches a level has, and their names, is
lottery/plan.py's (``control_names``, ``at_init_names``, re-exported here); this module builds them.

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
from ticketlab.lottery.plan import at_init_names, control_names, needs_ticket, ticket_levels_start  # noqa: F401 (names)
from ticketlab.pruning import Mask, prune, random_like
from ticketlab.pruning.snip import iterative_snip_mask, snip_mask
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
    schedule: tuple[Mask, ...]        # the ticket's masks of levels 1..level (one-shot: the mask itself)
    train_x: torch.Tensor             # the training split, for SNIP's mini-batches
    train_y: torch.Tensor


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


def snip_batch(exp: LotteryExperimentSpec, ctx: LevelContext, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SNIP mini-batch ``i`` of a trial: ``snip_batch`` training examples drawn without replacement by a
    seeded permutation. Batch 0 scores every level's SNIP, so one trial's SNIP masks share one batch."""
    size = exp.lottery.snip_batch or ctx.eval_spec.training.batch_size
    generator = torch.Generator().manual_seed(_seed("snip_batch", ctx.seed, ctx.trial, i))
    idx = torch.randperm(len(ctx.train_x), generator=generator)[:size].to(ctx.train_x.device)
    return ctx.train_x[idx], ctx.train_y[idx]


def _saliency_model(ctx: LevelContext):
    return models.build(ctx.eval_spec.model, ctx.input_shape, ctx.num_classes).to(ctx.train_x.device)


def snip(exp: LotteryExperimentSpec, ctx: LevelContext) -> Branch:
    """[S4] SNIP: keep theta_0's most sensitive connections at the ticket's counts (per layer or in total),
    then train from the ticket's own theta_0."""
    full = Mask.ones({n: m.shape for n, m in ctx.mask.items()})
    x, y = snip_batch(exp, ctx, 0)
    match = {"counts": ctx.mask.layer_counts()} if exp.lottery.snip == "layer" else {"total": ctx.mask.count()}
    mask = snip_mask(_saliency_model(ctx), ctx.theta0, full, x, y, **match)
    return Branch("snip", ctx.eval_spec, mask, ctx.theta0)


def iterative_snip(exp: LotteryExperimentSpec, ctx: LevelContext) -> Branch:
    """[S4] iterative SNIP: before training, prune step by step to the ticket's counts at levels 1..k,
    rescoring the masked network each step (on a new mini-batch unless snip_fresh_batches=false)."""
    full = Mask.ones({n: m.shape for n, m in ctx.mask.items()})
    steps = len(ctx.schedule)
    batches = [snip_batch(exp, ctx, i if exp.lottery.snip_fresh_batches else 0) for i in range(steps)]
    if exp.lottery.iterative_snip == "layer":
        match = {"counts_schedule": [m.layer_counts() for m in ctx.schedule]}
    else:
        match = {"totals_schedule": [m.count() for m in ctx.schedule]}
    mask = iterative_snip_mask(_saliency_model(ctx), ctx.theta0, full, batches, **match)
    return Branch("isnip", ctx.eval_spec, mask, ctx.theta0)


def at_init(exp: LotteryExperimentSpec, ctx: LevelContext) -> list[Branch]:
    """The pruning-at-initialisation branches ([S4]) this level asks for (one-shot contexts: all)."""
    build = {"snip": snip, "isnip": iterative_snip}
    return [build[name](exp, ctx) for name in at_init_names(exp, ctx.level)]


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
