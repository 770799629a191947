"""One training job in one directory: idempotent, resumable, atomically finished.

The lottery runner calls ``run_job`` for every level and every control branch; ``ticketlab train``
calls it once. A job whose ``summary.json`` exists is never trained again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ticketlab import models
from ticketlab.data import Splits, train_eval_split
from ticketlab.options import RunOptions, resolve
from ticketlab.pruning import Mask, apply_mask
from ticketlab.spec import TrainSpec, to_dict
from ticketlab.store import index, layout
from ticketlab.store.artifacts import load_json, load_torch, locked, save_json, save_torch
from ticketlab.train.loop import TrainResult, train
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


def run_job(job: Path, spec: TrainSpec, splits: Splits, *, mask: Mask | None = None,
            init_state: dict[str, torch.Tensor] | None = None, context: dict | None = None,
            store: Path | None = None, options: RunOptions | None = None, start_step: int = 0,
            report_steps: list[int] = (), **settings) -> dict:
    """Train ``spec`` in directory ``job`` from ``init_state`` (default: the model's own init) under
    ``mask`` (default: dense), and return its summary. ``context`` (experiment, kind, branch, trial,
    level, ...) goes into the summary and the store index; ``report_steps`` adds the test accuracy at
    those iterations (multiples of the evaluation interval) as ``test_accuracy_at_<step>``. ``options``
    (or its fields as keywords) say how it runs: progress and the checkpoint interval."""
    options = resolve(options, **settings)
    job = Path(job)
    summary_path = job / layout.SUMMARY
    if summary_path.exists():
        return _indexed(store, load_json(summary_path))
    context = dict(context or {})
    with locked(job / layout.LOCK):
        if summary_path.exists():  # another process finished it while we waited
            return _indexed(store, load_json(summary_path))
        model, mask = prepare_job(job, spec, splits, mask=mask, init_state=init_state, context=context)
        label = " ".join(f"{k}={context[k]}" for k in ("branch", "trial", "level") if k in context) or job.name
        result = train(model, mask, splits, spec.training, job=job, augment=spec.data.augment,
                       progress=Progress(label, spec.training.steps.iterations(len(splits.train_x) // spec.training.batch_size), enabled=options.progress),
                       checkpoint_seconds=options.checkpoint_seconds, start_step=start_step)
        summary = finish_job(job, spec, splits, model, mask, result, context=context,
                             report_steps=report_steps)
    return _indexed(store, summary)


def _indexed(store: Path | None, summary: dict) -> dict:
    """Record a finished job in the store's index, also when found finished: a kill between writing
    summary.json and recording it must not lose the row (recording is idempotent)."""
    if store is not None:
        index.record(store, summary)
    return summary


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
