"""Hyperparameters: frozen, typed, validated dataclasses; canonical hashing; ``--set`` overrides.

A run is named by the hash of the canonical JSON of its *non-default* fields, so adding a field
with a default later leaves every existing run name unchanged. Each field carries one line of help
(``setting(default, help)``, shown by ``ticketlab settings``); fields with a fixed set of values are
``Literal`` types, which both validation and ``--set`` coercion read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, Mapping

from ticketlab import TicketlabError
from ticketlab.steps import Step


def setting(default: Any, help: str) -> Any:
    """A hyperparameter field with its default and one line of help (metadata: never part of a run's name)."""
    return field(default=default, metadata={"help": help})


def _check_choices(spec: Any) -> None:
    """Every ``Literal`` field (or tuple of them) of ``spec`` holds one of its allowed values."""
    hints = _hints(type(spec))
    for f in fields(spec):
        name, hint, value = f.name, hints[f.name], getattr(spec, f.name)
        allowed = _choices(hint)
        if allowed is not None and value not in allowed:
            raise TicketlabError(f"{spec.SECTION}.{name} must be {_alternatives(allowed)}, got {value!r}")
        if typing.get_origin(hint) is tuple and (item := _choices(typing.get_args(hint)[0])) is not None:
            bad = [v for v in value if v not in item]
            _check(not bad, f"{spec.SECTION}.{name} may hold {_alternatives(item)}; got {bad}")


@dataclass(frozen=True)
class DataSpec:
    SECTION: ClassVar[str] = "data"

    dataset: str = setting("mnist", "dataset name (see ticketlab.data.registry)")
    val_size: int = setting(5000, "validation examples drawn from train by a seeded permutation")
    split_seed: int = setting(0, "fixes the validation split; shared by all trials")
    train_subset: int = setting(0, "use only the first N training examples (0 = all), for quick runs")
    augment: bool = setting(False, "CIFAR pad-4 random crop + horizontal flip, as batched device ops")
    allow_unofficial: bool = setting(False, "load a copy whose md5 differs from the official files (labelled)")
    image_size: int = setting(0, "image folders (imagenet): side of the decoded crops (0 = the dataset's, 224)")
    eval_sets: tuple[str, ...] = setting((), "image folders: shifted test sets reported beside test ([S0]: IN-V2/R/A/Sketch)")
    train_eval_size: int = setting(0, "training accuracy on N examples spread evenly over the split (0 = all)")

    def __post_init__(self):
        _check_choices(self)
        _check(self.val_size >= 0, "data.val_size must be >= 0")
        _check(self.train_subset >= 0, "data.train_subset must be >= 0 (0 = all)")
        _check(self.train_eval_size >= 0, "data.train_eval_size must be >= 0 (0 = the whole training split)")
        _check(self.image_size >= 0, "data.image_size must be >= 0 (0 = the dataset's own size)")
        _check(len(set(self.eval_sets)) == len(self.eval_sets), f"data.eval_sets names a set twice: {self.eval_sets}")


@dataclass(frozen=True)
class ModelSpec:
    SECTION: ClassVar[str] = "model"

    name: str = setting("lenet", "model name (`ticketlab models` lists them)")
    hidden: tuple[int, ...] = setting((300, 100), "lenet only: hidden layer sizes")
    padding: Literal["same", "valid"] = setting("same", "conv2/4/6: 'same' ([S1]) or 'valid' ([S4])")
    dropout: float = setting(0.0, "conv2/4/6: dropout probability")
    init: str = setting("glorot_normal", "weight initialisation scheme (see ticketlab.models.init)")
    init_std: float = setting(0.0, "the standard deviation for init='normal'")
    zero_init_output: bool = setting(False, "resnet50: FC initialised to zeros ([EXT-a])")
    init_seed: int = setting(0, "seed of the initial weights (trial t adds t)")

    def __post_init__(self):
        _check_choices(self)
        _check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")
        _check(all(h > 0 for h in self.hidden), "model.hidden sizes must be positive")


@dataclass(frozen=True)
class TrainingSpec:
    SECTION: ClassVar[str] = "training"

    optimizer: Literal["sgd", "adam"] = setting("adam", "the optimizer")
    lr: float = setting(1.2e-3, "learning rate")
    momentum: float = setting(0.0, "sgd only: momentum")
    nesterov: bool = setting(False, "sgd only: Nesterov momentum")
    betas: tuple[float, float] = setting((0.9, 0.999), "adam: the two moment decay rates")
    eps: float = setting(1e-8, "adam: epsilon")
    weight_decay: float = setting(0.0, "L2 weight decay")
    decoupled_weight_decay: bool = setting(False, "AdamW / SGDW-style decay instead of g + wd*theta")
    batch_size: int = setting(60, "examples per step")
    steps: Step = setting(Step(50000, "it"), "training length, in iterations (it) or epochs (ep)")
    schedule: Literal["constant", "step", "cosine"] = setting("constant", "learning-rate schedule")
    milestones: tuple[Step, ...] = setting((), "schedule=step: steps where the lr is multiplied by gamma")
    gamma: float = setting(0.1, "schedule=step: the lr factor at each milestone")
    warmup: Step = setting(Step(0, "it"), "linear warmup from 0, then the schedule")
    schedule_start: Step = setting(Step(0, "it"), "constant lr before this step; warmup and schedule run after it ([S0])")
    eval_every: Step = setting(Step(100, "it"), "evaluate validation (and test) every this many steps")
    test_eval: Literal["every", "reported"] = setting(
        "every", "test set at 'every' evaluation, or only where 'reported' (end, early stop)")
    patience: int = setting(0, ">0: stop after this many evals without a better val accuracy ([S4])")
    checkpoints: tuple[Step, ...] = setting((), "weights kept at these steps (e.g. a rewind point)")
    data_seed: int = setting(0, "data order, augmentation, dropout (trial t adds t)")
    precision: Literal["fp32", "bf16", "fp16"] = setting("fp32", "arithmetic precision of training")
    compile: bool = setting(False, "torch.compile the training forward pass (its time: summary compile_seconds)")

    def __post_init__(self):
        _check_choices(self)
        _check(self.lr > 0, f"training.lr must be > 0, got {self.lr}")
        _check(self.batch_size > 0, "training.batch_size must be > 0")
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
    SECTION: ClassVar[str] = "pruning"

    strategy: str = setting("magnitude", "pruning strategy (see ticketlab.pruning.registry)")
    scope: Literal["layer", "global"] = setting("layer", "'layer': per-layer rates by type; 'global': one pool")
    conv_rate: float = setting(0.1, "fraction of the *remaining* conv weights removed per round")
    fc_rate: float = setting(0.2, "fraction of the remaining fully-connected weights removed per round")
    output_rate: float = setting(-1.0, "the output layer's rate; < 0: half of fc_rate ([S1])")
    global_rate: float = setting(0.2, "scope=global: fraction of the pool removed per round")
    global_types: tuple[Literal["conv", "fc", "output"], ...] = setting(
        ("conv", "fc", "output"), "which prunable tensors enter the global pool")
    structure_norm: Literal["l1", "l2"] = setting("l1", "strategy=structured: a unit's score, the norm of its weights")
    ties: Literal["index", "keep"] = setting(
        "index", "magnitude: 'index' removes exactly the count (ties by position); 'keep' keeps every weight tied "
                 "with the last survivor on fp32 (|w|+1)-1, as [EXT-a] (A17)")

    def __post_init__(self):
        _check_choices(self)
        for name in ("conv_rate", "fc_rate", "global_rate"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"pruning.{name} must be in [0, 1), got {value}")
        _check(self.output_rate < 1.0, f"pruning.output_rate must be < 1 (negative = half of fc_rate), got {self.output_rate}")
        _check(self.ties == "index" or self.strategy == "magnitude", "pruning.ties=keep applies to strategy=magnitude")

    def rate_for(self, kind: str) -> float:
        """The per-round rate of a layer of this kind ('conv', 'fc' or 'output') under scope='layer'."""
        if kind == "output":
            return self.fc_rate / 2 if self.output_rate < 0 else self.output_rate
        return {"conv": self.conv_rate, "fc": self.fc_rate}[kind]


SnipMatch = Literal["", "layer", "total"]


@dataclass(frozen=True)
class LotterySpec:
    """Iterative pruning over levels, its trials and its controls (PROTOCOL 1.2-1.3, 1.7-1.14)."""

    SECTION: ClassVar[str] = "lottery"

    levels: int = setting(15, "pruning levels after the dense level 0")
    trials: int = setting(1, "trial t uses model.init_seed + t and training.data_seed + t")
    mode: Literal["reset", "rewind", "lr-rewind", "continue"] = setting(
        "reset", "survivors set to: theta_0 | theta_rewind | trained (lr restarts) | continue (App. B)")
    rewind: Step = setting(Step(0, "it"), "mode=rewind: the step of the dense run to rewind to")
    mask_source: Literal["final", "best"] = setting(
        "final", "prune from the 'final' weights ([S1]) or the 'best' (min val loss) ones ([S0])")
    reinits: int = setting(3, "random reinitialisations per trial and level (F: 'reinit')")
    random_controls: tuple[Literal["global", "preserve_lpr", "per_layer"], ...] = setting(
        (), "random masks: 'global', 'preserve_lpr' (= 'per_layer')")
    random_trials: int = setting(1, "random masks per control per trial and level")
    random_init: Literal["fresh", "theta0"] = setting(
        "fresh", "random-mask controls start from a 'fresh' init or the ticket's 'theta0'")
    dm_reinits: int = setting(0, "reinit from the ticket's own init distribution D_m (F.3)")
    noise: tuple[float, ...] = setting((), "Gaussian noise c*sigma_l on the init (F.7), one branch per c")
    prune_at_init: bool = setting(False, "magnitude pruning of theta_0 at the level's densities (F.4)")
    control_levels: tuple[int, ...] = setting((), "levels that get controls; empty = every level >= 1")
    oneshot: tuple[float, ...] = setting((), "one-shot fractions pruned from the dense run (output at half)")
    fixed_iterations: tuple[Step, ...] = setting((), "also report test accuracy at these iterations")
    # [S4] pruning at initialisation, from the ticket's theta_0 at the ticket's counts (PROTOCOL 1.15-1.16)
    snip: SnipMatch = setting("", "SNIP branch per level, counts matched per 'layer' or in 'total' ('' = off)")
    iterative_snip: SnipMatch = setting(
        "", "iterative SNIP along the ticket's per-level counts, matched per 'layer' or in 'total' ('' = off)")
    snip_levels: tuple[int, ...] = setting((), "levels with a SNIP branch; empty = every level >= 1")
    iterative_snip_levels: tuple[int, ...] = setting((), "levels with an iterative SNIP branch; empty = every level >= 1")
    snip_batch: int = setting(0, "examples in a SNIP mini-batch (0 = training.batch_size)")
    snip_fresh_batches: bool = setting(True, "iterative SNIP scores each step on a new mini-batch (false: one batch)")
    # [S4] LTH_flip (PROTOCOL 1.17): IMP on the complement of a level's ticket, from the same theta_0
    flip_levels: tuple[int, ...] = setting((), "flip the ticket masks of these levels ([S4]: 7 and 8)")
    flip_rounds: int = setting(8, "IMP rounds on the complement after the flip ([S4]: 9 prune iterations in all)")
    # [S3] LPR-constrained masks (PROTOCOL 1.20)
    lpr_from: str = setting("", "every level keeps, per layer, as many weights as this experiment of the same "
                                "store (lottery-<hash>) keeps at that trial and level; magnitude within layers")

    def __post_init__(self):
        _check_choices(self)
        _check(self.levels >= 0, "lottery.levels must be >= 0")
        _check(self.trials >= 1, "lottery.trials must be >= 1")
        for name in ("reinits", "random_trials", "dm_reinits"):
            _check(getattr(self, name) >= 0, f"lottery.{name} must be >= 0")
        _check(all(0.0 < p < 1.0 for p in self.oneshot), "lottery.oneshot fractions must be in (0, 1)")
        _check(all(c > 0 for c in self.noise), "lottery.noise multipliers must be > 0")
        for name in ("control_levels", "snip_levels", "iterative_snip_levels", "flip_levels"):
            bad = [k for k in getattr(self, name) if not 1 <= k <= self.levels]
            _check(not bad, f"lottery.{name} {bad} outside the pruned levels 1..{self.levels} (lottery.levels)")
        _check(self.snip_batch >= 0, "lottery.snip_batch must be >= 0 (0 = training.batch_size)")
        _check(self.flip_rounds >= 0, "lottery.flip_rounds must be >= 0")
        if self.mode != "rewind":
            _check(self.rewind.amount == 0, "lottery.rewind applies to lottery.mode=rewind only")
        _check(not self.lpr_from or re.fullmatch(r"lottery-[0-9a-f]{16}", self.lpr_from) is not None,
               f"lottery.lpr_from names an experiment of the store, lottery-<16 hex digits>; got {self.lpr_from!r}")


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines one training run."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)


def _is_section(value: Any) -> bool:
    """Spec sections are dataclasses; Step is a dataclass too but a value."""
    return dataclasses.is_dataclass(value) and not (value is Step or isinstance(value, Step))


@dataclass(frozen=True)
class LotteryExperimentSpec:
    """A lottery experiment. ``eval`` (None = same as ``training``) trains the tickets' evaluations and
    the controls with other hyperparameters than the ones the masks were found with ([S3] H_eval);
    setting any ``eval.*`` field starts it from a copy of ``training``."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    pruning: PruningSpec = field(default_factory=PruningSpec)
    lottery: LotterySpec = field(default_factory=LotterySpec)
    eval: TrainingSpec | None = field(default=None, metadata={"inherits": "training"})

    def train_spec(self, trial: int = 0, training: TrainingSpec | None = None) -> TrainSpec:
        """The TrainSpec of one training job of trial ``trial`` (seeds offset by the trial index)."""
        training = training or self.training
        return TrainSpec(data=self.data, model=replace(self.model, init_seed=self.model.init_seed + trial),
                         training=replace(training, data_seed=training.data_seed + trial))

    def __post_init__(self):
        every = self.training.eval_every
        for training in (self.training, self.evaluation):
            if training.test_eval == "reported":
                bad = [str(s) for s in self.lottery.fixed_iterations if s != training.steps]
                _check(not bad, f"lottery.fixed_iterations {bad} need the test set evaluated there; with "
                                "training.test_eval=reported only the last step is (set test_eval=every)")
        for step in self.lottery.fixed_iterations:
            if step.unit == every.unit and step != self.training.steps:  # the last step is always evaluated
                _check(step.amount % every.amount == 0,
                       f"lottery.fixed_iterations {step} is not an evaluation point (training.eval_every={every})")
            if step.unit == self.training.steps.unit:
                _check(step <= self.training.steps,
                       f"lottery.fixed_iterations {step} is past the end of training (training.steps={self.training.steps})")

    @property
    def evaluation(self) -> TrainingSpec:
        return self.eval if self.eval is not None else self.training


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
    hints = _hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    _check(not unknown, f"unknown field(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        section = next((a for a in typing.get_args(hint) if _is_section(a)), hint)
        if value is None:
            kwargs[name] = None
        elif _is_section(section):
            kwargs[name] = from_dict(section, value)
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
    if current is None and _inherits(spec, head):
        current = getattr(spec, _inherits(spec, head))
    if len(path) > 1:
        _check(_is_section(current), f"{full_key!r}: {head} is not a section")
        _collect(current, path[1:], value, full_key, changes.setdefault(head, {}))
        return
    _check(not _is_section(current), f"{full_key!r} names a section; set one of its fields")
    changes[head] = _coerce(_hints(type(spec))[head], value, full_key)


def _rebuild(spec: Any, changes: dict) -> Any:
    if not changes:
        return spec
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    # inheriting sections last, so that they start from their parent's final value
    for name in sorted(changes, key=lambda n: _inherits(spec, n) is not None):
        change = changes[name]
        if values[name] is None and _inherits(spec, name):
            values[name] = values[_inherits(spec, name)]
        values[name] = _rebuild(values[name], change) if isinstance(change, dict) and _is_section(values[name]) else change
    return type(spec)(**values)


def _inherits(spec: Any, name: str) -> str | None:
    for f in fields(spec):
        if f.name == name:
            return f.metadata.get("inherits")
    return None


def parse_set(items: list[str] | None) -> dict[str, str]:
    """Turn ``["training.lr=0.1", ...]`` into ``{"training.lr": "0.1"}``; the values are read against
    each field's type when applied (``apply_overrides``)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        _check(bool(sep) and bool(key.strip()), f"--set expects section.field=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def comma_lists(overrides: Mapping[str, Any]) -> list[str]:
    """The keys of ``overrides`` whose list field is written in the old comma form (``0.1,0.2``) rather than
    as a TOML list (``[0.1, 0.2]``); both read the same, the CLI hints at the new spelling."""
    out = []
    for key, value in overrides.items():
        hint = _field_hint(key)
        if (typing.get_origin(hint) is tuple and isinstance(value, str) and "," in value
                and not value.lstrip().startswith(("[", "("))):
            out.append(key)
    return out


# ----------------------------------------------------------------------------- reading values by type

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _toml(text: str) -> Any:
    """``text`` as a TOML value (``0.001``, ``true``, ``[0.1, 0.2]``, ``"a b"``), else the bare string
    (``300it``, ``rewind``)."""
    try:
        return tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        return text


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """``value`` (from ``--set``, a preset, spec.json or the API) as the annotated type, or a clear error.
    Strings are read as TOML values; a string that is not one is taken as it is."""
    try:
        return _read(hint, value, key)
    except (TypeError, ValueError):
        raise TicketlabError(f"cannot read {key}={value!r} as {_type_name(hint)}") from None


def _read(hint: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Step:   # a bare number has no unit: Step.parse rejects "300" (steps are typed)
        return Step.parse(value)
    if origin is Literal or hint is str:   # names stay names ("1" stays "1"); a quoted TOML string is unquoted
        text = value if isinstance(value, str) else str(value)
        parsed = _toml(text) if text.startswith(('"', "'")) else text
        return parsed if isinstance(parsed, str) else text
    if hint is bool:
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, bool):
            return value
        raise ValueError(value)
    if hint in (int, float):
        number = _toml(value.strip()) if isinstance(value, str) else value
        if isinstance(number, str):   # what Python reads beyond TOML: ".5", "1_0"
            number = hint(number)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(value)
        if hint is int and isinstance(number, float) and not number.is_integer():
            raise ValueError(value)
        return hint(number)
    if origin is tuple:
        items = _toml(value) if isinstance(value, str) else value
        if isinstance(items, str):   # the comma form, or a list of bare strings: [1ep, 2000it]
            text = items.strip()
            if text[:1] in "[(" and text[-1:] in ")]":
                text = text[1:-1]
            items = [v.strip() for v in text.split(",") if v.strip()]
        elif not isinstance(items, (list, tuple)):
            items = [items]   # one value for a list field: a list of one
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], v, key) for v in items)
        if len(items) != len(args):
            raise ValueError(value)
        return tuple(_read(a, v, key) for a, v in zip(args, items))
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _read(arg, value, key)
                except (TypeError, ValueError, TicketlabError):
                    continue
        raise ValueError(value)
    return value


def _choices(hint: Any) -> tuple | None:
    """The allowed values of a ``Literal`` type; None for any other type."""
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def _alternatives(allowed: tuple) -> str:
    quoted = [repr(a) for a in allowed]
    return " or ".join(quoted) if len(quoted) == 2 else "one of " + ", ".join(quoted)


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "(" + ", ".join(_type_name(a) for a in args) + ")"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if hint is Step:
        return "step (300it, 2ep)"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """``cls``'s resolved field types (cached: every spec's ``__post_init__`` reads them)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


# ----------------------------------------------------------------------------- what can be set

SECTIONS: dict[str, type] = {"data": DataSpec, "model": ModelSpec, "training": TrainingSpec,
                             "pruning": PruningSpec, "lottery": LotterySpec}


def _field_hint(key: str) -> Any:
    section, _, name = key.partition(".")
    cls = SECTIONS.get("training" if section == "eval" else section)
    return _hints(cls).get(name) if cls else None


def settings(section: str | None = None) -> list[dict]:
    """Every ``--set`` field (``section.field``) with its type, default and help; ``eval.*`` takes the
    fields of ``training`` (lottery experiments: the tickets' evaluations and the controls, [S3])."""
    if section is not None and section not in SECTIONS and section != "eval":
        raise TicketlabError(f"unknown section {section!r}; choose one of {', '.join([*SECTIONS, 'eval'])}")
    rows = []
    for name, cls in SECTIONS.items():
        if section not in (None, name) and not (section == "eval" and name == "training"):
            continue
        prefix = "eval" if section == "eval" else name
        for f in fields(cls):
            rows.append({"key": f"{prefix}.{f.name}", "type": _type_name(_hints(cls)[f.name]),
                         "default": _jsonable(_default_of(f)), "help": f.metadata.get("help", "")})
    return rows
