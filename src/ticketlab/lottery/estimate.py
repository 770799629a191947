"""How long a lottery experiment will take on this machine, measured here before anything runs.

The presets state a runtime on one named machine; this answers the same question for the machine (and
device) at hand: ``ticketlab lottery ... --estimate``. It counts what the experiment plans (the jobs of
lottery/plan.py, the ones the runner trains: each one's iterations and evaluations), then times the
model's training step and its evaluation per example on random tensors of the dataset's shape (speed
does not depend on the pixels, so no dataset is needed), with the threads each worker will have, and
adds it up:

    job time  = iterations x step + evaluations x (val [+ test]) x per-example + end-of-run evaluations
    wall time = sum of job times / worker processes

Jobs of the IMP chain (and of the LTH_flip chains) train with the find hyperparameters, every other
job with the eval ones (``eval.*``). It is an upper bound where runs end early (``training.patience``),
start late (rewinding: counted from step 0) or share a batch (the batched engine trains Lenets several
at once: timed here one model at a time); and a rate timed in seconds, so a busy machine reads slower.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

import torch

from ticketlab import TicketlabError
from ticketlab.data import DatasetInfo, Splits, registry
from ticketlab.lottery import plan
from ticketlab.spec import LotteryExperimentSpec, TrainingSpec, TrainSpec
from ticketlab.steps import Step
from ticketlab.train.job import build_model
from ticketlab.train.loop import evaluate, train

_SHORT, _LONG = 2, 6            # training steps of the two timed runs (scaled up until they differ by
_MIN_SPAN = 0.5                 # at least this many seconds): the rate is their slope
_REPEATS = 3
_EVAL_EXAMPLES = 512            # examples of the timed evaluation


@dataclass(frozen=True)
class Pace:
    step_seconds: float         # one training step
    example_seconds: float      # evaluating one example


@dataclass(frozen=True)
class JobCount:
    spec: TrainSpec
    jobs: int
    iterations: int             # per job
    evaluations: int            # periodic evaluations per job (val, and test when test_eval=every)
    examples_per_evaluation: int
    examples_at_end: int        # the end-of-run evaluations: training split twice, test set twice at most


def job_counts(exp: LotteryExperimentSpec) -> list[JobCount]:
    """The experiment's planned jobs (lottery/plan.py) grouped by the hyperparameters they train with: the
    find ones (the IMP and LTH_flip chains), the eval ones (tickets, controls, one-shot); one group when
    they agree."""
    groups: dict[TrainingSpec, int] = {}
    for job in plan.jobs(exp):
        evaluation = job.spec.training == exp.train_spec(job.trial, exp.evaluation).training
        training = exp.evaluation if evaluation else exp.training
        groups[training] = groups.get(training, 0) + 1
    return [_count(exp.train_spec(0, training), n) for training, n in groups.items()]


def _count(spec: TrainSpec, jobs: int) -> JobCount:
    train_size, test_size = registry.get(spec.data.dataset).sizes
    train_size = (spec.data.train_subset or train_size) - spec.data.val_size
    training = spec.training
    per_epoch = max(train_size // training.batch_size, 1)
    iterations = training.steps.iterations(per_epoch)
    evaluations = iterations // training.eval_every.iterations(per_epoch) + 1
    test = test_size if training.test_eval == "every" else 0
    return JobCount(spec, jobs, iterations, evaluations, spec.data.val_size + test, 2 * train_size + 2 * test_size)


def measure(spec: TrainSpec, device: str | torch.device = "cpu") -> Pace:
    """The pace of ``spec``'s model and training hyperparameters on ``device`` with the current threads:
    after a warm-up run (one-time costs such as oneDNN's kernel set-up would otherwise land in the short
    run and shrink the slope), the median of ``_REPEATS`` slopes between a short and a long run, scaled
    up until they differ by ``_MIN_SPAN`` seconds; the evaluation the median of ``_REPEATS`` passes."""
    splits = _random_splits(registry.get(spec.data.dataset), max(_EVAL_EXAMPLES, spec.training.batch_size),
                            torch.device(device))
    held_out = _tiny_held_out(splits)

    def seconds(steps: int) -> tuple[float, torch.nn.Module]:
        training = replace(spec.training, steps=Step(steps), eval_every=Step(steps), patience=0)
        model = build_model(replace(spec, training=training), splits)
        start = time.perf_counter()
        train(model, None, held_out, training, augment=spec.data.augment)  # its fixed costs cancel in the slope
        return time.perf_counter() - start, model

    short, long = _SHORT, _LONG
    _, model = seconds(short)   # warm-up
    slopes = []
    while len(slopes) < _REPEATS:
        span = seconds(long)[0] - seconds(short)[0]
        if span < _MIN_SPAN and long < 4096:
            short, long = 4 * short, 4 * long
            continue
        slopes.append(max(span, 1e-9) / (long - short))
    passes = []
    for _ in range(_REPEATS):
        start = time.perf_counter()
        evaluate(model, splits.val_x, splits.val_y, precision=spec.training.precision)
        passes.append((time.perf_counter() - start) / len(splits.val_x))
    return Pace(statistics.median(slopes), statistics.median(passes))


def _random_splits(dataset: registry.DatasetDef, n: int, device: torch.device) -> Splits:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, *dataset.input_shape, generator=generator).to(device)
    y = torch.randint(0, dataset.num_classes, (n,), generator=generator).to(device)
    info = DatasetInfo(dataset.name, dataset.input_shape, dataset.num_classes, official=False, source="random",
                       label="random tensors")
    return Splits(x, y, x, y, x, y, info)


def _tiny_held_out(splits: Splits) -> Splits:
    return replace(splits, val_x=splits.val_x[:1], val_y=splits.val_y[:1], test_x=splits.test_x[:1],
                   test_y=splits.test_y[:1])


def _pace_key(spec: TrainSpec) -> tuple:
    """What a pace depends on: the architecture, the input, the batch, the optimizer's kind and the
    arithmetic; not seeds, initialisations, learning rates or schedules (a sweep over those is timed once)."""
    t = spec.training
    model = replace(spec.model, init_seed=0, init="glorot_normal", init_std=0.0, zero_init_output=False)
    return (model, spec.data.dataset, spec.data.augment, t.optimizer, t.momentum > 0, t.nesterov, t.weight_decay > 0,
            t.decoupled_weight_decay, t.batch_size, t.precision, t.compile)


def estimate(exp: LotteryExperimentSpec, *, device: str = "cpu", workers: int = 1, paces: dict | None = None) -> dict:
    """The experiment's jobs, iterations and evaluations, the measured pace and the estimated wall time
    with ``workers`` processes (one thread each when more than one, as ``ticketlab lottery`` runs them).
    ``paces`` memoises measurements across calls (pass one dict for the experiments of a sweep)."""
    if registry.get(exp.data.dataset).format == "imagefolder":
        raise TicketlabError(f"--estimate times steps on random tensors, but {exp.data.dataset} trains from JPEG "
                             f"folders, where decoding bounds the pace (ticketlab.data.images); time a few hundred "
                             f"iterations of the real run instead (--set training.steps=300it on a scratch --store)")
    paces = {} if paces is None else paces
    processes = max(1, min(workers, exp.lottery.trials))
    threads = torch.get_num_threads()
    if processes > 1:
        torch.set_num_threads(1)
    try:
        groups = []
        for count in job_counts(exp):
            key = (_pace_key(count.spec), str(device), processes > 1)
            pace = paces[key] = paces[key] if key in paces else measure(count.spec, device)
            job_seconds = (count.iterations * pace.step_seconds + pace.example_seconds *
                           (count.evaluations * count.examples_per_evaluation + count.examples_at_end))
            groups.append({"jobs": count.jobs, "iterations": count.iterations, "evaluations": count.evaluations,
                           "examples_per_evaluation": count.examples_per_evaluation,
                           "step_seconds": pace.step_seconds, "example_seconds": pace.example_seconds,
                           "job_seconds": job_seconds})
    finally:
        torch.set_num_threads(threads)
    total = sum(g["jobs"] * g["job_seconds"] for g in groups)
    return {"model": exp.model.name, "dataset": exp.data.dataset, "device": str(device), "processes": processes,
            "threads_per_process": 1 if processes > 1 else threads, "groups": groups,
            "jobs": sum(g["jobs"] for g in groups), "job_seconds": total, "seconds": total / processes}


def format_estimate(report: dict, name: str) -> str:
    from ticketlab.lottery.status import duration
    processes, threads = report["processes"], report["threads_per_process"]
    how = (f"{processes} processes of one thread" if processes > 1 else
           f"one process of {threads} thread{'s' if threads > 1 else ''}")
    lines = [f"{name}: {report['model']} on {report['dataset']}, {report['jobs']} jobs: about "
             f"{duration(report['seconds'])} on {report['device']} with {how} (less where runs stop early, "
             "start from a rewind point or train in batches)"]
    for g in report["groups"]:
        lines.append(f"  {g['jobs']} jobs x ({g['iterations']:,} steps x {1000 * g['step_seconds']:.1f} ms + "
                     f"{g['evaluations']:,} evaluations x {g['examples_per_evaluation']:,} examples x "
                     f"{1e6 * g['example_seconds']:.0f} us + the end-of-run ones) = {duration(g['job_seconds'])} per job")
    return "\n".join(lines)
