"""An experiment's jobs, computed from its spec alone: the one plan the runner, ``status`` (and with it
``ticketlab lottery --dry-run``), ``--estimate`` and ``verify`` read.

This module says WHAT is trained: each job's trial, level, branch name, kind, folder (store/layout.py),
hyperparameters, start step, the jobs whose files it reads, and the round in which the runner trains it
together with the other jobs of that round. It touches no tensor and no file; the runner decides HOW
(masks, initial states and controls, from those files, when the round comes: runner.py, branches.py).

Rounds. The batched engine places a round's jobs into its batches in the order listed here, and a
model's bits depend on its slot in the stack, so the rounds are part of the results:

    round k (0 <= k <= L)   per trial, in trial order: [level k 'main', *level k-1's branches]
    round L + 1             per trial: [*level L's branches, *the one-shot jobs]
    LTH_flip chains         the chain of level s's ticket trains its level j in round s + 1 + j, after
                            the trials' jobs of that round, the chains ordered by s, then by trial

A level's branches are its 'ticket' (``needs_ticket``; from level ``ticket_levels_start``), then at
levels >= 1 the controls (``control_names``, at ``lottery.control_levels``) and the pruning-at-
initialisation branches (``at_init_names``). Level k's branches need only level k-1's IMP job (their
mask) and level 0's (theta_0, the rewind point), yet train a round later, beside level k+1's IMP job:
that is the order experiments have been trained in, so it stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import groupby

from ticketlab.spec import LotteryExperimentSpec, TrainSpec
from ticketlab.steps import Step
from ticketlab.store import layout

MAIN = "main"          # the IMP job of a level (and of a flip level); a one-shot fraction's ticket
TICKET = "ticket"


@dataclass(frozen=True)
class Job:
    """One planned training job of a lottery experiment."""

    path: str                  # relative to the experiment folder: trial_0/level_3/reinit_1
    trial: int
    level: int                 # the IMP level; in an LTH_flip chain its own level; one-shot: 0
    branch: str                # main, ticket, reinit_0, random_global_0, snip, ...
    kind: str = "lottery"      # lottery, flip, oneshot
    spec: TrainSpec | None = None   # find (IMP chain) or eval hyperparameters; controls that draw a fresh
                                    # init record their own init seed on top (branches.py)
    start: Step = Step(0)      # where training starts: lottery.rewind for rewound jobs, else step 0
    needs: tuple[str, ...] = ()     # paths of the jobs whose files it reads (mask source, theta_0, ...)
    round: int = 0             # the runner's round (see the module's docstring)
    oneshot: float | None = None    # one-shot jobs: the pruned fraction
    flip: int | None = None         # LTH_flip chains: the level whose ticket was flipped


# ---------------------------------------------------------------------------------------------------
# Branch names (branches.py builds them, in the same order)

def needs_ticket(exp: LotteryExperimentSpec) -> bool:
    """Whether levels >= 1 train a 'ticket' branch beside the IMP job: when the IMP job is not the ticket
    (mode=continue), or the ticket trains with other hyperparameters than it was found with (eval.*)."""
    return exp.lottery.mode == "continue" or (exp.eval is not None and exp.eval != exp.training)


def ticket_levels_start(exp: LotteryExperimentSpec) -> int:
    """The first level with a 'ticket' branch (when ``needs_ticket``): 0 when the tickets train with other
    hyperparameters than the IMP runs, so that the dense network is also trained with them ([S3]: the
    0%-pruned point of an H_eval curve); 1 otherwise (mode=continue: level 0's IMP run is the dense network)."""
    return 0 if exp.eval is not None and exp.eval != exp.training else 1


def control_names(exp: LotteryExperimentSpec) -> list[str]:
    """Names of the control branches of a level, in the order ``branches.controls`` builds them."""
    lot = exp.lottery
    names = [f"reinit_{i}" for i in range(lot.reinits)]
    names += [f"random_{mode}_{i}" for mode in lot.random_controls for i in range(lot.random_trials)]
    names += [f"dm_reinit_{i}" for i in range(lot.dm_reinits)]
    names += [f"noise_{c:g}" for c in lot.noise]
    return names + (["prune_at_init"] if lot.prune_at_init else [])


def at_init_names(exp: LotteryExperimentSpec, level: int) -> list[str]:
    """Names of the pruning-at-initialisation branches of a level (0: a one-shot context, all of them)."""
    lot, names = exp.lottery, []
    if lot.snip and (not lot.snip_levels or level in lot.snip_levels or level == 0):
        names.append("snip")
    if lot.iterative_snip and (not lot.iterative_snip_levels or level in lot.iterative_snip_levels or level == 0):
        names.append("isnip")
    return names


def level_branches(exp: LotteryExperimentSpec, level: int) -> list[str]:
    """The branches level ``level`` of the IMP chain trains besides its IMP job, in the runner's order."""
    lot = exp.lottery
    names = [TICKET] if needs_ticket(exp) and level >= ticket_levels_start(exp) else []
    if level > 0:
        names += control_names(exp) if not lot.control_levels or level in lot.control_levels else []
        names += at_init_names(exp, level)
    return names


def oneshot_branches(exp: LotteryExperimentSpec) -> list[str]:
    """The jobs of one one-shot fraction: its ticket ('main'), the controls and every at-init branch."""
    return [MAIN, *control_names(exp), *at_init_names(exp, 0)]


# ---------------------------------------------------------------------------------------------------
# The plan

def jobs(exp: LotteryExperimentSpec, trials: list[int] | None = None, *,
         iterations_per_epoch: int | None = None) -> list[Job]:
    """Every job of ``trials`` of ``exp`` (default: all), in the order the runner trains them: by round,
    and within a round in the order its batches take them.

    ``iterations_per_epoch`` (the training split's batches per epoch; the runner passes its data's) turns a
    rewind point given in epochs into the iteration the dense run keeps a checkpoint at; without it that
    checkpoint is recorded in epochs, which names the same step."""
    lot = exp.lottery
    trials = list(range(lot.trials)) if trials is None else list(trials)
    chains = [job for trial in trials for job in _trial_jobs(exp, trial, iterations_per_epoch)]
    flips = [job for source in sorted(set(lot.flip_levels)) for trial in trials for job in _flip_jobs(exp, trial, source)]
    return sorted(chains + flips, key=lambda job: job.round)   # stable: the order within a round is kept


def rounds(planned: list[Job]) -> list[list[Job]]:
    """``planned`` (from ``jobs``) cut into its rounds, the first first; rounds without jobs are left out."""
    return [list(group) for _, group in groupby(sorted(planned, key=lambda job: job.round), key=lambda job: job.round)]


def _trial_jobs(exp: LotteryExperimentSpec, trial: int, iterations_per_epoch: int | None) -> list[Job]:
    """One trial's IMP chain, its levels' branches and its one-shot jobs, in the order of its rounds."""
    lot = exp.lottery
    tdir = layout.trial_dir("", trial)
    find, evaluation = exp.train_spec(trial), exp.train_spec(trial, exp.evaluation)
    rewound = lot.rewind if lot.mode == "rewind" else Step(0)
    level0 = str(layout.level_dir(tdir, 0) / MAIN)
    mains, branches = [], []           # per level: its IMP job; the branches it trains besides
    for level in range(lot.levels + 1):
        ldir = layout.level_dir(tdir, level)
        previous = str(layout.level_dir(tdir, level - 1) / MAIN) if level > 0 else None
        if level == 0:
            mains.append(Job(str(ldir / MAIN), trial, 0, MAIN, spec=_dense_spec(exp, find, iterations_per_epoch)))
        else:
            mains.append(Job(str(ldir / MAIN), trial, level, MAIN, spec=find, start=rewound, round=level,
                             needs=_unique(previous, level0)))
        earlier = [str(layout.level_dir(tdir, k) / MAIN) for k in range(level)]   # iterative SNIP: masks 1..level
        branches.append([Job(str(ldir / name), trial, level, name, spec=evaluation,
                             start=rewound if name == TICKET else Step(0), round=level + 1,
                             needs=(_unique(*earlier, level0) if name == "isnip" else _unique(previous, level0))
                             if level else (level0,))
                         for name in level_branches(exp, level)])
    oneshot = [Job(str(layout.oneshot_dir(tdir, p) / name), trial, 0, name, "oneshot", spec=evaluation,
                   start=rewound if name == MAIN else Step(0), needs=(level0,), round=lot.levels + 1, oneshot=p)
               for p in lot.oneshot for name in oneshot_branches(exp)]
    # round k: level k's IMP job first, then level k-1's branches; the last round: level L's, the one-shot jobs
    return [job for k in range(lot.levels + 1) for job in [mains[k], *(branches[k - 1] if k else [])]] + \
        branches[lot.levels] + oneshot


def _flip_jobs(exp: LotteryExperimentSpec, trial: int, source: int) -> list[Job]:
    """[S4] LTH_flip: IMP from theta_0 on the complement of level ``source``'s ticket, one job per level."""
    tdir = layout.trial_dir("", trial)
    fdir = layout.flip_dir(tdir, source)
    level0 = str(layout.level_dir(tdir, 0) / MAIN)
    ticket_source = str(layout.level_dir(tdir, source - 1) / MAIN)   # what level source's mask is pruned from
    out = []
    for level in range(exp.lottery.flip_rounds + 1):
        previous = str(layout.level_dir(fdir, level - 1) / MAIN) if level else ticket_source
        out.append(Job(str(layout.level_dir(fdir, level) / MAIN), trial, level, MAIN, "flip", spec=exp.train_spec(trial),
                       needs=_unique(previous, level0), round=source + 1 + level, flip=source))
    return out


def _dense_spec(exp: LotteryExperimentSpec, find: TrainSpec, iterations_per_epoch: int | None) -> TrainSpec:
    """Level 0's hyperparameters: with mode=rewind it also keeps the weights at the rewind step."""
    if exp.lottery.mode != "rewind":
        return find
    rewind = exp.lottery.rewind
    known = rewind.unit == "it" or iterations_per_epoch is not None
    step = Step(rewind.iterations(iterations_per_epoch or 0)) if known else rewind
    kept = tuple(sorted(set(find.training.checkpoints) | {step}))
    return replace(find, training=replace(find.training, checkpoints=kept))


def _unique(*paths: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in paths if p is not None))
