"""The Python API: the same functions the CLI calls.

    >>> from ticketlab import api
    >>> spec = api.make_spec("lenet", overrides={"training.steps": "2000it"})
    >>> summary = api.train(spec, store="store")
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import replace
from typing import Any, Mapping

import torch

from ticketlab import TicketlabError, data, models
from ticketlab.pruning import Mask
from ticketlab.spec import LotteryExperimentSpec, PruningSpec, TrainSpec, apply_overrides, spec_hash
from ticketlab.store import index, layout
from ticketlab.options import RunOptions, check_device, resolve
from ticketlab.train.job import run_job


def make_spec(model: str, dataset: str | None = None, overrides: Mapping[str, Any] | None = None) -> TrainSpec:
    """A TrainSpec following the paper's settings for ``model`` (PROTOCOL §3.2), then ``overrides``
    (``{"training.lr": 0.1, ...}``). Pruning keys of the paper defaults are left to ``make_pruning``."""
    if model not in models.names():
        raise TicketlabError(f"unknown model {model!r}; choose one of {models.names()}")
    defaults = {k: v for k, v in models.paper_defaults(model).items() if not k.startswith("pruning.")}
    spec = apply_overrides(TrainSpec(), {"model.name": model, **defaults})
    if dataset is not None:
        spec = apply_overrides(spec, {"data.dataset": dataset})
    return apply_overrides(spec, dict(overrides or {}))


def make_pruning(model: str, overrides: Mapping[str, Any] | None = None) -> PruningSpec:
    """The paper's pruning rates for ``model`` (PROTOCOL §1.5), then ``{"conv_rate": ...}`` overrides."""
    defaults = {k.removeprefix("pruning."): v for k, v in models.paper_defaults(model).items() if k.startswith("pruning.")}
    return apply_overrides(PruningSpec(), {**defaults, **dict(overrides or {})})


# The dataset of a DataSpec on a device (cached per process: experiments reuse it; ``.cache_clear()``).
load_splits = data.load_cached


def train(spec: TrainSpec, store: str | Path, *, mask: Mask | None = None, options: RunOptions | None = None,
          **settings) -> dict:
    """Train one network (dense, or under ``mask``) in the store; returns its summary. ``options`` (or
    its fields as keywords: ``device="cuda"``, ``progress=False``, ...) say how it runs.

    The run is named by the hash of its non-default hyperparameters (and the mask's hash), so the
    same call twice trains once, and a killed call resumes where it stopped. A single job trains
    through the single loop (``engine="auto"`` means sequential here)."""
    options = resolve(options, **settings)
    store = Path(store)
    extra = {"mask": mask.hash()} if mask is not None else None
    name = spec_hash(spec, "train", extra)
    splits = load_splits(spec.data, options.data_dir, options.device)
    job = layout.experiment_dir(store, "train", name)
    context = {"run_id": name, "experiment": f"train-{name}", "kind": "train", "branch": "main", "trial": 0, "level": 0}
    return run_job(job, spec, splits, mask=mask, context=context, store=store, options=options)


def results(store: str | Path, where: Mapping[str, Any] | None = None, reindex: bool = False) -> list[dict]:
    """Rows of the store's index (one per finished job) matching ``where``; ``reindex`` first rebuilds the
    index from the summaries on disk."""
    if reindex:
        index.reindex(Path(store))
    return index.query(Path(store), dict(where or {}))



def make_experiments(model: str | None = None, preset: str | None = None,
                     overrides: Mapping[str, Any] | None = None) -> list[LotteryExperimentSpec]:
    """The experiments of a preset: one per point of its sweep (one without a sweep)."""
    from ticketlab.lottery import presets
    if preset is None:
        return [make_experiment(model, None, overrides)]
    loaded = presets.load(preset)
    return [make_experiment(model, preset, {**point, **dict(overrides or {})}) for point in presets.sweep_points(loaded)]


def make_experiment(model: str | None = None, preset: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> LotteryExperimentSpec:
    """A lottery experiment: the model's paper defaults (PROTOCOL §1.5, §3.2), then the preset's
    settings (not its sweep), then ``overrides`` (``{"lottery.levels": 5, ...}``)."""
    from ticketlab.lottery import presets
    settings = dict(presets.load(preset)["settings"]) if preset else {}
    overrides = dict(overrides or {})
    model = overrides.pop("model.name", None) or model or settings.pop("model.name", None) or "lenet"
    settings.pop("model.name", None)
    if model not in models.names():
        raise TicketlabError(f"unknown model {model!r}; choose one of {models.names()}")
    spec = apply_overrides(LotteryExperimentSpec(), {"model.name": model, **models.paper_defaults(model)})
    return apply_overrides(apply_overrides(spec, settings), overrides)


def lottery(exp: LotteryExperimentSpec, store: str | Path, *, options: RunOptions | None = None, workers: int = 1,
            trials: list[int] | None = None, log=print, **settings) -> Path:
    """Run (or resume, or just find) a lottery experiment; returns its folder in the store.

    ``options`` (or its fields as keywords: ``progress=False``, ``engine="sequential"``, ...) say how the
    jobs run (``ticketlab.options.RunOptions``); ``workers`` > 1 spreads the trials over that many
    processes, one thread each."""
    from ticketlab.lottery.runner import run_trials
    options = resolve(options, **settings)
    check_device(options.device)   # before any worker starts
    trials = list(range(exp.lottery.trials)) if trials is None else trials
    if workers > 1 and len(trials) > 1:
        from ticketlab.exec import local
        # workers share the terminal: plain progress lines, not bars redrawn over each other
        if options.progress is None or options.progress is True:
            options = replace(options, progress="lines")
        local.spread_trials(run_trials, trials, workers, exp=exp, store=Path(store), options=options)
    else:
        run_trials(exp, Path(store), trials, options, log=log)
    return experiment_folder(exp, store)


def lottery_on_ray(experiments: list[LotteryExperimentSpec], store: str | Path, *, address: str | None = None,
                   cpus: int | None = None, gpus_per_task: float = 0, options: RunOptions | None = None,
                   **settings) -> list[Path]:
    """Run (or resume) every trial of every experiment as a Ray task at once (``ticketlab.exec.ray``:
    ``address`` joins a running cluster, None starts one here with ``cpus`` CPUs); their folders."""
    from ticketlab.exec import ray
    options = resolve(options, **settings)
    if address is None:   # a remote cluster's machines may have GPUs this one lacks
        check_device(options.device)
    tasks = [(exp, trial) for exp in experiments for trial in range(exp.lottery.trials)]
    ray.run_trials(tasks, store, address=address, cpus=cpus, gpus_per_task=gpus_per_task, options=options)
    return [experiment_folder(exp, store) for exp in experiments]


def experiment_folder(exp: LotteryExperimentSpec, store: str | Path) -> Path:
    """Where ``exp`` lives (or will live) in the store: ``<store>/lottery-<hash>``."""
    from ticketlab.lottery.runner import experiment_name
    return layout.experiment_dir(Path(store), layout.LOTTERY, experiment_name(exp))


def lottery_status(target: LotteryExperimentSpec | str | Path, store: str | Path) -> dict:
    """Which jobs of a lottery experiment are done, running, stopped part-way or not started (see
    ``ticketlab.lottery.status``); ``target`` is a spec (nothing needs to have run) or a folder."""
    from ticketlab.lottery import status
    if isinstance(target, LotteryExperimentSpec):
        return status.experiment_status(experiment_folder(target, store), target)
    return status.experiment_status(Path(target))


def estimate_lottery(exp: LotteryExperimentSpec, *, device: str = "cpu", workers: int = 1,
                     paces: dict | None = None) -> dict:
    """How long ``exp`` would take here: its planned jobs at the pace of its model measured on ``device``
    (``ticketlab.lottery.estimate``; ``paces`` shares measurements across a sweep); nothing is written."""
    from ticketlab.lottery import estimate
    return estimate.estimate(exp, device=str(check_device(device)), workers=workers, paces=paces)


def verify_lottery(target: LotteryExperimentSpec | str | Path, store: str | Path | None = None):
    """Check a lottery experiment's invariants on its stored files (``ticketlab.lottery.verify``); ``target``
    is a spec (with ``store``) or the experiment's folder. The result's ``ok`` and ``failures`` say how it went."""
    from ticketlab.lottery import verify
    return verify.verify_experiment(_experiment_root(target, store, "verify_lottery"))


def lottery_summary(target: LotteryExperimentSpec | str | Path, store: str | Path | None = None,
                    oneshot: bool = False) -> dict:
    """[S1]'s summary of a lottery experiment (``ticketlab tables --kind summary``): every family and level
    against the dense network, best speed-ups and gains, winning tickets; ``oneshot`` for its one-shot runs.
    ``target`` is a spec (with ``store``) or the experiment's folder."""
    from ticketlab.analysis import lottery_tables
    root = _experiment_root(target, store, "lottery_summary")
    if oneshot:
        return lottery_tables.oneshot_summary(lottery_tables.rows_of(root.parent, root.name))
    return lottery_tables.summary(lottery_tables.level_table(root.parent, root.name))


def lottery_report(target: LotteryExperimentSpec | str | Path, out: str | Path, store: str | Path | None = None,
                   weights: bool = False) -> list[Path]:
    """Write the experiment's small outputs into ``out`` (``ticketlab report``; ``ticketlab.analysis.report``)."""
    from ticketlab.analysis.report import write_report
    return write_report(_experiment_root(target, store, "lottery_report"), Path(out), weights=weights)


def _experiment_root(target, store, caller: str) -> Path:
    """A spec's folder in ``store``; with a store, an id or hash is resolved there (``layout.resolve_experiment``)."""
    if isinstance(target, LotteryExperimentSpec):
        if store is None:
            raise TicketlabError(f"{caller}(spec) needs the store the experiment ran in")
        return experiment_folder(target, store)
    return layout.resolve_experiment(Path(store), target) if store is not None else Path(target)


# ----------------------------------------------------------------------------- reading a store

def experiments(store: str | Path, targets: list[str | Path] = ()) -> list[Path]:
    """The folders of the lottery experiments ``targets`` names (``lottery-<hash>``, the hash, or the folder;
    ``layout.resolve_experiment``), or of every lottery experiment in ``store`` when it names none."""
    from ticketlab.lottery import status
    store = Path(store)
    if not store.is_dir():
        raise TicketlabError(f"store {store} does not exist; pass the --store your experiments ran with")
    return [layout.resolve_experiment(store, target) for target in targets] or status.experiments(store)


def status(store: str | Path, targets: list[str | Path] = ()) -> list[dict]:
    """``lottery_status`` of each experiment ``targets`` names (default: every one in ``store``)."""
    return [lottery_status(root, store) for root in experiments(store, targets)]


def verify(store: str | Path, targets: list[str | Path] = ()) -> list:
    """``verify_lottery`` of each experiment ``targets`` names (default: every one in ``store``)."""
    return [verify_lottery(root) for root in experiments(store, targets)]


TABLE_KINDS = ("levels", "summary", "weights", "oneshot", "flip", "s4", "s0")


def table(target: LotteryExperimentSpec | str | Path, kind: str = "levels", store: str | Path | None = None, *,
          levels: list[int] | None = None, oneshot: bool = False):
    """One of ``ticketlab tables``' tables of an experiment: ``levels`` (ticket and controls per level), ``summary``
    ([S1]'s; ``oneshot`` for its one-shot runs), ``weights`` (Figs 15-24 in numbers, at ``levels``), ``oneshot``,
    ``flip``, ``s4`` ([S4] Tables 2-7) or ``s0`` ([S0]'s five test sets). ``target``: a spec (with ``store``),
    an id or hash (with ``store``) or the folder."""
    from ticketlab.analysis import lottery_tables
    if kind not in TABLE_KINDS:
        raise TicketlabError(f"unknown table {kind!r}; choose one of {', '.join(TABLE_KINDS)}")
    root = _experiment_root(target, store, "table")
    store, name = root.parent, root.name
    if kind == "summary":
        return lottery_summary(root, oneshot=oneshot)
    if kind == "s4":
        from ticketlab.analysis import s4_tables
        return s4_tables.s4_tables(store, name)
    if kind == "s0":
        from ticketlab.analysis import s0_tables
        return s0_tables.s0_table(store, name)
    if kind == "weights":
        from ticketlab.analysis import weight_tables
        return weight_tables.weight_tables(store, name, levels)
    return lottery_tables.level_table(store, name, kind="lottery" if kind == "levels" else kind)


def sweep_summaries(store: str | Path, names: list[str]) -> list[dict | None]:
    """[S1]'s summary of each experiment of a sweep (None for a point whose dense network has not finished)."""
    from ticketlab.analysis import lottery_tables
    return lottery_tables.sweep_summaries(Path(store), names)


def experiment_labels(store: str | Path, names: list[str]) -> list[str]:
    """Short labels telling the experiments ``names`` apart (what differs between their specs)."""
    from ticketlab.analysis.lottery_series import experiment_labels
    return experiment_labels(Path(store), names)


def plot_run(store: str | Path, run: str | Path, out: str | None = None) -> list[Path]:
    """The curves of one finished training run (a run id of the store's index or a job directory)."""
    from ticketlab.analysis import plots
    return plots.plot_run(store, str(plots.resolve_job(store, str(run))), out)


def plot_lottery(store: str | Path, names: list[str], kind: str | None = None, **options) -> list[Path]:
    """The figures of lottery experiments (``ticketlab plot``): ``kind`` all (the standard plots; the default
    for one experiment), levels (the default for several, overlaid), curves, oneshot, init, connections or
    movement; ``options`` as ``ticketlab.analysis.lottery_plots.plot_experiments`` takes them."""
    from ticketlab.analysis import lottery_plots
    return lottery_plots.plot_experiments(store, names, kind, **options)


def load_mask(target: str | Path, store: str | Path | None = None) -> Mask:
    """A mask from a ``.npz`` file, a job directory holding ``mask.npz``, or a run id of ``store``."""
    from ticketlab.analysis import masks
    return masks.load_mask(target, store)


def compare_masks(a: Mask, b: Mask) -> dict:
    """Overlap of two masks per layer and in total, with Jaccard and the overlap expected by chance."""
    from ticketlab.analysis import masks
    return masks.compare(a, b)


def describe_mask(mask: Mask) -> dict:
    """Kept weights, density and layer-wise pruning ratio of one mask."""
    from ticketlab.analysis import masks
    return masks.describe(mask)


def plot_masks(named_masks: Mapping[str, Mask], out: str | Path) -> list[Path]:
    """The layer-wise pruning ratio of masks, one line per mask, to ``out``.png and ``out``.pdf."""
    from ticketlab.analysis.mask_plots import plot_lpr
    return plot_lpr(dict(named_masks), out)


# ----------------------------------------------------------------------------- models, schedules, presets

def describe_models() -> list[dict]:
    """Every model with its weight counts (total, prunable, per kind)."""
    return [models.describe(name) for name in models.names()]


def schedule(model: str, levels: int, overrides: Mapping[str, Any] | None = None) -> list[dict]:
    """Weights remaining per pruning level of ``model`` without training (``{"pruning.fc_rate": 0.5, ...}``
    and other settings in ``overrides``)."""
    from ticketlab import pruning
    if levels < 0:
        raise TicketlabError("--levels must be >= 0")
    overrides = dict(overrides or {})
    pspec = make_pruning(model, {k.removeprefix("pruning."): v for k, v in overrides.items() if k.startswith("pruning.")})
    spec = make_spec(model, overrides={k: v for k, v in overrides.items() if not k.startswith("pruning.")})
    net = models.build(spec.model)
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters() if name in net.weight_info()}
    return pruning.schedule(shapes, net.weight_info(), pspec, levels)


def presets() -> list[dict]:
    """The papers' experiments: every preset with its settings, sweep and meta (description, command, runtime)."""
    from ticketlab.lottery import presets
    return [presets.load(name) for name in presets.names()]

