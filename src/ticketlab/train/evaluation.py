"""Evaluation: every engine's metrics go through ``evaluate_models``, so a new metric is added here once.

An engine supplies a function from a chunk of inputs to the logits ``[K, n, classes]`` of its K models;
this module chunks the split (tensors, or image files decoded chunk by chunk), shards it over
data-parallel ranks, scores the logits and sums exactly (float64 sums, counts as integers in float64).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn.functional as F

from ticketlab.data import ImageFiles
from ticketlab.train.stacked import batch_losses
from ticketlab.train.world import World

_EVAL_BYTES = 256 * 2 ** 20  # activation memory per evaluation chunk


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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


METRICS = ("loss", "accuracy")   # what every evaluation reports, as <split>/<metric> in metrics.jsonl


def scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[K, len(METRICS)]`` float64 sums over one chunk (logits ``[K, n, classes]``): the cross-entropy and
    the number of correct predictions of each of the K models; ``evaluate_models`` divides by the split's
    size. One model is scored on its own logits, K > 1 as a stack: each path is the one its engine has
    always used, so the sums keep their bits. A new metric is a new column here and a name in METRICS."""
    if len(logits) == 1:
        loss = F.cross_entropy(logits[0], target, reduction="sum").reshape(1)
    else:
        loss = batch_losses(logits, target, reduction="sum")
    correct = (logits.argmax(2) == target).sum(1)
    return torch.stack([loss.double(), correct.double()], 1)


@torch.no_grad()
def evaluate_models(logits_of: Callable[[torch.Tensor], torch.Tensor], k: int, x, y: torch.Tensor, chunk: int,
                    precision: str = "fp32", world: World = World(),
                    classes: torch.Tensor | None = None) -> list[dict[str, float]]:
    """``{metric: value}`` (METRICS: mean cross-entropy, accuracy) of each of ``k`` models on (x, y), ``logits_of(chunk) -> [k, n, C]``
    called on chunks of ``chunk`` examples. With a ``world`` of several ranks (every one calling this), each
    evaluates its share and the sums are added. ``x`` may be image files; with ``classes``, only those
    logits are scored and ``y`` holds positions among them (ImageNet-R/-A's 200 classes)."""
    if len(x) == 0:
        return [dict.fromkeys(METRICS, float("nan")) for _ in range(k)]
    n, part = len(x), world.shard(len(x))
    y = y[part]
    if isinstance(x, ImageFiles):
        chunks = x.view(part).chunks(chunk)
    else:
        x = x[part]
        chunks = (x[i:i + chunk] for i in range(0, len(x), chunk))
    sums = torch.zeros(k, len(METRICS), dtype=torch.float64, device=y.device)
    with autocast(precision, y.device):
        for i, inputs in zip(range(0, len(y), chunk), chunks):
            logits = logits_of(inputs).float()
            if classes is not None:
                logits = logits[..., classes]
            sums += scores(logits, y[i:i + chunk])
    world.sum_(sums)
    return [{name: total / n for name, total in zip(METRICS, row)} for row in sums.tolist()]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x, y: torch.Tensor, batch_size: int | None = None, precision: str = "fp32",
             world: World = World(), classes: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of one model on (x, y), in eval mode, in chunks (default:
    ``eval_chunk``); see ``evaluate_models``."""
    if len(x) == 0:
        return float("nan"), float("nan")
    batch_size = batch_size or eval_chunk(model, x[:1] if not isinstance(x, ImageFiles) else x.view(world.shard(len(x)))[:1])
    was_training = model.training
    model.eval()
    try:
        result = evaluate_models(lambda inputs: model(inputs).unsqueeze(0), 1, x, y, batch_size, precision, world,
                                 classes)[0]
        return result["loss"], result["accuracy"]
    finally:
        model.train(was_training)
