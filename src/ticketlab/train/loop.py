"""The one training loop, over K >= 1 models: when to evaluate, log, early-stop, checkpoint, save a resume
point and run the end-of-run evaluations. How a step is computed (one ``nn.Module`` with DDP / fp16 /
compile, K models stacked, sparse layers) is an engine's business (engines.py); the lottery runner, every
control and ``ticketlab train`` come through here.

With a job directory per model, metrics go to ``job/metrics.jsonl``, weights at ``spec.checkpoints`` to
``job/step_<n>.pt`` and a resume point (resume.py) to ``job/resume.pt`` at evaluation points at most every
``checkpoint_seconds``: rerunning after a kill continues from there with bit-identical results, because the
data order and augmentation are pure functions of (seed, step). The time spent so far travels in the resume
point and is logged at every evaluation as ``time/wall_seconds``, so a run's time counts every process
that trained it (less what a kill threw away after the last checkpoint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ticketlab import TicketlabError
from ticketlab.data import ImageFiles, Splits, stable_seed, train_eval_split
from ticketlab.pruning import Mask
from ticketlab.spec import TrainingSpec
from ticketlab.store import layout
from ticketlab.store.artifacts import save_torch
from ticketlab.train import resume, world as worlds
from ticketlab.train.engines import Engine, ModuleEngine
from ticketlab.train.evaluation import activation_elements, eval_chunk, evaluate, probe_forward  # noqa: F401 (re-exported)
from ticketlab.train.metrics import WALL, EarlyStop, MetricLog
from ticketlab.train.optim import Schedule
from ticketlab.train.progress import Progress
from ticketlab.train.world import World


@dataclass
class TrainResult:
    iterations: int                 # iterations actually run (fewer than planned only with patience)
    early_stop_iteration: int
    at_early_stop: dict[str, float]  # val/test (and train, full split) metrics at the early-stop point
    final: dict[str, float]          # the same at the last iteration
    stopped_early: bool
    best_state: dict[str, torch.Tensor]
    compile_seconds: float | None = None   # training.compile: wall time of the first (compiling) step
    wall_seconds: float = 0.0        # time spent training, summed over every process that trained this run
    batch_models: int = 1            # models trained side by side in that time (the engine's K)
    world_size: int = 1              # data-parallel processes that trained it (exec/ddp.py)


def train(model: torch.nn.Module, mask: Mask | None, splits: Splits, spec: TrainingSpec, *, job: Path | None = None,
          augment: bool = False, progress: Progress | None = None, checkpoint_seconds: float = 60.0,
          start_step: int = 0) -> TrainResult:
    """Train one ``model`` (already initialised; pruned weights are zeroed here) under ``mask``.

    ``start_step`` > 0 starts mid-schedule (weight rewinding to step k trains steps k..T with the
    learning rate and data order of those steps, and a fresh optimizer). Under torchrun every rank calls
    this (exec/ddp.py: the leader with ``job``, the others without): each trains on its slice of every
    batch and the gradients are averaged."""
    world = worlds.current()
    if world.size > 1:
        world.check(spec, model)
        if world.leader:
            worlds.announce(model, mask, splits, spec, augment=augment, start_step=start_step)
    total = spec.steps.iterations(len(splits.train_x) // spec.batch_size)
    engine = ModuleEngine(model, mask, splits, spec, augment=augment, world=world, total=total)
    return fit(engine, [spec], [job], splits, progress=progress, checkpoint_seconds=checkpoint_seconds,
               start_step=start_step, world=world)[0]


def fit(engine: Engine, specs: list[TrainingSpec], jobs: list[Path | None], splits: Splits, *,
        progress: Progress | None = None, checkpoint_seconds: float = 60.0, start_step: int = 0,
        world: World = World()) -> list[TrainResult]:
    """Train the ``engine.k`` models of ``engine``, model k under ``specs[k]`` in ``jobs[k]`` (or None: no
    files). The specs share everything that sets the schedule (steps, evaluation interval, patience,
    checkpoints, test evaluation); each has its own lr schedule. Every model ends at its final weights."""
    spec, count = specs[0], engine.k
    ipe = len(splits.train_x) // spec.batch_size
    total = spec.steps.iterations(ipe)
    eval_every = spec.eval_every.iterations(ipe)
    keep_steps = {s.iterations(ipe) for s in spec.checkpoints}
    schedules = [Schedule(s, ipe, total) for s in specs]
    logs = [MetricLog(job / layout.METRICS if job else None) for job in jobs]
    trackers = [EarlyStop(patience=spec.patience) for _ in specs]
    best: list = [None] * count
    start, resumed_at = start_step, -1
    began, prior_seconds, timed = time.monotonic(), [0.0] * count, [True] * count

    found = [resume.read(job) for job in jobs]
    if world.size > 1:
        found = [world.share(found[0])]   # the leader's resume point, on every rank
    if found[0] is None:
        # dropout draws from the global RNG, which torch seeds at random in each process: a fresh start
        # seeds it from the job's data seed (each follower rank its own stream), so a run is reproducible
        torch.manual_seed(worlds.follower_seed(spec.data_seed, world.rank) if not world.leader
                          else stable_seed("dropout", spec.data_seed))
    if any(state is not None for state in found):
        steps = {str(jobs[k]): (s["step"] if s is not None else None) for k, s in enumerate(found)}
        if len(set(steps.values())) > 1:
            raise _different_steps(steps)
        for k, state in enumerate(found):
            resume.check(state, jobs[k], splits.info.files, splits.info.source, world.size, engine.batchnorm)
            engine.load(k, state["model"])
            trackers[k] = EarlyStop(**state["tracker"])
            best[k] = state["best_state"]
            # files written before the time was recorded: the summary counts this process only, none is logged
            prior_seconds[k], timed[k] = state.get("wall_seconds", 0.0), "wall_seconds" in state
        engine.load_optimizers([state["optimizer"] for state in found])
        state = found[0]
        ranks = state.get("rng_ranks") or []
        torch.set_rng_state(ranks[world.rank] if len(ranks) == world.size else state["rng"])
        if len(ranks) != world.size and not world.leader:
            torch.manual_seed(worlds.follower_seed(spec.data_seed, world.rank) + state["step"])
        start = resumed_at = state["step"]
    for log in logs:  # the evaluation at a resumed step was logged before its checkpoint was saved
        log.truncate_after(start if resumed_at >= 0 else start - 1)
    engine.begin()

    def seconds(k: int) -> float:
        return prior_seconds[k] + time.monotonic() - began

    def save_resume(step: int, k: int) -> None:
        ranks = world.rng_states()   # every rank takes part
        resume.write(jobs[k], step=step, model=engine.state(k), optimizer=engine.optimizer_state(k),
                     tracker=trackers[k].state(), best_state=best[k], rng=torch.get_rng_state(),
                     wall_seconds=seconds(k), world_size=world.size, rng_ranks=ranks, files=splits.info.files,
                     **engine.resume_fields(k))

    def save_step(step: int, k: int, state=None) -> None:
        if jobs[k] is not None and step in keep_steps and not (jobs[k] / layout.step_checkpoint(step)).exists():
            save_torch(jobs[k] / layout.step_checkpoint(step), state if state is not None else engine.state(k))

    active = list(range(count))                       # models still training (patience stops them one by one)
    finals: list = [None] * count                     # (state, step, stopped early) of each model when it stopped
    values: list[dict] = [{} for _ in range(count)]
    loss_sum, loss_count = torch.zeros(count, device=splits.train_x.device), 0
    last_save, step = time.monotonic(), start
    while active:
        if (step % eval_every == 0 or step == total) and step != resumed_at:
            # test only where it is reported (test_eval=reported): the last step, and the early-stop weights below
            test_now = spec.test_eval == "every" or step == total
            val = engine.evaluate(splits.val_x, splits.val_y)
            test = engine.evaluate(splits.test_x, splits.test_y) if test_now else None
            batch_loss = None
            if loss_count:
                world.sum_(loss_sum).div_(world.size)   # the mean over the whole batches
                batch_loss = (loss_sum / loss_count).tolist()
                loss_sum.zero_()
                loss_count = 0
            for k in active:
                values[k] = _named("val", val[k])
                if test is not None:
                    values[k].update(_named("test", test[k]))
                if batch_loss is not None:
                    values[k]["train/batch_loss"] = batch_loss[k]
                values[k]["lr"] = schedules[k](step)
                logs[k].write(step, {**values[k], WALL: seconds(k)} if timed[k] else values[k])
                if trackers[k].update(step, values[k]):
                    best[k] = engine.state(k)
                if step == total or trackers[k].should_stop:
                    finals[k] = (engine.state(k), step, trackers[k].should_stop)
            active = [k for k in active if finals[k] is None]
            if progress:
                accuracy = [v["val/accuracy"] for v in values]
                note = (f"val acc {accuracy[0]:.4f}" if count == 1 else
                        f"{count} models, val acc {min(accuracy):.4f}-{max(accuracy):.4f}")
                progress.update(step, note, force=step == total)
            if not active:
                break
            if world.agree(step > start and time.monotonic() - last_save > checkpoint_seconds):
                for k in active:
                    save_resume(step, k)
                last_save = time.monotonic()
        for k in active:
            save_step(step, k)
        loss_sum += engine.step(step, [schedule(step) for schedule in schedules])
        loss_count += 1
        step += 1
        if progress and step % 50 == 0:
            progress.update(step)

    for k, (state, stop, _) in enumerate(finals):
        save_step(stop, k, state)
    results = _final_evaluations(engine, splits, finals, best, trackers, values, step, progress)
    for k, result in enumerate(results):
        result.wall_seconds, result.compile_seconds = seconds(k), engine.compile_seconds
        result.batch_models, result.world_size = count, world.size
    if progress:
        progress.close()
    return results


def _final_evaluations(engine: Engine, splits: Splits, finals: list, best: list, trackers: list[EarlyStop],
                       values: list[dict], step: int, progress: Progress | None) -> list[TrainResult]:
    """Training accuracy at the end and at the early-stopping point (PROTOCOL §4.2 leaves the set open:
    the whole training split, or data.train_eval_size examples of it), the test set where it was not
    evaluated (test_eval=reported and a patience stop before the last step) and the shifted test sets
    ([S0]) at both; every model is left at its final weights."""
    count = engine.k
    train_x, train_y = train_eval_split(splits)
    if progress and isinstance(splits.train_x, ImageFiles):   # decoding a million images takes minutes: say so
        shifted = sum(len(es.x) for es in splits.eval_sets.values())
        progress.update(step, f"end-of-run evaluations: the training split twice ({len(train_x):,} images)"
                              + (f" and the shifted test sets twice ({shifted:,})" if shifted else ""), force=True)

    def at(states: list[dict], reported: list[dict]) -> list[dict]:
        for k in range(count):
            engine.load(k, states[k])
        out = [dict(r) for r in reported]
        for metrics, o in zip(engine.evaluate(train_x, train_y), out):
            o.update(_named("train", metrics))
        if any("test/accuracy" not in o for o in out):
            for metrics, o in zip(engine.evaluate(splits.test_x, splits.test_y), out):
                for name, value in _named("test", metrics).items():
                    o.setdefault(name, value)
        return out

    def shifted(out: list[dict]) -> None:
        for name, es in splits.eval_sets.items():
            for metrics, o in zip(engine.evaluate(es.x, es.y, es.classes), out):
                o.update(_named(name, metrics))

    final_states = [f[0] for f in finals]
    final = at(final_states, [{n: v for n, v in values[k].items() if n.startswith(("val/", "test/"))}
                              for k in range(count)])
    at_best = at(best, [t.at_best for t in trackers])
    shifted(at_best)
    for k in range(count):
        engine.load(k, final_states[k])
    shifted(final)
    engine.finish()
    return [TrainResult(iterations=stop, early_stop_iteration=trackers[k].best_step, at_early_stop=at_best[k],
                        final=final[k], stopped_early=stopped, best_state=best[k])
            for k, (_, stop, stopped) in enumerate(finals)]


def _named(split: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{split}/{name}": value for name, value in metrics.items()}


def _different_steps(steps: dict) -> Exception:
    return TicketlabError(f"the jobs of a batch resume from different steps {steps}; a batch resumes only from one "
                          "common step (the job runner groups jobs by their resume step)")
