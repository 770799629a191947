"""The lottery runner: per trial, levels of train -> prune -> set the survivors, plus controls.

    trial t, level 0:  train the dense network from theta_0 (keeping theta_rewind for mode=rewind)
    level k >= 1:      mask_k = prune(weights of level k-1's IMP job, mask_{k-1})
                       IMP job 'main' starts from, by lottery.mode:
                         reset      theta_0
                         rewind     theta at step lottery.rewind of the dense run (trains steps r..T)
                         lr-rewind  level k-1's trained weights, learning-rate schedule restarted
                         continue   level k-1's trained weights ([S1] App. B strategy 2)
                       'ticket' (mode=continue, or when eval.* differs): mask_k at theta_0 (or the
                         rewind point) trained with the eval hyperparameters
                       controls (branches.py) from the ticket's mask, with the eval hyperparameters
                       'snip' / 'isnip' ([S4]): SNIP / iterative SNIP masks of theta_0 at the ticket's counts
    LTH_flip ([S4]):   for each k in lottery.flip_levels, IMP on the complement of level k's mask from
                       theta_0, in trial_<t>/flip_<k>/level_<j>/main (a chain of its own, run alongside)
    one-shot:          for each fraction p, prune level 0's trained weights once, then as a ticket

Which jobs there are, their folders, hyperparameters and the rounds they train in (each round's jobs
together, in batches of the batched engine) come from lottery/plan.py, computed from the spec alone;
this module makes their masks and initial states when a round's inputs exist. Every job is idempotent
and resumable (train/job.py); masks are saved atomically before use and recomputed identically if lost,
so a killed experiment continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from ticketlab import TicketlabError, models
from ticketlab.data import Splits
from ticketlab.lottery import plan
from ticketlab.lottery.adopt import adopt
from ticketlab.lottery.branches import Branch, LevelContext, at_init, controls
from ticketlab.models.init import layer_init_std
from ticketlab.pruning import Mask, prune
from ticketlab.pruning.magnitude import prune_to_counts
from ticketlab.spec import LotteryExperimentSpec, PruningSpec, spec_hash, to_dict
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch, save_json
from ticketlab.options import RunOptions
from ticketlab.train.batched import JobEntry, batch_capacity, model_bytes, run_jobs_batched


class Item(NamedTuple):
    """One job of a lottery experiment: a branch trained in ``folder / branch.name``."""

    folder: Path
    branch: Branch
    trial: int
    level: int
    oneshot: float | None = None
    flip: int | None = None          # LTH_flip chains: the level whose ticket was flipped


def experiment_name(exp: LotteryExperimentSpec) -> str:
    return spec_hash(exp, layout.LOTTERY)


class Lottery:
    """One lottery experiment in the store (``<store>/lottery-<hash>/``)."""

    def __init__(self, exp: LotteryExperimentSpec, store: Path, splits: Splits, options: RunOptions = RunOptions(), *,
                 log=print):
        self.exp, self.store, self.splits, self.options, self.log = exp, Path(store), splits, options, log
        self.name = experiment_name(exp)
        self.root = layout.experiment_dir(self.store, layout.LOTTERY, self.name)
        model = models.build(exp.model, splits.info.input_shape, splits.info.num_classes)
        self.infos = model.weight_info()
        self.model_bytes = model_bytes(model, splits.train_x[:1])   # sizes the batches (batch_models=0)
        self.init_std = layer_init_std(model, exp.model)
        self.iterations_per_epoch = len(splits.train_x) // exp.training.batch_size

    # ------------------------------------------------------------------ running
    def run(self, trials: list[int] | None = None) -> Path:
        """Run (or resume) the given trials, round by round of their plan (lottery/plan.py): they advance
        level by level together, so the jobs of all of them that are ready at once (level k's IMP jobs,
        level k-1's tickets and controls, the LTH_flip chains' next levels) train in one batch of the
        batched engine, in the plan's order."""
        if not (self.root / layout.SPEC).exists():
            for line in adopt(self.store, self.exp, self.root, self.splits.info.label):
                self.log(f"[lottery {self.name}] {line}")
            save_json(self.root / layout.SPEC, {"kind": layout.LOTTERY, "name": self.name, "spec": to_dict(self.exp),
                                                "data": self.splits.info.label})
        self._masks: dict[tuple, Mask] = {}      # (trial, flip, level) -> that level's mask, once made
        self._theta0s: dict[int, dict] = {}
        for jobs in plan.rounds(plan.jobs(self.exp, trials, iterations_per_epoch=self.iterations_per_epoch)):
            self._run_many(self._items(jobs))
        return self.root

    def _items(self, jobs: list[plan.Job]) -> list[Item]:
        """A round's planned jobs as branches to train, in the plan's order: their masks and initial states
        are made now, from the files the earlier rounds left (masks are saved before they are used)."""
        groups: dict[tuple, dict[str, Branch]] = {}   # the branches of one level, or of one one-shot fraction
        items = []
        for job in jobs:
            if job.kind == "flip":
                branch = Branch(plan.MAIN, job.spec, self._mask(job.trial, job.level, job.flip), self._theta0(job.trial))
            elif job.kind == "lottery" and job.branch == plan.MAIN:
                branch = self._imp_branch(job)
            else:
                key = (job.kind, job.trial, job.level, job.oneshot)
                if key not in groups:
                    groups[key] = self._branches([j for j in jobs if (j.kind, j.trial, j.level, j.oneshot) == key
                                                  and not (j.kind == "lottery" and j.branch == plan.MAIN)])
                branch = groups[key][job.branch]
            items.append(Item(self.root / Path(job.path).parent, branch, job.trial, job.level, job.oneshot, job.flip))
        return items

    def _imp_branch(self, job: plan.Job) -> Branch:
        """The IMP job of a level: the dense network from its seed at level 0, then from where lottery.mode says."""
        trial, level, spec = job.trial, job.level, job.spec
        if level == 0:
            return Branch(plan.MAIN, spec, self._mask(trial, 0), models.build(spec.model, self.splits.info.input_shape,
                                                                            self.splits.info.num_classes).state_dict())
        mask, mode = self._mask(trial, level), self.exp.lottery.mode
        if mode in ("reset", "rewind"):
            start, state = self._start(job)
            return Branch(plan.MAIN, spec, mask, state, start)
        previous = load_torch(layout.level_dir(layout.trial_dir(self.root, trial), level - 1) / plan.MAIN / layout.FINAL)
        return Branch(plan.MAIN, spec, mask, previous)  # lr-rewind and continue: keep training the survivors

    def _branches(self, group: list[plan.Job]) -> dict[str, Branch]:
        """The branches of one level besides its IMP job (its ticket, controls and at-init branches) or of
        one one-shot fraction (its ticket 'main', controls and at-init branches), built as branches.py does."""
        exp, first, names = self.exp, group[0], [job.branch for job in group]
        trial, theta0 = first.trial, self._theta0(first.trial)
        tickets = [job for job in group if job.branch in (plan.TICKET, plan.MAIN)]
        if first.kind == "oneshot":
            p = first.oneshot
            pspec = replace(exp.pruning, conv_rate=p, fc_rate=p, output_rate=-1.0, global_rate=p)
            level0 = layout.level_dir(layout.trial_dir(self.root, trial), 0) / plan.MAIN
            mask = self._mask_for(self.root / Path(first.path).parent, level0, self._full_mask(), pspec)
            start, state = self._start(tickets[0])
            context = self._context(trial, 0, mask, theta0, pspec, 1, [mask])
            branches = [Branch(plan.MAIN, tickets[0].spec, mask, state, start), *controls(exp, context),
                        *at_init(exp, context)]
        else:
            level = first.level
            mask = self._mask(trial, level)
            branches = []
            for ticket in tickets:
                start, state = self._start(ticket)
                branches.append(Branch(plan.TICKET, ticket.spec, mask, state, start))
            if level > 0:
                context = self._context(trial, level, mask, theta0, exp.pruning, level,
                                        [self._mask(trial, k) for k in range(1, level + 1)])
                branches += controls(exp, context) if set(names) & set(plan.control_names(exp)) else []
                branches += at_init(exp, context)
        built = {branch.name: branch for branch in branches}
        if list(built) != names:
            raise AssertionError(f"lottery/plan.py plans {names} in {Path(first.path).parent}, "
                                 f"branches.py builds {list(built)}")
        return built

    def _start(self, job: plan.Job) -> tuple[int, dict]:
        """Where a ticket starts: the dense run's weights at the planned step (the rewind point), or theta_0."""
        step = job.start.iterations(self.iterations_per_epoch)
        if step > 0:
            level0 = layout.level_dir(layout.trial_dir(self.root, job.trial), 0) / plan.MAIN
            return step, load_torch(level0 / layout.step_checkpoint(step))
        return 0, self._theta0(job.trial)

    def _theta0(self, trial: int) -> dict:
        """The trial's initialisation (level 0's init.pt, written when its dense run started)."""
        if trial not in self._theta0s:
            level0 = layout.level_dir(layout.trial_dir(self.root, trial), 0) / plan.MAIN
            self._theta0s[trial] = load_torch(level0 / layout.INIT)
        return self._theta0s[trial]

    def _mask(self, trial: int, level: int, flip: int | None = None) -> Mask:
        """Level ``level``'s mask of the trial's IMP chain (or of its LTH_flip chain of level ``flip``'s
        ticket): from its file, else pruned from the level before's IMP job and saved first."""
        key = (trial, flip, level)
        if key in self._masks:
            return self._masks[key]
        tdir = layout.trial_dir(self.root, trial)
        if flip is None and level == 0:
            mask = self._full_mask()
        elif flip is None:
            previous = self._mask(trial, level - 1)
            mask = self._mask_for(layout.level_dir(tdir, level), layout.level_dir(tdir, level - 1) / plan.MAIN, previous,
                                  self.exp.pruning, counts=self._lpr_counts(trial, level, previous))
        elif level == 0:   # [S4] LTH_flip (PROTOCOL 1.17): the complement of level ``flip``'s ticket
            mask = ~self._mask(trial, flip)
            first = layout.level_dir(layout.flip_dir(tdir, flip), 0) / layout.MASK
            if not first.exists():
                mask.save(first)
        else:              # then IMP on it with the experiment's pruning rule, reset to theta_0
            fdir = layout.flip_dir(tdir, flip)
            mask = self._mask_for(layout.level_dir(fdir, level), layout.level_dir(fdir, level - 1) / plan.MAIN,
                                  self._mask(trial, level - 1, flip), self.exp.pruning)
        self._masks[key] = mask
        return mask

    # ------------------------------------------------------------------ helpers
    def _full_mask(self) -> Mask:
        model = models.build(self.exp.model, self.splits.info.input_shape, self.splits.info.num_classes)
        return Mask.ones({n: p.shape for n, p in model.prunable_weights().items()})

    def _mask_for(self, ldir: Path, source_job: Path, previous: Mask, pspec: PruningSpec,
                  counts: dict[str, int] | None = None) -> Mask:
        """The mask stored in ``ldir``, or pruned from ``source_job``'s weights and saved first (to the
        per-layer ``counts`` when given, by magnitude within each layer)."""
        path = ldir / layout.MASK
        if path.exists():
            return Mask.load(path)
        source = layout.BEST if self.exp.lottery.mask_source == "best" else layout.FINAL
        weights = load_torch(source_job / source)
        if counts is not None:
            mask = prune_to_counts({n: weights[n] for n in previous}, previous, counts)
        else:
            mask = prune(pspec, {n: weights[n] for n in previous}, previous, self.infos)
        mask.save(path)
        return mask

    def _lpr_counts(self, trial: int, level: int, previous: Mask) -> dict[str, int] | None:
        """lottery.lpr_from: the per-layer counts of that experiment's mask at this trial and level, which
        must cover the same tensors as this experiment's ``previous`` level."""
        source = self.exp.lottery.lpr_from
        if not source:
            return None
        path = layout.level_dir(layout.trial_dir(self.store / source, trial), level) / layout.MASK
        if not path.exists():
            raise TicketlabError(f"lottery.lpr_from={source}: {path} does not exist; run that experiment to "
                                 f"trial {trial}, level {level} first (same --store), or lower lottery.levels")
        reference = Mask.load(path)
        if {n: reference[n].shape for n in reference} != {n: previous[n].shape for n in previous}:
            raise TicketlabError(f"lottery.lpr_from={source} is a different network (mask shapes differ)")
        return reference.layer_counts()

    def _context(self, trial: int, level: int, mask: Mask, theta0: dict, pspec: PruningSpec, rounds: int,
                 schedule: list[Mask]) -> LevelContext:
        info = self.splits.info
        return LevelContext(seed=self.exp.model.init_seed, trial=trial, level=level, mask=mask, theta0=theta0,
                            eval_spec=self.exp.train_spec(trial, self.exp.evaluation), infos=self.infos,
                            init_std=self.init_std, input_shape=info.input_shape, num_classes=info.num_classes,
                            pruning=pspec, rounds=rounds, schedule=tuple(schedule),
                            train_x=self.splits.train_x, train_y=self.splits.train_y)

    def _context_of(self, item: Item) -> dict:
        branch, trial, level, oneshot = item.branch, item.trial, item.level, item.oneshot
        kind = "oneshot" if oneshot is not None else "flip" if item.flip is not None else "lottery"
        where = (f"p{oneshot:g}" if kind == "oneshot" else f"f{item.flip}l{level}" if kind == "flip" else f"l{level}")
        context = {"experiment": layout.experiment_id(layout.LOTTERY, self.name), "kind": kind, "branch": branch.name, "trial": trial,
                   "level": level, "run_id": f"{self.name}-t{trial}-{where}-{branch.name}"}
        if oneshot is not None:
            context["oneshot_fraction"] = oneshot
        if item.flip is not None:
            context["flip_from"] = item.flip
        return context

    def _report(self, summary: dict, item: Item, seconds: float) -> None:
        trial, level, oneshot = item.trial, item.level, item.oneshot
        where = (f"one-shot {oneshot:g}" if oneshot is not None else
                 f"flip of level {item.flip}, level {level}" if item.flip is not None else f"level {level}")
        self.log(f"[lottery {self.name}] trial {trial} {where} {summary['branch']}: Pm {summary['pm']:.2f}%, "
                 f"early stop {summary['early_stop_iteration']}, test acc {summary['test_accuracy_at_early_stop']:.4f} "
                 f"({seconds:.0f} s)")

    def _run_many(self, items: list[Item]) -> None:
        """Independent jobs trained together by the batched engine, at most ``options.batch_models`` at a time
        (0: as many as ``batch_capacity`` finds room for in the memory free now)."""
        if not items:
            return
        size = self.options.batch_models or batch_capacity(self.model_bytes, self.splits.train_x.device)
        for i in range(0, len(items), size):
            group = items[i:i + size]
            finished = [(it.folder / it.branch.name / layout.SUMMARY).exists() for it in group]
            started = time.monotonic()
            entries = [JobEntry(it.folder / it.branch.name, it.branch.spec, it.branch.mask, it.branch.init,
                                self._context_of(it), it.branch.start_step, self._fixed_steps()) for it in group]
            summaries = run_jobs_batched(entries, self.splits, store=self.store, options=self.options)
            for summary, done, it in zip(summaries, finished, group):
                if not done:
                    self._report(summary, it, time.monotonic() - started)

    def _fixed_steps(self) -> list[int]:
        ipe = len(self.splits.train_x) // self.exp.training.batch_size
        return [s.iterations(ipe) for s in self.exp.lottery.fixed_iterations]


def run_trials(exp: LotteryExperimentSpec, store: Path, trials: list[int] | None = None,
               options: RunOptions = RunOptions(), log=print) -> Path:
    """Run (or resume) ``trials`` of ``exp`` (default: all) in this process: the entry point that every
    executor calls (the API in-process, ``--workers`` processes, Ray tasks); the experiment's folder."""
    from ticketlab.data import load_cached
    splits = load_cached(exp.data, options.data_dir, options.device)
    return Lottery(exp, Path(store), splits, options, log=log).run(trials)
