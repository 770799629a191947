"""Training jobs, one per directory: idempotent, resumable, atomically finished.

``run_jobs`` is the one job runner: the lottery runner calls it with every round's jobs (levels, tickets,
controls), ``ticketlab train`` with one job (``run_job``). A job whose ``summary.json`` exists is never
trained again.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from ticketlab import models
from ticketlab.data import Splits, train_eval_split
from ticketlab.options import RunOptions, resolve
from ticketlab.pruning import Mask, apply_mask
from ticketlab.spec import TrainSpec, to_dict
from ticketlab.store import index, layout
from ticketlab.store.artifacts import load_json, load_torch, locked, save_json, save_torch
from ticketlab.train import resume
from ticketlab.train.batched import train_batched
from ticketlab.train.engines import sparse_layers, sparse_threshold
from ticketlab.train.loop import TrainResult
from ticketlab.train.metrics import read_metrics
from ticketlab.train.progress import Progress


def build_model(spec: TrainSpec, splits: Splits) -> models.Model:
    return models.build(spec.model, splits.info.input_shape, splits.info.num_classes).to(splits.train_x.device)


def full_mask(model: models.Model) -> Mask:
    """The all-ones mask over the model's prunable weights."""
    return Mask.ones({name: p.shape for name, p in model.prunable_weights().items()})


def weight_counts(model: models.Model, mask: Mask) -> tuple[int, int]:
    """(weights remaining, all weights): the Pm denominator counts every weight tensor, prunable or not."""
    params = dict(model.named_parameters())
    total = sum(params[n].numel() for n in model.weight_info())
    unprunable = sum(params[n].numel() for n, info in model.weight_info().items() if not info.prunable)
    return mask.count() + unprunable, total


class JobEntry(NamedTuple):
    """One job for ``run_jobs``: its directory and spec, the mask (None: dense) and initial state (None: the
    model's own init) it trains from, its ``context`` (experiment, kind, branch, trial, level, ...: into the
    summary and the index), the step it starts at and the iterations whose test accuracy it reports."""

    job: Path
    spec: TrainSpec
    mask: Mask | None = None
    init_state: dict[str, torch.Tensor] | None = None
    context: dict | None = None
    start_step: int = 0
    report_steps: Sequence[int] = ()


def run_job(job: Path, spec: TrainSpec, splits: Splits, *, mask: Mask | None = None,
            init_state: dict[str, torch.Tensor] | None = None, context: dict | None = None,
            store: Path | None = None, options: RunOptions | None = None, start_step: int = 0,
            report_steps: list[int] = (), **settings) -> dict:
    """Train ``spec`` in directory ``job`` from ``init_state`` (default: the model's own init) under
    ``mask`` (default: dense), and return its summary: ``run_jobs`` of one job, through the single loop
    (``engine="auto"`` means sequential for a job alone). ``report_steps`` adds the test accuracy at those
    iterations (multiples of the evaluation interval) as ``test_accuracy_at_<step>``."""
    options = resolve(options, **settings)
    if options.engine == "auto":
        options = replace(options, engine="sequential")
    entry = JobEntry(Path(job), spec, mask, init_state, context, start_step, tuple(report_steps))
    return run_jobs([entry], splits, store=store, options=options)[0]


def run_jobs(entries: Sequence[JobEntry | tuple], splits: Splits, *, store: Path | None = None,
             options: RunOptions | None = None, **settings) -> list[dict]:
    """The one job runner: train the unfinished jobs of ``entries`` in as few batches as possible and return
    every summary in entry order. A job whose ``summary.json`` exists is never trained again; every other
    job directory is locked (in path order, so two processes with overlapping sets cannot deadlock),
    prepared (``prepare_job``), trained and finished (``finish_job``: ``wall_seconds`` is its batch's
    training time). Jobs share a batch when their data, architecture and training specs allow it
    (``engines.check_batchable``), they start, or resume, from the same step, and their masks put the same
    layers on sparse arithmetic (``engines.sparse_layers``); anything else goes into another batch.
    ``options`` (or its fields as keywords) say how they run; finished jobs are recorded in ``store``'s index."""
    options = resolve(options, **settings)
    entries = [JobEntry(*e) for e in entries]
    summaries = [_summary(e.job) for e in entries]
    todo = [i for i, s in enumerate(summaries) if s is None]
    below = sparse_threshold(options.engine, options.sparse_below)
    with ExitStack() as held:
        for i in sorted(todo, key=lambda i: str(Path(entries[i].job).resolve())):
            held.enter_context(locked(Path(entries[i].job) / layout.LOCK))
        for i in todo:  # another process may have finished some while we waited
            summaries[i] = _summary(entries[i].job)
        todo = [i for i in todo if summaries[i] is None]
        prepared, batches = {}, defaultdict(list)
        for i in todo:
            e = entries[i]
            context = dict(e.context or {})
            model, mask = prepare_job(Path(e.job), e.spec, splits, mask=e.mask, init_state=e.init_state, context=context)
            prepared[i] = (model, mask, context)
            step = resume.step_of(Path(e.job))
            begin = ("start", e.start_step) if step is None else ("resume", step)
            batches[(begin, _batch_key(e.spec, model), sparse_layers(mask, below))].append(i)
        for ((_, begin), _, _), batch in batches.items():
            first, context = entries[batch[0]], prepared[batch[0]][2]
            keys = ("branch", "trial", "level") if len(batch) == 1 else ("trial", "level")
            label = " ".join(f"{k}={context[k]}" for k in keys if k in context)
            label = (f"{label} x{len(batch)}" if len(batch) > 1 else label).strip() or Path(first.job).name
            total = first.spec.training.steps.iterations(len(splits.train_x) // first.spec.training.batch_size)
            results = train_batched([prepared[i][0] for i in batch], [prepared[i][1] for i in batch], splits,
                                    [entries[i].spec.training for i in batch], jobs=[Path(entries[i].job) for i in batch],
                                    augment=first.spec.data.augment, engine=options.engine,
                                    sparse_below=options.sparse_below,
                                    progress=Progress(label, total, enabled=options.progress),
                                    checkpoint_seconds=options.checkpoint_seconds,
                                    start_step=min(entries[i].start_step for i in batch))
            for i, result in zip(batch, results):
                e, (model, mask, context) = entries[i], prepared[i]
                summaries[i] = finish_job(Path(e.job), e.spec, splits, model, mask, result, context=context,
                                          report_steps=list(e.report_steps))
    if store is not None:  # finished ones too: a kill may have come between their summary and their row
        for summary in summaries:
            index.record(store, summary)
    return summaries


def _summary(job: Path) -> dict | None:
    path = Path(job) / layout.SUMMARY
    return load_json(path) if path.exists() else None


def _batch_key(spec: TrainSpec, model: models.Model) -> tuple:
    """Jobs with equal keys may share a batch: same data, architecture, and training up to ``MAY_DIFFER``."""
    shared = replace(spec.training, lr=1.0, weight_decay=0.0, decoupled_weight_decay=False, data_seed=0)
    return spec.data, type(model), tuple((n, tuple(t.shape)) for n, t in model.state_dict().items()), shared


def prepare_job(job: Path, spec: TrainSpec, splits: Splits, *, mask: Mask | None, init_state: dict[str, torch.Tensor] | None,
                context: dict) -> tuple[models.Model, Mask]:
    """The model (at ``init.pt``, masked) and mask of job ``job``, writing ``init.pt``, ``mask.npz`` and
    ``spec.json`` first; shared by ``run_job`` and the batched engine so both leave the same files."""
    model = build_model(spec, splits)
    mask = mask if mask is not None else full_mask(model)
    if (job / layout.INIT).exists():
        model.load_state_dict(load_torch(job / layout.INIT, map_location=splits.train_x.device))
    else:
        if init_state is not None:
            model.load_state_dict(init_state)
        apply_mask(dict(model.named_parameters()), mask)  # pruned weights are zero in every saved state
        save_torch(job / layout.INIT, model.state_dict())
    if not (job / layout.MASK).exists():
        mask.save(job / layout.MASK)
    save_json(job / layout.SPEC, {"spec": to_dict(spec), "mask_hash": mask.hash(), "context": context,
                                  "data": splits.info.label})
    return model, mask


def finish_job(job: Path, spec: TrainSpec, splits: Splits, model: models.Model, mask: Mask, result: TrainResult, *,
               context: dict, report_steps: list[int] = ()) -> dict:
    """Write ``final.pt``, ``best.pt`` and (last) ``summary.json`` of a trained job and return the summary;
    shared by ``run_job`` and the batched engine so both write the same keys."""
    save_torch(job / layout.FINAL, model.state_dict())
    save_torch(job / layout.BEST, result.best_state)
    remaining, total = weight_counts(model, mask)
    summary = {
        **context,
        "run_id": context.get("run_id", job.name),
        "path": str(job.resolve()),
        "model": spec.model.name,
        "dataset": spec.data.dataset,
        "data_official": int(splits.info.official),
        "data_label": splits.info.label,
        **({"data_files": splits.info.files} if splits.info.files else {}),
        "mask_hash": mask.hash(),
        "weights_remaining": remaining,
        "weights_total": total,
        "pm": 100.0 * remaining / total,
        "iterations": result.iterations,
        "stopped_early": result.stopped_early,
        "early_stop_iteration": result.early_stop_iteration,
        "test_accuracy_at_early_stop": result.at_early_stop["test/accuracy"],
        "val_accuracy_at_early_stop": result.at_early_stop["val/accuracy"],
        "val_loss_at_early_stop": result.at_early_stop["val/loss"],
        "train_accuracy_at_early_stop": result.at_early_stop["train/accuracy"],
        "final_test_accuracy": result.final["test/accuracy"],
        "final_val_accuracy": result.final["val/accuracy"],
        "final_train_accuracy": result.final["train/accuracy"],
        **({"train_eval_examples": len(train_eval_split(splits)[1])} if spec.data.train_eval_size else {}),
        "wall_seconds": result.wall_seconds,   # every process's time on it, across resumes
        "batch_models": result.batch_models,   # models that shared that time (batched engine)
    }
    for name in splits.eval_sets:   # shifted test sets ([S0]), at the early-stop point and at the end
        summary[f"{name}_accuracy_at_early_stop"] = result.at_early_stop[f"{name}/accuracy"]
        summary[f"final_{name}_accuracy"] = result.final[f"{name}/accuracy"]
    if result.world_size > 1:
        summary["world_size"] = result.world_size   # data-parallel processes (exec/ddp.py)
    test_accuracy = dict(read_metrics(job / layout.METRICS).get("test/accuracy", []))
    summary.update({f"test_accuracy_at_{s}": test_accuracy[s] for s in report_steps if s in test_accuracy})
    if result.compile_seconds is not None:
        summary["compile_seconds"] = result.compile_seconds
    save_json(job / layout.SUMMARY, summary)
    (job / layout.RESUME).unlink(missing_ok=True)  # no longer needed once the summary exists
    return summary
