"""The one training loop. Evaluation, checkpoints, masks, early-stop bookkeeping and resume hook
in here; the lottery runner and every control call ``train``; nobody copies the loop."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ticketlab.data import BatchSampler, ImageFiles, Splits, train_batches, train_eval_split
from ticketlab.exec import ddp
from ticketlab import TicketlabError
from ticketlab.pruning import Mask
from ticketlab.spec import TrainingSpec
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch, save_torch
from ticketlab.train.metrics import WALL, EarlyStop, MetricLog
from ticketlab.train.optim import Schedule, build_optimizer, decoupled_decay
from ticketlab.train.progress import Progress




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
    batch_models: int = 1            # models trained side by side in that time (the batched engine's K)
    world_size: int = 1              # data-parallel processes that trained it (exec/ddp.py)


class _MaskedParams:
    """Pairs of (parameter, float mask) for the hot path: mask gradients before the step and re-zero
    weights after it, so momentum, Adam moments and weight decay can never revive a pruned weight."""

    def __init__(self, model: torch.nn.Module, mask: Mask | None):
        params = dict(model.named_parameters())
        names = list(mask) if mask is not None else []
        self.params = [params[n] for n in names]
        self.masks = [mask[n].to(device=params[n].device, dtype=params[n].dtype) for n in names]
        self.pruned = [~mask[n].to(device=params[n].device, dtype=torch.bool) for n in names]

    @torch.no_grad()
    def zero_weights(self) -> None:
        # masked_fill, not a multiply: a diverged run's NaN * 0 would leave NaN in pruned places
        for p, pruned in zip(self.params, self.pruned):
            p.masked_fill_(pruned, 0.0)

    @torch.no_grad()
    def zero_grads(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, [m for p, m in zip(self.params, self.masks) if p.grad is not None])


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(model: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last for convolutional networks on CPU (oneDNN's fast layout: Conv-2 trains 1.5x faster
    in fp32 on a 2-core x86 VM), the default layout otherwise. Values, not layouts, are saved, so the
    files do not depend on it."""
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return torch.channels_last if has_conv and device.type == "cpu" else torch.contiguous_format


_EVAL_BYTES = 256 * 2 ** 20  # activation memory per evaluation chunk


@torch.no_grad()
def probe_forward(model: torch.nn.Module, example: torch.Tensor, modules, record) -> None:
    """One eval-mode forward pass of ``example`` calling ``record(module, output)`` after each of
    ``modules``; hooks are removed and the model's train/eval mode restored afterwards."""
    hooks = [m.register_forward_hook(lambda m, _inputs, out: record(m, out)) for m in modules]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


def activation_elements(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Output elements of every leaf module for ``example`` (one eval-mode forward pass)."""
    sizes = []
    probe_forward(model, example, [m for m in model.modules() if not list(m.children())],
                  lambda _m, out: sizes.append(out.numel()))
    return sum(sizes)


def eval_chunk(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Examples per evaluation chunk: as many as fit ~256 MiB of activations (measured on one example),
    so Lenet evaluates 10,000 at once while Conv-2 does not allocate gigabytes per layer."""
    per_example = 4 * max(activation_elements(model, example[:1]), 1)
    return int(min(10000, max(32, _EVAL_BYTES // per_example)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None,
             precision: str = "fp32", world: ddp.World = ddp.World(),
             classes: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over (x, y), in chunks (default: ``eval_chunk``); with a
    ``world`` of several ranks (every one calling this), each evaluates its share and the sums are added.
    ``x`` may be image files (decoded chunk by chunk); with ``classes``, only those logits are scored
    and ``y`` holds positions among them (ImageNet-R/-A's 200 classes)."""
    if len(x) == 0:
        return float("nan"), float("nan")
    n, part = len(x), world.shard(len(x))
    y = y[part]
    if isinstance(x, ImageFiles):
        x = x.view(part)
        batch_size = batch_size or eval_chunk(model, x[:1])
        chunks = x.chunks(batch_size)
    else:
        x = x[part]
        batch_size = batch_size or eval_chunk(model, x)
        chunks = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=x.device)   # loss, correct (exact in float64)
    with _autocast(precision, x.device):
        for i, inputs in zip(range(0, len(y), batch_size), chunks):
            logits = model(inputs).float()
            if classes is not None:
                logits = logits[:, classes]
            target = y[i:i + batch_size]
            sums[0] += F.cross_entropy(logits, target, reduction="sum").double()
            sums[1] += (logits.argmax(1) == target).sum()
    model.train(was_training)
    if world.size > 1:
        ddp.sum_(sums)
    loss, correct = sums.tolist()
    return loss / n, correct / n


def train(model: torch.nn.Module, mask: Mask | None, splits: Splits, spec: TrainingSpec, *, job: Path | None = None,
          augment: bool = False, progress: Progress | None = None, checkpoint_seconds: float = 60.0,
          start_step: int = 0) -> TrainResult:
    """Train ``model`` (already initialised; pruned weights are zeroed here) under ``mask``.

    With ``job`` set, metrics go to ``job/metrics.jsonl``, weights at ``spec.checkpoints`` to
    ``job/step_<n>.pt``, and a resumable state to ``job/resume.pt`` at evaluation points at most every
    ``checkpoint_seconds``: rerunning after a kill continues from there and gives bit-identical results,
    because the data order and augmentation are pure functions of (seed, step). The time spent so far
    travels in ``resume.pt`` too and is logged at every evaluation as ``time/wall_seconds``, so a run's
    time counts every process that trained it (less what a kill threw away after the last checkpoint).

    ``start_step`` > 0 starts mid-schedule (weight rewinding to step k trains steps k..T with the
    learning rate and data order of those steps, and a fresh optimizer).

    Under torchrun every rank calls this (exec/ddp.py: the leader with ``job``, the others without):
    each trains on its slice of every batch and the gradients are averaged."""
    world = ddp.world()
    if world.size > 1:
        ddp.check(spec, model)
        if world.leader:
            ddp.announce(model, mask, splits, spec, augment=augment, start_step=start_step)
    device = splits.train_x.device
    model.to(memory_format=memory_format(model, device))
    sampler = BatchSampler(len(splits.train_x), spec.batch_size, spec.data_seed, device=device)
    ipe = sampler.iterations_per_epoch
    total = spec.steps.iterations(ipe)
    eval_every = spec.eval_every.iterations(ipe)
    keep_steps = {s.iterations(ipe) for s in spec.checkpoints}
    schedule = Schedule(spec, ipe, total)
    masked = _MaskedParams(model, mask)
    chunk = eval_chunk(model, splits.train_x[:1])
    fetch = train_batches(splits, sampler, spec.data_seed, augment, world.shard(spec.batch_size), spec.batch_size, total)
    optimizer = build_optimizer(spec, model.parameters(), device)
    scaler = torch.amp.GradScaler(device.type) if spec.precision == "fp16" and device.type == "cuda" else None
    log = MetricLog(job / layout.METRICS if job else None)
    tracker = EarlyStop(patience=spec.patience)
    best_state = None
    start = start_step
    resumed = False
    train_loss_sum = torch.zeros((), device=device)
    train_loss_count = 0
    began, prior_seconds, timed = time.monotonic(), 0.0, True

    resume_path = job / layout.RESUME if job else None
    state = load_torch(resume_path) if resume_path is not None and resume_path.exists() else None
    if world.size > 1:
        state = ddp.share(state)   # the leader's resume point, on every rank
        if state is None and not world.leader:
            torch.manual_seed(ddp.follower_seed(spec.data_seed, world.rank))
    if state is not None:
        if state.get("files", splits.info.files) != splits.info.files:   # image folders: the list of files
            raise TicketlabError(f"{resume_path or 'the resume point'} was saved when {splits.info.source} listed other "
                                 f"files (files {state['files']}, now {splits.info.files}): restore the folder as it "
                                 f"was, or delete the file to restart the job")
        if ddp.has_batchnorm(model) and state.get("world_size", 1) != world.size:
            raise TicketlabError(f"{resume_path or 'the resume point'} was saved by {state.get('world_size', 1)} "
                                 f"process(es) and BatchNorm statistics depend on it: rerun with that --nproc, "
                                 f"or delete the file to restart the job")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        tracker = EarlyStop(**state["tracker"])
        best_state = state["best_state"]
        ranks = state.get("rng_ranks") or []
        torch.set_rng_state(ranks[world.rank] if len(ranks) == world.size else state["rng"])
        if len(ranks) != world.size and not world.leader:
            torch.manual_seed(ddp.follower_seed(spec.data_seed, world.rank) + state["step"])
        start = state["step"]
        # files written before the time was recorded: the summary counts this process only, none is logged
        prior_seconds, timed = state.get("wall_seconds", 0.0), "wall_seconds" in state
        resumed = True
        log.truncate_after(start)  # the evaluation at `start` was logged before the checkpoint was saved
    else:
        log.truncate_after(start - 1)
    masked.zero_weights()

    def evaluate_all(step: int) -> dict[str, float]:
        result = {}
        for split, x, y in (("val", splits.val_x, splits.val_y), ("test", splits.test_x, splits.test_y)):
            if split == "test" and spec.test_eval == "reported" and step != total:
                continue  # test only where it is reported: the last step, and the early-stop weights below
            loss, acc = evaluate(model, x, y, chunk, spec.precision, world)
            result[f"{split}/loss"], result[f"{split}/accuracy"] = loss, acc
        return result

    def seconds() -> float:
        return prior_seconds + time.monotonic() - began

    def save_resume(step: int) -> None:
        ranks = ddp.rng_states() if world.size > 1 else None   # every rank takes part
        if resume_path is not None:
            save_torch(resume_path, {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "tracker": tracker.state(), "best_state": best_state, "rng": torch.get_rng_state(),
                                     "wall_seconds": seconds(), "world_size": world.size,
                                     **({"rng_ranks": ranks} if ranks else {}),
                                     **({"files": splits.info.files} if splits.info.files else {})})

    forward, compile_seconds = (torch.compile(model) if spec.compile else model), None
    if world.size > 1:
        # broadcasts the leader's weights and buffers now, BN buffers before every forward pass
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    last_save = time.monotonic()
    step = start
    resumed_at = start if resumed else -1
    stopped = False
    values: dict[str, float] = {}
    model.train()
    while True:
        if (step % eval_every == 0 or step == total) and step != resumed_at:
            values = evaluate_all(step)
            if train_loss_count:
                if world.size > 1:
                    ddp.sum_(train_loss_sum).div_(world.size)   # the mean over the whole batches
                values["train/batch_loss"] = (train_loss_sum / train_loss_count).item()
                train_loss_sum.zero_()
                train_loss_count = 0
            values["lr"] = schedule(step)
            log.write(step, {**values, WALL: seconds()} if timed else values)
            if tracker.update(step, values):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                progress.update(step, f"val acc {values['val/accuracy']:.4f}", force=step == total)
            stopped = tracker.should_stop
            if step == total or stopped:
                break
            due = step > start and time.monotonic() - last_save > checkpoint_seconds
            if ddp.agree(due) if world.size > 1 else due:
                save_resume(step)
                last_save = time.monotonic()
        if step in keep_steps and job is not None and not (job / layout.step_checkpoint(step)).exists():
            save_torch(job / layout.step_checkpoint(step), model.state_dict())

        lr = schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = fetch(step)
        compiling = time.perf_counter()
        with _autocast(spec.precision, device):
            loss = F.cross_entropy(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        masked.zero_grads()
        decoupled_decay(spec, model.parameters(), lr)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        masked.zero_weights()
        if spec.compile and compile_seconds is None:
            compile_seconds = time.perf_counter() - compiling
        train_loss_sum += loss.detach()
        train_loss_count += 1
        step += 1
        if progress and step % 50 == 0:
            progress.update(step)

    if job is not None and step in keep_steps and not (job / layout.step_checkpoint(step)).exists():
        save_torch(job / layout.step_checkpoint(step), model.state_dict())
    train_x, train_y = train_eval_split(splits)
    if progress and isinstance(splits.train_x, ImageFiles):   # decoding a million images takes minutes: say so
        shifted = sum(len(es.x) for es in splits.eval_sets.values())
        progress.update(step, f"end-of-run evaluations: the training split twice ({len(train_x):,} images)"
                              + (f" and the shifted test sets twice ({shifted:,})" if shifted else ""), force=True)
    final = {k: v for k, v in values.items() if k.startswith(("val/", "test/"))}
    # Training accuracy at the end and at the early-stopping point (PROTOCOL §4.2 leaves the set open:
    # the whole training split, or data.train_eval_size examples of it)
    final["train/loss"], final["train/accuracy"] = evaluate(model, train_x, train_y, chunk, spec.precision, world)
    if "test/accuracy" not in final:  # test_eval=reported and a patience stop before the last step
        final["test/loss"], final["test/accuracy"] = evaluate(model, splits.test_x, splits.test_y, chunk, spec.precision, world)
    at_best = dict(tracker.at_best)
    final_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    at_best["train/loss"], at_best["train/accuracy"] = evaluate(model, train_x, train_y, chunk, spec.precision, world)
    if "test/accuracy" not in at_best:
        at_best["test/loss"], at_best["test/accuracy"] = evaluate(model, splits.test_x, splits.test_y, chunk, spec.precision, world)
    for name, es in splits.eval_sets.items():   # shifted test sets, where the test set is reported ([S0])
        at_best[f"{name}/loss"], at_best[f"{name}/accuracy"] = evaluate(model, es.x, es.y, chunk, spec.precision,
                                                                        world, es.classes)
    model.load_state_dict(final_state)
    for name, es in splits.eval_sets.items():
        final[f"{name}/loss"], final[f"{name}/accuracy"] = evaluate(model, es.x, es.y, chunk, spec.precision,
                                                                    world, es.classes)
    if progress:
        progress.close()
    return TrainResult(iterations=step, early_stop_iteration=tracker.best_step, at_early_stop=at_best,
                       final=final, stopped_early=stopped, best_state=best_state, compile_seconds=compile_seconds,
                       wall_seconds=seconds(), world_size=world.size)
