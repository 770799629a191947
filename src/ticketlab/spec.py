"""Hyperparameters: frozen, typed, validated dataclasses; canonical hashing; ``--set`` overrides.

A run is named by the hash of the canonical JSON of its *non-default* fields, so adding a field
with a default later leaves every existing run name unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field, fields, replace
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
    image_size: int = 0           # image folders (imagenet): side of the decoded crops (0 = the dataset's, 224)
    eval_sets: tuple[str, ...] = ()  # image folders: shifted test sets reported beside test ([S0]: IN-V2/R/A/Sketch)
    train_eval_size: int = 0      # training accuracy on N examples spread evenly over the split (0 = all)

    def __post_init__(self):
        _check(self.val_size >= 0, "data.val_size must be >= 0")
        _check(self.train_subset >= 0, "data.train_subset must be >= 0 (0 = all)")
        _check(self.train_eval_size >= 0, "data.train_eval_size must be >= 0 (0 = the whole training split)")
        _check(self.image_size >= 0, "data.image_size must be >= 0 (0 = the dataset's own size)")
        _check(len(set(self.eval_sets)) == len(self.eval_sets), f"data.eval_sets names a set twice: {self.eval_sets}")


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
    schedule_start: Step = Step(0, "it")   # constant lr before this step; warmup and schedule run after it ([S0])
    eval_every: Step = Step(100, "it")
    test_eval: str = "every"               # test set at 'every' evaluation, or only where 'reported' (end, early stop)
    patience: int = 0                      # >0: stop after this many evals without a better val accuracy ([S4])
    checkpoints: tuple[Step, ...] = ()     # weights kept at these steps (e.g. a rewind point)
    data_seed: int = 0                     # data order, augmentation, dropout
    precision: str = "fp32"
    compile: bool = False                  # torch.compile the training forward pass (its time: summary compile_seconds)

    def __post_init__(self):
        _check(self.optimizer in _OPTIMIZERS, f"training.optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.schedule in _SCHEDULES, f"training.schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        _check(self.precision in _PRECISIONS, f"training.precision must be one of {_PRECISIONS}, got {self.precision!r}")
        _check(self.lr > 0, f"training.lr must be > 0, got {self.lr}")
        _check(self.batch_size > 0, "training.batch_size must be > 0")
        _check(self.weight_decay >= 0, "training.weight_decay must be >= 0")
        _check(0.0 <= self.momentum < 1.0, "training.momentum must be in [0, 1)")
        _check(self.eval_every.amount > 0, "training.eval_every must be > 0")
        _check(self.patience >= 0, "training.patience must be >= 0")
        _check(self.test_eval in ("every", "reported"),
               f"training.test_eval must be 'every' or 'reported', got {self.test_eval!r}")
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
    structure_norm: str = "l1"       # strategy=structured: a unit's score, the 'l1' or 'l2' norm of its weights
    ties: str = "index"              # magnitude: 'index' removes exactly the count (ties by position); 'keep' keeps
                                     # every weight tied with the last survivor on fp32 (|w|+1)-1, as [EXT-a] (A17)

    def __post_init__(self):
        _check(self.scope in ("layer", "global"), f"pruning.scope must be 'layer' or 'global', got {self.scope!r}")
        for name in ("conv_rate", "fc_rate", "global_rate"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"pruning.{name} must be in [0, 1), got {value}")
        _check(self.output_rate < 1.0, f"pruning.output_rate must be < 1 (negative = half of fc_rate), got {self.output_rate}")
        bad = set(self.global_types) - {"conv", "fc", "output"}
        _check(not bad, f"pruning.global_types may hold only conv, fc, output; got {sorted(bad)}")
        _check(self.structure_norm in ("l1", "l2"), f"pruning.structure_norm must be 'l1' or 'l2', got {self.structure_norm!r}")
        _check(self.ties in ("index", "keep"), f"pruning.ties must be 'index' or 'keep', got {self.ties!r}")
        _check(self.ties == "index" or self.strategy == "magnitude", "pruning.ties=keep applies to strategy=magnitude")

    def rate_for(self, kind: str) -> float:
        """The per-round rate of a layer of this kind ('conv', 'fc' or 'output') under scope='layer'."""
        if kind == "output":
            return self.fc_rate / 2 if self.output_rate < 0 else self.output_rate
        return {"conv": self.conv_rate, "fc": self.fc_rate}[kind]


_MODES = ("reset", "rewind", "lr-rewind", "continue")
_RANDOM_CONTROLS = ("global", "preserve_lpr", "per_layer")


@dataclass(frozen=True)
class LotterySpec:
    """Iterative pruning over levels, its trials and its controls (PROTOCOL 1.2-1.3, 1.7-1.14)."""

    levels: int = 15                 # pruning levels after the dense level 0
    trials: int = 1                  # trial t uses model.init_seed + t and training.data_seed + t
    mode: str = "reset"              # survivors set to: theta_0 | theta_rewind | trained (lr restarts) | continue (App. B)
    rewind: Step = Step(0, "it")     # mode=rewind: the step of the dense run to rewind to
    mask_source: str = "final"       # prune from the 'final' weights ([S1]) or the 'best' (min val loss) ones ([S0])
    reinits: int = 3                 # random reinitialisations per trial and level (F: "reinit")
    random_controls: tuple[str, ...] = ()   # random masks: 'global', 'preserve_lpr' (= 'per_layer')
    random_trials: int = 1           # random masks per control per trial and level
    random_init: str = "fresh"       # random-mask controls start from a 'fresh' init or the ticket's 'theta0'
    dm_reinits: int = 0              # reinit from the ticket's own init distribution D_m (F.3)
    noise: tuple[float, ...] = ()    # Gaussian noise c*sigma_l on the init (F.7), one branch per c
    prune_at_init: bool = False      # magnitude pruning of theta_0 at the level's densities (F.4)
    control_levels: tuple[int, ...] = ()    # levels that get controls; empty = every level >= 1
    oneshot: tuple[float, ...] = ()  # one-shot fractions pruned from the dense run (output at half)
    fixed_iterations: tuple[Step, ...] = ()  # also report test accuracy at these iterations
    # [S4] pruning at initialisation, from the ticket's theta_0 at the ticket's counts (PROTOCOL 1.15-1.16)
    snip: str = ""                   # SNIP branch per level, counts matched per 'layer' or in 'total' ('' = off)
    iterative_snip: str = ""         # iterative SNIP along the ticket's per-level counts, matched the same ways
    snip_levels: tuple[int, ...] = ()           # levels with a SNIP branch; empty = every level >= 1
    iterative_snip_levels: tuple[int, ...] = ()  # levels with an iterative SNIP branch; empty = every level >= 1
    snip_batch: int = 0              # examples in a SNIP mini-batch (0 = training.batch_size)
    snip_fresh_batches: bool = True  # iterative SNIP scores each step on a new mini-batch (False: one batch)
    # [S4] LTH_flip (PROTOCOL 1.17): IMP on the complement of a level's ticket, from the same theta_0
    flip_levels: tuple[int, ...] = ()  # flip the ticket masks of these levels ([S4]: 7 and 8)
    flip_rounds: int = 8             # IMP rounds on the complement after the flip ([S4]: 9 prune iterations in all)
    # [S3] LPR-constrained masks (PROTOCOL 1.20): every level keeps, per layer, as many weights as this
    # experiment of the same store (lottery-<hash>) keeps at that trial and level; magnitude within layers
    lpr_from: str = ""

    def __post_init__(self):
        _check(self.levels >= 0, "lottery.levels must be >= 0")
        _check(self.trials >= 1, "lottery.trials must be >= 1")
        _check(self.mode in _MODES, f"lottery.mode must be one of {_MODES}, got {self.mode!r}")
        _check(self.mask_source in ("final", "best"), "lottery.mask_source must be 'final' or 'best'")
        _check(self.random_init in ("fresh", "theta0"), "lottery.random_init must be 'fresh' or 'theta0'")
        bad = set(self.random_controls) - set(_RANDOM_CONTROLS)
        _check(not bad, f"lottery.random_controls may hold {_RANDOM_CONTROLS}; got {sorted(bad)}")
        for name in ("reinits", "random_trials", "dm_reinits"):
            _check(getattr(self, name) >= 0, f"lottery.{name} must be >= 0")
        _check(all(0.0 < p < 1.0 for p in self.oneshot), "lottery.oneshot fractions must be in (0, 1)")
        _check(all(c > 0 for c in self.noise), "lottery.noise multipliers must be > 0")
        for name in ("snip", "iterative_snip"):
            _check(getattr(self, name) in ("", "layer", "total"),
                   f"lottery.{name} must be '' (off), 'layer' or 'total', got {getattr(self, name)!r}")
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
    hints = typing.get_type_hints(cls)
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
    changes[head] = _coerce(typing.get_type_hints(type(spec))[head], value, full_key)


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
