"""The batched engine: K networks of one architecture trained in lockstep in one process.

For every k, model k has the single loop's semantics (loop.py): its own init, mask, seeded data order
(``BatchSampler(n, batch_size, spec.data_seed)``), lr schedule and weight decay, the same evaluation
points, early-stop bookkeeping, checkpoints, metrics records and resume files in its own job directory.
Only the arithmetic is shared: stacked parameters, a fused optimizer step per model slice of the
stack, and evaluation of all K models per chunk (stacked.py). The results equal the single
loop's within float rounding (tests/test_batched.py: weights within 1e-5 after 60 steps, the same early
stops): the batched GEMMs and the per-model loss mean round differently in the last bit, and training
amplifies that a little. The store and the plots cannot tell the engines apart.

Speed: ``ticketlab bench`` measures this engine at several K next to the single loop and a stock loop.

Which engine trains a batch (``engine="auto"``):
    Lenet (MLP)                 stacked ``baddbmm`` (StackedMLP); a batch of one gets a phantom twin (below).
                                On the CPU in fp32, layers whose masks keep < ``sparse_below`` (default
                                ``SPARSE_BELOW`` = 15%) of their weights store only the kept weights (the
                                optimizer steps those alone) and use one block-diagonal CSR product
                                forward and an SDDMM for their gradients: 1.8-3.8x the dense stack at IMP
                                levels 11-20 of Lenet, 0.8x at level 7 (21%), crossing over at 15-20%
                                (docs/results/bench/sparse/). ``engine="mlp"`` keeps every layer dense.
    anything else               the single loop, model after model: on CPU, vmapping Conv-2 is 1.6x
                                slower; BatchNorm buffers and dropout cannot follow the single loop under
                                vmap at all. ``engine="vmap"`` forces StackedVmap for bufferless
                                deterministic models (e.g. to try it on a GPU).

What may differ within a batch: ``lr``, ``weight_decay``, ``decoupled_weight_decay`` and ``data_seed``;
every other training field (batch size, steps, schedule shape, optimizer, eval interval, patience,
checkpoints, precision, ...) must be equal. Resume: each job keeps its own ``resume.pt`` in the single
loop's format (the single loop can resume it too); a batch resumes only when all its jobs resume from the same step (``run_jobs_batched``
splits a store's jobs into such batches). fp16 on CUDA uses per-model loss scaling and is trained model
after model.
"""

from __future__ import annotations

import copy
import shutil
import tempfile

import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import fields, replace
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from ticketlab import TicketlabError
from ticketlab.data import BatchSampler, ImageFiles, Splits, augment_batch, train_eval_split
from ticketlab.exec import ddp
from ticketlab.models import Model
from ticketlab.models.lenet import Lenet
from ticketlab.options import ENGINES, SPARSE_BELOW, RunOptions, resolve
from ticketlab.pruning import Mask
from ticketlab.spec import TrainingSpec, TrainSpec
from ticketlab.store import index, layout
from ticketlab.store.artifacts import load_json, load_torch, locked, save_torch
from ticketlab.train.job import finish_job, prepare_job
from ticketlab.train.loop import WALL, TrainResult, _autocast, activation_elements, eval_chunk, train
from ticketlab.train.metrics import EarlyStop, MetricLog
from ticketlab.train.optim import Schedule
from ticketlab.train.progress import Progress
from ticketlab.train.stacked import (Stacked, StackedMLP, StackedOptimizer, StackedVmap, batch_losses,
                                     vmap_supported)

MAY_DIFFER = frozenset({"lr", "weight_decay", "decoupled_weight_decay", "data_seed"})


def check_batchable(specs: list[TrainingSpec]) -> None:
    """Raise TicketlabError unless the specs differ only in the fields of ``MAY_DIFFER``."""
    reference = specs[0]
    for i, spec in enumerate(specs[1:], 1):
        others = {f.name for f in fields(spec) if f.name not in MAY_DIFFER}
        bad = sorted(n for n in others if getattr(spec, n) != getattr(reference, n))
        if bad:
            raise TicketlabError(f"runs 0 and {i} of a batch differ in {bad}; a batch may differ only in "
                                 f"{sorted(MAY_DIFFER)} (train the others in another batch)")


def choose_engine(models: list[Model], specs: list[TrainingSpec], device: torch.device, engine: str = "auto") -> str:
    if engine not in ENGINES:
        raise TicketlabError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    sequential = specs[0].precision == "fp16" and device.type == "cuda"   # loss scaling is per model
    if ddp.world().size > 1:   # data-parallel ranks share one model's batches, not a stack of models
        if engine not in ("auto", "sequential"):
            raise TicketlabError(f"engine {engine!r} does not run data-parallel (--nproc); use the sequential engine")
        return "sequential"
    if engine == "auto":
        return "sequential" if sequential or not isinstance(models[0], Lenet) else "mlp"
    if engine == "mlp" and not isinstance(models[0], Lenet):
        raise TicketlabError(f"engine 'mlp' trains Lenet only, not {type(models[0]).__name__}")
    why = vmap_supported(models[0]) if engine == "vmap" else None
    if why or (sequential and engine != "sequential"):
        raise TicketlabError(f"engine {engine!r} cannot reproduce the single loop here: "
                             f"{why or 'fp16 loss scaling on CUDA is per model'}; use engine='sequential'")
    return engine


@torch.no_grad()
def evaluate_batched(stacked: Stacked, x: torch.Tensor, y: torch.Tensor, chunk: int,
                     precision: str = "fp32") -> list[tuple[float, float]]:
    """(mean cross-entropy, accuracy) of every model on (x, y), all K models per chunk of ``chunk`` examples."""
    if len(x) == 0:
        return [(float("nan"), float("nan"))] * stacked.k
    loss = torch.zeros(stacked.k, dtype=torch.float64, device=x.device)
    correct = torch.zeros(stacked.k, dtype=torch.int64, device=x.device)
    with _autocast(precision, x.device):
        for i in range(0, len(x), chunk):
            logits = stacked.forward_shared(x[i:i + chunk]).float()
            target = y[i:i + chunk]
            loss += batch_losses(logits, target, reduction="sum").double()
            correct += (logits.argmax(2) == target).sum(1)
    return [(l / len(x), c / len(x)) for l, c in zip(loss.tolist(), correct.tolist())]


def train_batched(models: list[Model], masks: list[Mask | None], splits: Splits, specs: list[TrainingSpec], *,
                  jobs: list[Path | None] | None = None, augment: bool = False, progress: Progress | None = None,
                  checkpoint_seconds: float = 60.0, start_step: int = 0, engine: str = "auto",
                  sparse_below: float = SPARSE_BELOW) -> list[TrainResult]:
    """``train(models[k], masks[k], splits, specs[k], job=jobs[k], ...)`` for every k, in one batch.

    Each model ends at its final weights, as after ``train``; the results come in the order given.
    Raises TicketlabError when the specs may not share a batch (``check_batchable``), the models differ
    in architecture, or the jobs' ``resume.pt`` files are at different steps."""
    jobs = list(jobs) if jobs is not None else [None] * len(models)
    if not (len(models) == len(masks) == len(specs) == len(jobs)) or not models:
        raise TicketlabError("train_batched needs one mask, spec and job (or None) per model, and at least one model")
    check_batchable(specs)
    shapes = {n: t.shape for n, t in models[0].state_dict().items()}
    if any(type(m) is not type(models[0]) or {n: t.shape for n, t in m.state_dict().items()} != shapes
           for m in models):
        raise TicketlabError("the models of a batch must share one architecture")
    device = splits.train_x.device
    kind = choose_engine(models, specs, device, engine)
    if isinstance(splits.train_x, ImageFiles) and kind != "sequential":   # stacks index tensors, not files
        if engine != "auto":
            raise TicketlabError(f"engine {engine!r} needs tensor data; image folders train with engine='sequential'")
        kind = "sequential"
    if kind == "sequential":
        return [train(m, mask, splits, spec, job=job, augment=augment, progress=progress,
                      checkpoint_seconds=checkpoint_seconds, start_step=start_step)
                for m, mask, spec, job in zip(models, masks, specs, jobs)]
    # A model's bits depend on its slot in the stack (and, for a stack of one, on the kernel baddbmm
    # picks), never on its batch mates. So every job keeps its slot across a resume (recorded in
    # resume.pt), slots whose jobs already finished are filled by discarded twins, and a batch of one
    # gets a twin: a resumed, smaller batch reproduces the uninterrupted run bit for bit.
    order = list(range(len(models)))
    slot_of = {k: i for i, k in enumerate(order)}
    recorded = _recorded_slots(jobs)
    if recorded is not None and len(set(recorded.values())) == len(recorded):
        slot_of = recorded
    size = max(2, max(slot_of.values()) + 1)
    with tempfile.TemporaryDirectory(prefix="ticketlab-twin-") as scratch:
        placed: list = [None] * size
        for k, slot in slot_of.items():
            placed[slot] = (models[k], masks[k], specs[k], jobs[k])
        for slot in range(size):
            if placed[slot] is None:
                placed[slot] = _twin(models[order[0]], masks[order[0]], specs[order[0]], jobs[order[0]], Path(scratch) / str(slot))
        results = _train_stacked(*map(list, zip(*placed)), splits, kind, augment, progress, checkpoint_seconds, start_step,
                                 _sparse_threshold(engine, sparse_below))
    return [results[slot_of[k]] for k in range(len(models))]


def _recorded_slots(jobs) -> dict[int, int] | None:
    """Each job's slot from its resume.pt, when every job of the batch has one that records it."""
    slots = {}
    for k, job in enumerate(jobs):
        path = Path(job) / layout.RESUME if job is not None else None
        if path is None or not path.exists():
            return None
        slot = load_torch(path).get("slot")
        if slot is None:
            return None
        slots[k] = slot
    return slots


def _twin(model, mask, spec, job, scratch: Path):
    """A discarded copy that fills a slot; it resumes from a copy of ``job``'s resume point if any."""
    twin_job = None
    if job is not None:
        scratch.mkdir(parents=True)
        twin_job = scratch
        if (Path(job) / layout.RESUME).exists():
            shutil.copyfile(Path(job) / layout.RESUME, twin_job / layout.RESUME)
    return copy.deepcopy(model), mask, spec, twin_job


def _train_stacked(models, masks, specs, jobs, splits, kind, augment, progress, checkpoint_seconds, start_step,
                   sparse_below):
    device, spec, count = splits.train_x.device, specs[0], len(models)
    samplers = [BatchSampler(len(splits.train_x), s.batch_size, s.data_seed, device=device) for s in specs]
    ipe = samplers[0].iterations_per_epoch
    total = spec.steps.iterations(ipe)
    eval_every = spec.eval_every.iterations(ipe)
    keep_steps = {s.iterations(ipe) for s in spec.checkpoints}
    schedules = [Schedule(s, ipe, total) for s in specs]
    stacked = (StackedMLP if kind == "mlp" else StackedVmap)(models)
    stacked_masks = stacked.masks(masks)
    if kind == "mlp" and device.type == "cpu" and spec.precision == "fp32" and not spec.compile:
        stacked.use_sparse(stacked_masks, set.intersection(*(set(sparse_layers(m, sparse_below)) for m in masks)))
    optimizer = StackedOptimizer(stacked, specs, device)
    chunk = max(1, eval_chunk(models[0], splits.train_x) // count)   # the single loop's activation memory
    logs = [MetricLog(job / layout.METRICS if job else None) for job in jobs]
    trackers = [EarlyStop(patience=spec.patience) for _ in specs]
    best: list = [None] * count
    start, resumed_at = start_step, -1
    began, prior_seconds, timed = time.monotonic(), [0.0] * count, [True] * count

    resumes = [job / layout.RESUME if job else None for job in jobs]
    found = [load_torch(p) if p is not None and p.exists() else None for p in resumes]
    if any(s is not None for s in found):
        steps = {str(jobs[k]): (s["step"] if s is not None else None) for k, s in enumerate(found)}
        if len(set(steps.values())) > 1:
            raise TicketlabError(f"the jobs of a batch resume from different steps {steps}; a batch resumes only "
                                 "from one common step (run_jobs_batched groups jobs by their resume step)")
        for k, state in enumerate(found):
            stacked.load(k, state["model"])
            trackers[k] = EarlyStop(**state["tracker"])
            best[k] = state["best_state"]
            prior_seconds[k], timed[k] = state.get("wall_seconds", 0.0), "wall_seconds" in state  # see train()
        optimizer.load([s["optimizer"] for s in found])
        torch.set_rng_state(found[0]["rng"])
        start = resumed_at = found[0]["step"]
    for log in logs:  # the evaluation at a resumed step was logged before its checkpoint was saved
        log.truncate_after(start if resumed_at >= 0 else start - 1)
    params = list(stacked.params.values())
    # sparse layers hold only their kept weights: nothing to mask there
    weights = [stacked.params[n] for n in stacked_masks if n not in stacked.patterns]
    mask_list = [m for n, m in stacked_masks.items() if n not in stacked.patterns]
    pruned_list = [m == 0 for m in mask_list]

    def zero_weights():   # masked_fill: NaN * 0 would leave a diverged model's pruned weights NaN
        with torch.no_grad():
            for w, pruned in zip(weights, pruned_list):
                w.masked_fill_(pruned, 0.0)

    def seconds(k: int) -> float:
        return prior_seconds[k] + time.monotonic() - began

    def save_resume(step: int, k: int) -> None:
        if resumes[k] is not None:
            save_torch(resumes[k], {"step": step, "slot": k, "model": stacked.state(k), "optimizer": optimizer.state(k),
                                    "tracker": trackers[k].state(), "best_state": best[k], "rng": torch.get_rng_state(),
                                    "wall_seconds": seconds(k)})

    def save_step(step: int, k: int, state=None) -> None:
        if jobs[k] is not None and step in keep_steps and not (jobs[k] / layout.step_checkpoint(step)).exists():
            save_torch(jobs[k] / layout.step_checkpoint(step), state if state is not None else stacked.state(k))

    zero_weights()
    active = list(range(count))                       # models still training (patience stops them one by one)
    finals: list = [None] * count                     # (state, step, values) of each model when it stopped
    values: list[dict] = [{} for _ in range(count)]
    train_loss_sum, train_loss_count = torch.zeros(count, device=device), 0
    forward, compile_seconds = (torch.compile(stacked.forward) if spec.compile else stacked.forward), None
    last_save, step = time.monotonic(), start
    while active:
        if (step % eval_every == 0 or step == total) and step != resumed_at:
            test_now = spec.test_eval == "every" or step == total
            evals = zip(evaluate_batched(stacked, splits.val_x, splits.val_y, chunk, spec.precision),
                        evaluate_batched(stacked, splits.test_x, splits.test_y, chunk, spec.precision)
                        if test_now else [(None, None)] * count)
            batch_loss = (train_loss_sum / train_loss_count).tolist() if train_loss_count else None
            train_loss_sum.zero_()
            train_loss_count = 0
            for k, ((vl, va), (tl, ta)) in enumerate(evals):
                if k not in active:
                    continue
                values[k] = {"val/loss": vl, "val/accuracy": va}
                if test_now:
                    values[k].update({"test/loss": tl, "test/accuracy": ta})
                if batch_loss is not None:
                    values[k]["train/batch_loss"] = batch_loss[k]
                values[k]["lr"] = schedules[k](step)
                logs[k].write(step, {**values[k], WALL: seconds(k)} if timed[k] else values[k])
                if trackers[k].update(step, values[k]):
                    best[k] = stacked.state(k)
                if step == total or trackers[k].should_stop:
                    finals[k] = (stacked.state(k), step, trackers[k].should_stop)
            active = [k for k in active if finals[k] is None]
            if progress:
                accuracy = [values[k]["val/accuracy"] for k in range(count)]
                progress.update(step, f"{count} models, val acc {min(accuracy):.4f}-{max(accuracy):.4f}",
                                force=step == total)
            if not active:
                break
            if step > start and time.monotonic() - last_save > checkpoint_seconds:
                for k in active:
                    save_resume(step, k)
                last_save = time.monotonic()
        for k in active:
            save_step(step, k)

        indices = torch.stack([sampler.indices(step) for sampler in samplers])     # [K, B]
        x, y = splits.train_x[indices], splits.train_y[indices]
        if augment:
            x = torch.stack([augment_batch(xk, s.data_seed, step) for xk, s in zip(x, specs)])
        compiling = time.perf_counter()
        with _autocast(spec.precision, device):
            losses = batch_losses(forward(x), y)
        for p in params:
            p.grad = None
        losses.sum().backward()   # models are independent: the sum's gradient for model k is its own loss's
        if weights:
            torch._foreach_mul_([w.grad for w in weights], mask_list)
        optimizer.step([schedules[a](step) for a, _ in optimizer.ranges])
        zero_weights()
        if spec.compile and compile_seconds is None:
            compile_seconds = time.perf_counter() - compiling
        train_loss_sum += losses.detach()
        train_loss_count += 1
        step += 1
        if progress and step % 50 == 0:
            progress.update(step)

    results = []
    for k, (state, stop, stopped) in enumerate(finals):
        save_step(stop, k, state)
        stacked.load(k, state)
    train_x, train_y = train_eval_split(splits)
    final_train = evaluate_batched(stacked, train_x, train_y, chunk, spec.precision)
    # test_eval=reported: the test set on the final weights of models stopped before the last step ...
    final_test = (evaluate_batched(stacked, splits.test_x, splits.test_y, chunk, spec.precision)
                  if any("test/accuracy" not in values[k] for k in range(count)) else None)
    for k in range(count):
        stacked.load(k, best[k])
    best_train = evaluate_batched(stacked, train_x, train_y, chunk, spec.precision)
    # ... and on the early-stop weights
    best_test = (evaluate_batched(stacked, splits.test_x, splits.test_y, chunk, spec.precision)
                 if any("test/accuracy" not in t.at_best for t in trackers) else None)
    for k, (state, stop, stopped) in enumerate(finals):
        models[k].load_state_dict(state)
        final = {name: v for name, v in values[k].items() if name.startswith(("val/", "test/"))}
        final["train/loss"], final["train/accuracy"] = final_train[k]
        if "test/accuracy" not in final:
            final["test/loss"], final["test/accuracy"] = final_test[k]
        at_best = dict(trackers[k].at_best)
        at_best["train/loss"], at_best["train/accuracy"] = best_train[k]
        if "test/accuracy" not in at_best:
            at_best["test/loss"], at_best["test/accuracy"] = best_test[k]
        results.append(TrainResult(iterations=stop, early_stop_iteration=trackers[k].best_step, at_early_stop=at_best,
                                   final=final, stopped_early=stopped, best_state=best[k],
                                   compile_seconds=compile_seconds, wall_seconds=seconds(k),
                                   batch_models=count))
    if progress:
        progress.close()
    return results


_MEMORY_SHARE = 0.25   # of the memory available when a batch starts
_COPIES = 10           # fp32 copies per parameter: weights, grad, 2 Adam moments, mask, best, final, resume, slack


def model_bytes(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Memory one model of a batch needs: ``_COPIES`` fp32 copies of its parameters plus one training
    batch's activations (measured on ``example``, run on the CPU). Evaluation memory does not grow with
    K (the engine divides its evaluation chunk by K)."""
    params = sum(p.numel() for p in model.parameters())
    return 4 * (_COPIES * params + 3 * 60 * activation_elements(model.cpu(), example.cpu()))


def batch_capacity(per_model: int, device: torch.device) -> int:
    """Models of ``per_model`` bytes that fit a quarter of the memory available when called (free GPU
    memory on CUDA, MemAvailable on Linux); at least 1, a large cap when memory is unknown."""
    return max(1, int(_MEMORY_SHARE * _available_bytes(device)) // per_model)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 40


class JobEntry(NamedTuple):
    """One job for ``run_jobs_batched``: what ``run_job`` takes besides the splits (plain tuples work too)."""

    job: Path
    spec: TrainSpec
    mask: Mask | None = None
    init_state: dict[str, torch.Tensor] | None = None
    context: dict | None = None
    start_step: int = 0
    report_steps: Sequence[int] = ()


def run_jobs_batched(entries: Sequence[JobEntry | tuple], splits: Splits, *, store: Path | None = None,
                     options: RunOptions | None = None, **settings) -> list[dict]:
    """``run_job`` for every entry, training the unfinished jobs in as few batches as possible; returns the
    summaries in entry order. Finished jobs (summary.json) are skipped; every other job directory is locked
    (in path order, so two processes with overlapping sets cannot deadlock), prepared and finished exactly
    like ``run_job`` (same files, same summary keys; ``wall_seconds``: its batch's training time). Jobs share a
    batch when their data, architecture and training specs allow it (``check_batchable``), they start,
    or resume, from the same step, and their masks put the same layers on sparse arithmetic
    (``sparse_layers``); anything else goes into another batch. ``options`` (or its fields as keywords)
    say how they run."""
    options = resolve(options, **settings)
    engine, sparse_below, progress = options.engine, options.sparse_below, options.progress
    checkpoint_seconds = options.checkpoint_seconds
    entries = [JobEntry(*e) for e in entries]
    summaries = [load_json(e.job / layout.SUMMARY) if (Path(e.job) / layout.SUMMARY).exists() else None for e in entries]
    todo = [i for i, s in enumerate(summaries) if s is None]
    with ExitStack() as held:
        for i in sorted(todo, key=lambda i: str(Path(entries[i].job).resolve())):
            held.enter_context(locked(Path(entries[i].job) / layout.LOCK))
        for i in todo:  # another process may have finished some while we waited
            if (Path(entries[i].job) / layout.SUMMARY).exists():
                summaries[i] = load_json(Path(entries[i].job) / layout.SUMMARY)
        todo = [i for i in todo if summaries[i] is None]
        prepared = {}
        batches = defaultdict(list)
        for i in todo:
            e = entries[i]
            context = dict(e.context or {})
            prepared[i] = (*prepare_job(Path(e.job), e.spec, splits, mask=e.mask, init_state=e.init_state,
                                        context=context), context)
            resume = Path(e.job) / layout.RESUME
            begin = ("resume", load_torch(resume)["step"]) if resume.exists() else ("start", e.start_step)
            sparse = sparse_layers(prepared[i][1], _sparse_threshold(engine, sparse_below))
            batches[(begin, _batch_key(e.spec, prepared[i][0]), sparse)].append(i)
        for ((_, begin), _, _), batch in batches.items():
            first = entries[batch[0]]
            label = " ".join(f"{k}={v}" for k, v in prepared[batch[0]][2].items() if k in ("trial", "level"))
            total = first.spec.training.steps.iterations(len(splits.train_x) // first.spec.training.batch_size)
            results = train_batched([prepared[i][0] for i in batch], [prepared[i][1] for i in batch], splits,
                                    [entries[i].spec.training for i in batch], jobs=[Path(entries[i].job) for i in batch],
                                    augment=first.spec.data.augment, engine=engine, sparse_below=sparse_below,
                                    progress=Progress(f"{label} x{len(batch)}".strip(), total, enabled=progress),
                                    checkpoint_seconds=checkpoint_seconds, start_step=min(entries[i].start_step for i in batch))
            for i, result in zip(batch, results):
                e, (model, mask, context) = entries[i], prepared[i]
                summaries[i] = finish_job(Path(e.job), e.spec, splits, model, mask, result, context=context,
                                          report_steps=list(e.report_steps))
    if store is not None:  # finished ones too: a kill may have come between their summary and their row
        for summary in summaries:
            index.record(store, summary)
    return summaries


def _sparse_threshold(engine: str, below: float) -> float:
    """Sparse layers are part of ``engine="auto"`` only; every named engine keeps its layers dense."""
    return below if engine == "auto" else 0.0


def sparse_layers(mask: Mask | None, below: float) -> tuple[str, ...]:
    """The layers of ``mask`` that keep less than ``below`` of their weights: the stacked Lenet engine
    trains them with sparse matmuls. A model's path depends on its own mask only, and models on different
    paths never share a batch, so a model's bits still do not depend on its batch mates."""
    if mask is None or below <= 0:
        return ()
    return tuple(name for name in mask if mask[name].float().mean().item() < below)


def _batch_key(spec: TrainSpec, model: Model) -> tuple:
    """Jobs with equal keys may share a batch: same data, architecture, and training up to ``MAY_DIFFER``."""
    shared = replace(spec.training, lr=1.0, weight_decay=0.0, decoupled_weight_decay=False, data_seed=0)
    return spec.data, type(model), tuple((n, tuple(t.shape)) for n, t in model.state_dict().items()), shared
