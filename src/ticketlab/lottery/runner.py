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

Every job is idempotent and resumable (train/job.py); masks are saved atomically before use and
recomputed identically if lost, so a killed experiment continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, NamedTuple

from ticketlab import TicketlabError, models
from ticketlab.data import Splits
from ticketlab.lottery.adopt import adopt
from ticketlab.lottery.branches import Branch, LevelContext, at_init, controls, needs_ticket, ticket_levels_start
from ticketlab.models.init import layer_init_std
from ticketlab.pruning import Mask, prune
from ticketlab.pruning.magnitude import prune_to_counts
from ticketlab.spec import LotteryExperimentSpec, PruningSpec, spec_hash, to_dict
from ticketlab.steps import Step
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
    return spec_hash(exp, "lottery")


class Lottery:
    """One lottery experiment in the store (``<store>/lottery-<hash>/``)."""

    def __init__(self, exp: LotteryExperimentSpec, store: Path, splits: Splits, options: RunOptions = RunOptions(), *,
                 log=print):
        self.exp, self.store, self.splits, self.options, self.log = exp, Path(store), splits, options, log
        self.name = experiment_name(exp)
        self.root = layout.experiment_dir(self.store, "lottery", self.name)
        model = models.build(exp.model, splits.info.input_shape, splits.info.num_classes)
        self.infos = model.weight_info()
        self.model_bytes = model_bytes(model, splits.train_x[:1])   # sizes the batches (batch_models=0)
        self.init_std = layer_init_std(model, exp.model)
        self.rewind_step = exp.lottery.rewind.iterations(len(splits.train_x) // exp.training.batch_size)
        self.needs_ticket_branch = needs_ticket(exp)

    # ------------------------------------------------------------------ running
    def run(self, trials: list[int] | None = None) -> Path:
        """Run (or resume) the given trials. They advance level by level together, so the jobs of all
        of them that are ready at once (level k's IMP jobs, level k-1's tickets and controls) train in
        one batch of the batched engine."""
        if not (self.root / layout.SPEC).exists():
            for line in adopt(self.store, self.exp, self.root, self.splits.info.label):
                self.log(f"[lottery {self.name}] {line}")
            save_json(self.root / layout.SPEC, {"kind": "lottery", "name": self.name, "spec": to_dict(self.exp),
                                                "data": self.splits.info.label})
        plans = [self._trial_plan(t) for t in (trials if trials is not None else range(self.exp.lottery.trials))]
        self._spawned: list[Iterator[list[Item]]] = []   # plans started by plans (LTH_flip chains)
        while plans:
            ready: list[Item] = []
            for plan in list(plans):
                try:
                    ready += next(plan)
                except StopIteration:
                    plans.remove(plan)
            plans += self._spawned
            self._spawned.clear()
            self._run_many(ready)
        return self.root

    def _trial_plan(self, trial: int) -> Iterator[list[Item]]:
        """One trial as a sequence of job lists: each list is yielded when its inputs exist, and the
        plan resumes once the caller has trained it."""
        exp, lot = self.exp, self.exp.lottery
        tdir = layout.trial_dir(self.root, trial)
        find = exp.train_spec(trial)
        level0 = layout.level_dir(tdir, 0) / "main"
        if lot.mode == "rewind":  # keep theta at the rewind step of the dense run
            find0 = replace(find, training=replace(find.training, checkpoints=tuple(sorted(
                set(find.training.checkpoints) | {Step(self.rewind_step)}))))
        else:
            find0 = find
        mask = self._full_mask()
        # Level k's IMP job needs only level k-1's IMP job, so it trains in one batch with level k-1's
        # ticket and controls (a model's batched trajectory does not depend on its batch mates).
        pending: list[Item] = []
        schedule: list[Mask] = []   # the ticket's masks of levels 1..level
        for level in range(lot.levels + 1):
            ldir = layout.level_dir(tdir, level)
            if level > 0:
                mask = self._mask_for(ldir, layout.level_dir(tdir, level - 1) / "main", mask, exp.pruning,
                                      counts=self._lpr_counts(trial, level, mask))
                schedule.append(mask)
            theta0 = load_torch(level0 / layout.INIT) if level > 0 else None
            if level in lot.flip_levels:
                self._spawned.append(self._flip_plan(trial, level, mask, theta0))
            main = self._imp_branch(trial, level, find0 if level == 0 else find, mask, tdir, theta0)
            yield [Item(ldir, main, trial, level), *pending]
            theta0 = theta0 if theta0 is not None else load_torch(level0 / layout.INIT)
            branches = []
            if self.needs_ticket_branch and level >= ticket_levels_start(exp):
                start, state = self._ticket_start(level0, theta0)
                branches.append(Branch("ticket", exp.train_spec(trial, exp.evaluation), mask, state, start))
            context = self._context(trial, level, mask, theta0, exp.pruning, level, schedule)
            if level > 0 and (not lot.control_levels or level in lot.control_levels):
                branches += controls(exp, context)
            if level > 0:
                branches += at_init(exp, context)
            pending = [Item(ldir, branch, trial, level) for branch in branches]
        yield pending + self._oneshot_items(trial, tdir, level0)

    def _flip_plan(self, trial: int, source: int, ticket: Mask, theta0: dict) -> Iterator[list[Item]]:
        """[S4] LTH_flip (PROTOCOL 1.17): the complement of level ``source``'s ticket, trained from the
        trial's theta_0, then ``flip_rounds`` IMP rounds on it (pruning rule of the experiment, reset to
        theta_0), in ``trial_<t>/flip_<source>/level_<j>/main``; flip level j is prune iteration j+1."""
        exp = self.exp
        fdir = layout.flip_dir(layout.trial_dir(self.root, trial), source)
        find = exp.train_spec(trial)
        mask = ~ticket
        for level in range(exp.lottery.flip_rounds + 1):
            ldir = layout.level_dir(fdir, level)
            if level == 0 and not (ldir / layout.MASK).exists():
                mask.save(ldir / layout.MASK)
            if level > 0:
                mask = self._mask_for(ldir, layout.level_dir(fdir, level - 1) / "main", mask, exp.pruning)
            yield [Item(ldir, Branch("main", find, mask, theta0), trial, level, flip=source)]

    def _imp_branch(self, trial, level, spec, mask, tdir, theta0) -> Branch:
        mode = self.exp.lottery.mode
        if level == 0:
            return Branch("main", spec, mask, models.build(spec.model, self.splits.info.input_shape,
                                                           self.splits.info.num_classes).state_dict())
        if mode == "reset":
            return Branch("main", spec, mask, theta0)
        if mode == "rewind":
            start, state = self._ticket_start(layout.level_dir(tdir, 0) / "main", theta0)
            return Branch("main", spec, mask, state, start)
        previous = load_torch(layout.level_dir(tdir, level - 1) / "main" / layout.FINAL)
        return Branch("main", spec, mask, previous)  # lr-rewind and continue: keep training the survivors

    def _ticket_start(self, level0: Path, theta0: dict) -> tuple[int, dict]:
        if self.exp.lottery.mode == "rewind" and self.rewind_step > 0:
            return self.rewind_step, load_torch(level0 / layout.step_checkpoint(self.rewind_step))
        return 0, theta0

    def _oneshot_items(self, trial: int, tdir: Path, level0: Path) -> list[Item]:
        """One-shot pruning of the dense run at each fraction p (output layer at p/2), then as a ticket."""
        items: list[Item] = []
        if not self.exp.lottery.oneshot:
            return items
        theta0 = load_torch(level0 / layout.INIT)
        for p in self.exp.lottery.oneshot:
            pspec = replace(self.exp.pruning, conv_rate=p, fc_rate=p, output_rate=-1.0, global_rate=p)
            odir = layout.oneshot_dir(tdir, p)
            mask = self._mask_for(odir, level0, self._full_mask(), pspec)
            start, state = self._ticket_start(level0, theta0)
            ticket = Branch("main", self.exp.train_spec(trial, self.exp.evaluation), mask, state, start)
            context = self._context(trial, 0, mask, theta0, pspec, 1, [mask])
            branches = [ticket, *controls(self.exp, context), *at_init(self.exp, context)]
            items += [Item(odir, branch, trial, 0, p) for branch in branches]
        return items

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
        context = {"experiment": f"lottery-{self.name}", "kind": kind, "branch": branch.name, "trial": trial,
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
