"""K networks of one architecture trained in one batch: ``train_batched`` picks the engine
(engines.choose_engine) and gives a stacked engine its slots.

For every k, model k has the single loop's semantics: its own init, mask, seeded data order, lr schedule
and weight decay, the same evaluation points, early-stop bookkeeping, checkpoints, metrics records and
resume files in its own job directory. The results equal the single loop's within float rounding
(tests/test_batched.py): the batched GEMMs and the per-model loss mean round differently in the last bit,
and training amplifies that a little. The store and the plots cannot tell the engines apart.

What may differ within a batch: ``lr``, ``weight_decay``, ``decoupled_weight_decay`` and ``data_seed``;
every other training field must be equal. A batch resumes only when all its jobs resume from the same
step (the job runner, job.py, splits a store's jobs into such batches). fp16 on CUDA uses per-model loss
scaling and is trained model after model.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.data import ImageFiles, Splits
from ticketlab.models import Model
from ticketlab.options import SPARSE_BELOW
from ticketlab.pruning import Mask
from ticketlab.spec import TrainingSpec
from ticketlab.store import layout
from ticketlab.train import resume
from ticketlab.train.engines import (MAY_DIFFER, StackedEngine, batch_capacity, check_batchable,  # noqa: F401
                                     choose_engine, model_bytes, sparse_layers, sparse_threshold, use_sparse)
from ticketlab.train.loop import TrainResult, fit, train
from ticketlab.train.progress import Progress
from ticketlab.train.world import current


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
    kind = choose_engine(models, specs, device, engine, current(), isinstance(splits.train_x, ImageFiles))
    if kind == "sequential":
        return [train(m, mask, splits, spec, job=job, augment=augment, progress=progress,
                      checkpoint_seconds=checkpoint_seconds, start_step=start_step)
                for m, mask, spec, job in zip(models, masks, specs, jobs)]
    # A model's bits depend on its slot in the stack (and, for a stack of one, on the kernel baddbmm
    # picks), never on its batch mates. So every job keeps its slot across a resume (recorded in
    # resume.pt), slots whose jobs already finished are filled by discarded twins, and a batch of one
    # gets a twin: a resumed, smaller batch reproduces the uninterrupted run bit for bit.
    slot_of = {k: k for k in range(len(models))}
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
                placed[slot] = _twin(models[0], masks[0], specs[0], jobs[0], Path(scratch) / str(slot))
        slot_models, slot_masks, slot_specs, slot_jobs = map(list, zip(*placed))
        sparse = use_sparse(kind, specs[0], device, slot_masks, sparse_threshold(engine, sparse_below))
        stacked = StackedEngine(slot_models, slot_masks, splits, slot_specs, kind=kind, augment=augment, sparse=sparse)
        results = fit(stacked, slot_specs, slot_jobs, splits, progress=progress, checkpoint_seconds=checkpoint_seconds,
                      start_step=start_step)
    return [results[slot_of[k]] for k in range(len(models))]


def _recorded_slots(jobs) -> dict[int, int] | None:
    """Each job's slot from its resume point, when every job of the batch has one that records it."""
    slots = {}
    for k, job in enumerate(jobs):
        state = resume.read(job)
        if state is None or state.get("slot") is None:
            return None
        slots[k] = state["slot"]
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


def __getattr__(name: str):
    # the job runner and its entry type moved to job.py; old imports keep working
    if name in ("run_jobs_batched", "JobEntry"):
        from ticketlab.train import job
        return getattr(job, "run_jobs" if name == "run_jobs_batched" else name)
    raise AttributeError(name)
