"""Hyperparameters: frozen, typed, validated dataclasses; canonical hashing; ``--set`` overrides.

A run is named by the hash of the canonical JSON of its *non-default* fields, so adding a field
with a default later leaves every existing run name unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from ticketlab import TicketlabError
from ticketlab.steps import Step

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "step", "cosine")
_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "mnist"
    val_size: int = 5000          # validation examples drawn from train by a seeded permutation
    split_seed: int = 0           # fixes the validation split; shared by all trials
    train_subset: int = 0         # use only the first N training examples (0 = all), for quick runs
    augment: bool = False         # CIFAR pad-4 random crop + horizontal flip, as batched device ops
    allow_unofficial: bool = False  # load a copy whose md5 differs from the official files (labelled)

    def __post_init__(self):
        _check(self.val_size >= 0, "data.val_size must be >= 0")
        _check(self.train_subset >= 0, "data.train_subset must be >= 0 (0 = all)")


@dataclass(frozen=True)
class ModelSpec:
    name: str = "lenet"
    hidden: tuple[int, ...] = (300, 100)   # lenet only
    padding: str = "same"                  # conv2/4/6: 'same' ([S1]) or 'valid' ([S4])
    dropout: float = 0.0                   # conv2/4/6
    init: str = "glorot_normal"
    init_std: float = 0.0                  # for init='normal'
    zero_init_output: bool = False         # resnet50: FC initialised to zeros ([EXT-a])
    init_seed: int = 0

    def __post_init__(self):
        _check(self.padding in ("same", "valid"), f"model.padding must be 'same' or 'valid', got {self.padding!r}")
        _check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")
        _check(all(h > 0 for h in self.hidden), "model.hidden sizes must be positive")


@dataclass(frozen=True)
class TrainingSpec:
    optimizer: str = "adam"
    lr: float = 1.2e-3
    momentum: float = 0.0            # sgd only
    nesterov: bool = False           # sgd only
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False   # AdamW / SGDW-style instead of g + wd*theta
    batch_size: int = 60
    steps: Step = Step(50000, "it")
    schedule: str = "constant"
    milestones: tuple[Step, ...] = ()      # for schedule='step'
    gamma: float = 0.1
    warmup: Step = Step(0, "it")           # linear warmup from 0, then the schedule
    eval_every: Step = Step(100, "it")
    eval_batch_size: int = 5000
    patience: int = 0                      # >0: stop after this many evals without a better val accuracy ([S4])
    checkpoints: tuple[Step, ...] = ()     # weights kept at these steps (e.g. a rewind point)
    data_seed: int = 0                     # data order, augmentation, dropout
    precision: str = "fp32"

    def __post_init__(self):
        _check(self.optimizer in _OPTIMIZERS, f"training.optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.schedule in _SCHEDULES, f"training.schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        _check(self.precision in _PRECISIONS, f"training.precision must be one of {_PRECISIONS}, got {self.precision!r}")
        _check(self.lr > 0, f"training.lr must be > 0, got {self.lr}")
        _check(self.batch_size > 0, "training.batch_size must be > 0")
        _check(self.eval_batch_size > 0, "training.eval_batch_size must be > 0")
        _check(self.weight_decay >= 0, "training.weight_decay must be >= 0")
        _check(0.0 <= self.momentum < 1.0, "training.momentum must be in [0, 1)")
        _check(self.eval_every.amount > 0, "training.eval_every must be > 0")
        _check(self.patience >= 0, "training.patience must be >= 0")
        if self.optimizer == "adam":
            _check(self.momentum == 0.0 and not self.nesterov,
                   "training.momentum/nesterov apply to optimizer=sgd only")
        if self.nesterov:
            _check(self.momentum > 0, "training.nesterov needs training.momentum > 0")
        if self.schedule != "step":
            _check(not self.milestones, "training.milestones apply to schedule=step only")


@dataclass(frozen=True)
class PruningSpec:
    strategy: str = "magnitude"      # see ticketlab.pruning.registry
    scope: str = "layer"             # 'layer': per-layer rates by type; 'global': one pool
    conv_rate: float = 0.1           # fraction of the *remaining* weights removed per round
    fc_rate: float = 0.2
    output_rate: float = -1.0        # < 0: half of fc_rate ([S1])
    global_rate: float = 0.2
    global_types: tuple[str, ...] = ("conv", "fc", "output")  # which prunable tensors enter the global pool

    def __post_init__(self):
        _check(self.scope in ("layer", "global"), f"pruning.scope must be 'layer' or 'global', got {self.scope!r}")
        for name in ("conv_rate", "fc_rate", "global_rate"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"pruning.{name} must be in [0, 1), got {value}")
        _check(self.output_rate < 1.0, f"pruning.output_rate must be < 1 (negative = half of fc_rate), got {self.output_rate}")
        bad = set(self.global_types) - {"conv", "fc", "output"}
        _check(not bad, f"pruning.global_types may hold only conv, fc, output; got {sorted(bad)}")

    def rate_for(self, kind: str) -> float:
        """The per-round rate of a layer of this kind ('conv', 'fc' or 'output') under scope='layer'."""
        if kind == "output":
            return self.fc_rate / 2 if self.output_rate < 0 else self.output_rate
        return {"conv": self.conv_rate, "fc": self.fc_rate}[kind]


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines one training run."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)


def _is_section(value: Any) -> bool:
    """Spec sections are dataclasses; Step is a dataclass too but a value."""
    return dataclasses.is_dataclass(value) and not (value is Step or isinstance(value, Step))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise TicketlabError(message)


# ----------------------------------------------------------------------------- canonical form

def _jsonable(value: Any) -> Any:
    if isinstance(value, Step):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def to_dict(spec: Any) -> dict:
    """The full spec as plain JSON-able data (readable ``spec.json``)."""
    return _jsonable(spec)


def non_defaults(spec: Any) -> dict:
    """Only the fields that differ from the dataclass defaults, nested by section."""
    out = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if _is_section(value):
            sub = non_defaults(value)
            if sub:
                out[f.name] = sub
        elif value != _default_of(f):
            out[f.name] = _jsonable(value)
    return out


def spec_hash(spec: Any, kind: str, extra: Mapping[str, Any] | None = None) -> str:
    """A stable short name for a run: sha256 of the canonical JSON of its kind, its non-default fields
    and ``extra`` (e.g. the hash of the mask it trains under)."""
    canonical = json.dumps({"kind": kind, **non_defaults(spec), **(extra or {})}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def from_dict(cls: type, data: Mapping) -> Any:
    """Rebuild a spec from ``to_dict`` output (or a partial dict); unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    _check(not unknown, f"unknown field(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if _is_section(hint):
            kwargs[name] = from_dict(hint, value)
        else:
            kwargs[name] = _coerce(hint, value, name)
    return cls(**kwargs)


# ----------------------------------------------------------------------------- --set overrides

def apply_overrides(spec: Any, overrides: Mapping[str, Any]) -> Any:
    """Apply ``{"section.field": value}`` overrides (values may be strings from the command line).

    All overrides are gathered first and each section is rebuilt once, so validation sees the final
    combination (setting milestones and schedule=step in either order both work)."""
    changes: dict = {}
    for key, value in overrides.items():
        _collect(spec, key.split("."), value, key, changes)
    return _rebuild(spec, changes)


def _collect(spec: Any, path: list[str], value: Any, full_key: str, changes: dict) -> None:
    names = {f.name for f in fields(spec)}
    head = path[0]
    if head not in names:
        raise TicketlabError(f"unknown setting {full_key!r}: {type(spec).__name__} has {sorted(names)}")
    current = getattr(spec, head)
    if len(path) > 1:
        _check(_is_section(current), f"{full_key!r}: {head} is not a section")
        _collect(current, path[1:], value, full_key, changes.setdefault(head, {}))
        return
    _check(not _is_section(current), f"{full_key!r} names a section; set one of its fields")
    changes[head] = _coerce(typing.get_type_hints(type(spec))[head], value, full_key)


def _rebuild(spec: Any, changes: dict) -> Any:
    if not changes:
        return spec
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    for name, change in changes.items():
        values[name] = _rebuild(values[name], change) if isinstance(change, dict) and _is_section(values[name]) else change
    return type(spec)(**values)


def parse_set(items: list[str] | None) -> dict[str, str]:
    """Turn ``["training.lr=0.1", ...]`` into ``{"training.lr": "0.1"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        _check(bool(sep) and bool(key.strip()), f"--set expects section.field=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Convert ``value`` (often a string) to the annotated type, or raise a clear error."""
    origin = typing.get_origin(hint)
    try:
        if hint is Step:
            return Step.parse(value)
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value.replace("_", ""))
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if origin is tuple:
            args = typing.get_args(hint)
            items = value
            if isinstance(value, str):
                text = value.strip().strip("[]()")
                items = [v for v in (s.strip() for s in text.split(",")) if v]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(args[0], v, key) for v in items)
            if len(items) != len(args):
                raise ValueError(value)
            return tuple(_coerce(a, v, key) for a, v in zip(args, items))
        if origin in (typing.Union, types.UnionType):
            errors = []
            for arg in typing.get_args(hint):
                if arg is type(None):
                    if value is None or str(value).lower() in ("none", "null"):
                        return None
                    continue
                try:
                    return _coerce(arg, value, key)
                except TicketlabError as exc:
                    errors.append(exc)
            raise ValueError(value)
    except TicketlabError:
        raise
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise TicketlabError(f"cannot read {key}={value!r} as {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
