"""Model names -> builders, default shapes, the ModelSpec fields each reads, and paper settings."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Callable

import torch
from torch import nn

from ticketlab import TicketlabError
from ticketlab.models import resnet
from ticketlab.models.base import Model
from ticketlab.models.conv import ConvNet
from ticketlab.models.init import check_init, initialize
from ticketlab.models.lenet import Lenet
from ticketlab.models.vgg import VGG
from ticketlab.spec import ModelSpec

# ModelSpec fields every model reads; any other field must stay at its default unless listed in ``uses``
_COMMON = frozenset({"name", "init", "init_std", "init_seed"})


@dataclass(frozen=True)
class Entry:
    build: Callable[[ModelSpec, tuple[int, ...], int], Model]   # (spec, input_shape, num_classes)
    input_shape: tuple[int, ...]
    num_classes: int
    uses: frozenset[str]            # model-specific ModelSpec fields it reads
    paper: dict[str, object]        # --set overrides that follow the paper (PROTOCOL §1.5, §3.2)


def _conv_paper(lr: float, steps: str, conv_rate: float) -> dict[str, object]:
    # [S1] Fig 2, H.1: Adam, batch 60 (the defaults); output rate = half the FC rate (the default)
    return {"data.dataset": "cifar10", "training.lr": lr, "training.steps": steps,
            "pruning.conv_rate": conv_rate, "pruning.fc_rate": 0.2}


def _cifar_sgd(batch: int, steps: str, milestones: list[str]) -> dict[str, object]:
    # [S1] App. I.2/I.3. Order matters: apply_overrides validates after each key, so the optimizer
    # and the schedule come before the momentum and the milestones that need them.
    return {"data.dataset": "cifar10", "data.augment": True,
            "training.optimizer": "sgd", "training.momentum": 0.9, "training.lr": 0.1,
            "training.weight_decay": 1e-4, "training.batch_size": batch, "training.steps": steps,
            "training.schedule": "step", "training.milestones": milestones,
            "pruning.scope": "global", "pruning.global_rate": 0.2}


def _conv(blocks: int, spec: ModelSpec, input_shape, num_classes) -> Model:
    return ConvNet(blocks, spec.padding, spec.dropout, input_shape, num_classes)


_CONV_FIELDS = frozenset({"padding", "dropout"})

MODELS: dict[str, Entry] = {
    "lenet": Entry(lambda s, shape, k: Lenet(s.hidden, shape, k), (1, 28, 28), 10, frozenset({"hidden"}),
                   {"data.dataset": "mnist"}),
    "conv2": Entry(partial(_conv, 1), (3, 32, 32), 10, _CONV_FIELDS, _conv_paper(2e-4, "20000it", 0.1)),
    "conv4": Entry(partial(_conv, 2), (3, 32, 32), 10, _CONV_FIELDS, _conv_paper(3e-4, "25000it", 0.1)),
    "conv6": Entry(partial(_conv, 3), (3, 32, 32), 10, _CONV_FIELDS, _conv_paper(3e-4, "30000it", 0.15)),
    "vgg19": Entry(lambda s, shape, k: VGG(shape, k), (3, 32, 32), 10, frozenset(),
                   _cifar_sgd(64, "112480it", ["56240it", "84360it"])),
    "cifar_resnet20": Entry(lambda s, shape, k: resnet.cifar_resnet20(shape, k), (3, 32, 32), 10, frozenset(),
                            _cifar_sgd(128, "30000it", ["20000it", "25000it"])),
    # [S0]; [EXT-a]: 10% linear warmup then cosine, validation every 1,000 iterations, FC zero-init
    "resnet50": Entry(lambda s, shape, k: resnet.resnet50(shape, k), (3, 224, 224), 1000,
                      frozenset({"zero_init_output"}),
                      {"data.dataset": "imagenet", "training.optimizer": "sgd", "training.momentum": 0.9,
                       "training.lr": 0.8, "training.weight_decay": 1e-4, "training.batch_size": 2048,
                       "training.steps": "48000it", "training.schedule": "cosine", "training.warmup": "4800it",
                       "training.eval_every": "1000it", "pruning.scope": "global", "pruning.global_rate": 0.2,
                       "model.zero_init_output": True}),
}


def names() -> list[str]:
    """Every model name, in the order of PROTOCOL §2."""
    return list(MODELS)


def build(spec: ModelSpec, input_shape: tuple[int, ...] | None = None, num_classes: int | None = None) -> Model:
    """The model ``spec`` names, initialised deterministically from ``spec.init_seed`` (on the CPU).

    ``input_shape`` (C, H, W) and ``num_classes`` default to the model's own dataset.
    """
    check_init(spec)
    model = _construct(spec, input_shape, num_classes)
    model.to_empty(device="cpu")
    model.spec = spec   # what built it (data-parallel followers build the same)
    return initialize(model, spec)


def describe(name: str, spec: ModelSpec | None = None, input_shape: tuple[int, ...] | None = None,
             num_classes: int | None = None) -> dict:
    """Element counts of model ``name`` (built on the meta device, so instant even for resnet50).

    weights: every conv kernel and FC matrix, prunable or not; prunable: those tagged prunable;
    conv/fc/output: weights by kind; biases: conv/FC bias elements; bn_affine: BN gamma + beta;
    bn_buffers: BN running mean + variance (not num_batches_tracked). ``spec`` (its name replaced by
    ``name``) matters for lenet's hidden sizes and conv padding.
    """
    spec = ModelSpec(name=name) if spec is None else replace(spec, name=name)
    model = _construct(spec, input_shape, num_classes)
    params = dict(model.named_parameters())
    counts = {"name": name, "weights": 0, "prunable": 0, "conv": 0, "fc": 0, "output": 0,
              "biases": 0, "bn_affine": 0, "bn_buffers": 0}
    for param_name, info in model.weight_infos.items():
        n = params[param_name].numel()
        counts["weights"] += n
        counts[info.kind] += n
        counts["prunable"] += n if info.prunable else 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            counts["bn_affine"] += module.weight.numel() + module.bias.numel()
            counts["bn_buffers"] += module.running_mean.numel() + module.running_var.numel()
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            counts["biases"] += module.bias.numel()
    return counts


def paper_defaults(name: str) -> dict[str, object]:
    """``--set``-style overrides (``"section.field": value``) that make a spec follow the paper for
    ``name``; ``pruning.*`` keys belong to PruningSpec, the rest to TrainSpec."""
    return dict(_entry(name).paper)


def _entry(name: str) -> Entry:
    if name not in MODELS:
        raise TicketlabError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def _construct(spec: ModelSpec, input_shape, num_classes) -> Model:
    """Check ``spec`` against the model and build it on the meta device (no memory, no RNG)."""
    entry = _entry(spec.name)
    _check_unused(spec, entry)
    shape = tuple(entry.input_shape if input_shape is None else input_shape)
    classes = entry.num_classes if num_classes is None else num_classes
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise TicketlabError(f"input_shape must be three positive integers (C, H, W), got {shape}")
    if not (isinstance(classes, int) and classes > 0):
        raise TicketlabError(f"num_classes must be a positive integer, got {classes!r}")
    with torch.device("meta"):
        model = entry.build(spec, shape, classes)
        # a dry run on meta tensors catches inputs the layers cannot take (too small, wrong rank)
        try:
            out = model(torch.empty(2, *shape))
        except RuntimeError as exc:
            raise TicketlabError(f"{spec.name} cannot take inputs of shape {shape}: "
                                 f"{str(exc).splitlines()[0]}") from exc
    assert out.shape == (2, classes), out.shape
    return model


def _check_unused(spec: ModelSpec, entry: Entry) -> None:
    defaults = ModelSpec()
    for f in fields(ModelSpec):
        if f.name in _COMMON or f.name in entry.uses:
            continue
        if getattr(spec, f.name) != getattr(defaults, f.name):
            users = [n for n, e in MODELS.items() if f.name in e.uses]
            raise TicketlabError(f"model.{f.name} does not apply to {spec.name} (only to {', '.join(users)}); "
                                 f"remove that setting")
