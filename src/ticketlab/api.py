"""The Python API: the same functions the CLI calls.

    >>> from ticketlab import api
    >>> spec = api.make_spec("lenet", overrides={"training.steps": "2000it"})
    >>> summary = api.train(spec, store="store")
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping

import torch

from ticketlab import TicketlabError, data, models
from ticketlab.pruning import Mask
from ticketlab.spec import LotteryExperimentSpec, PruningSpec, TrainSpec, apply_overrides, spec_hash
from ticketlab.store import index, layout
from ticketlab.train.batched import SPARSE_BELOW
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


def check_device(name: str | torch.device) -> torch.device:
    """``name`` as a device this process can use (cpu, cuda, cuda:N), or an error saying what to do."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise TicketlabError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise TicketlabError(f"device {name!r}: no GPU is usable here (torch {torch.__version__} is {build}); "
                                 "install a CUDA build of torch on a machine with an NVIDIA GPU, or use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TicketlabError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible (cuda:0 ...)")
    elif device.type != "cpu":
        raise TicketlabError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    return device


@functools.lru_cache(maxsize=4)
def load_splits(data_spec, data_dir: str | None = None, device: str = "cpu") -> data.Splits:
    """The dataset of ``data_spec`` on ``device`` (cached per process: experiments reuse it)."""
    return data.load(data_spec, data_dir=data_dir, device=check_device(device))


def train(spec: TrainSpec, store: str | Path, *, mask: Mask | None = None, data_dir: str | None = None,
          device: str = "cpu", progress: bool | str | None = None, checkpoint_seconds: float = 60.0) -> dict:
    """Train one network (dense, or under ``mask``) in the store; returns its summary.

    The run is named by the hash of its non-default hyperparameters (and the mask's hash), so the
    same call twice trains once, and a killed call resumes where it stopped."""
    store = Path(store)
    extra = {"mask": mask.hash()} if mask is not None else None
    name = spec_hash(spec, "train", extra)
    splits = load_splits(spec.data, str(data_dir) if data_dir else None, device)
    job = layout.experiment_dir(store, "train", name)
    context = {"run_id": name, "experiment": f"train-{name}", "kind": "train", "branch": "main", "trial": 0, "level": 0}
    return run_job(job, spec, splits, mask=mask, context=context, store=store, progress=progress,
                   checkpoint_seconds=checkpoint_seconds)


def results(store: str | Path, where: Mapping[str, Any] | None = None) -> list[dict]:
    """Rows of the store's index (one per finished job)."""
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


def lottery(exp: LotteryExperimentSpec, store: str | Path, *, data_dir: str | None = None, device: str = "cpu",
            progress: bool | str | None = None, workers: int = 1, checkpoint_seconds: float = 60.0,
            trials: list[int] | None = None, log=print, batch_models: int = 0, engine: str = "auto",
            sparse_below: float | None = None) -> Path:
    """Run (or resume, or just find) a lottery experiment; returns its folder in the store.

    ``workers`` > 1 spreads the trials over that many processes, one thread each; ``batch_models`` caps
    how many ready jobs the batched engine trains at once (0: as many as fit in memory); ``engine="sequential"``
    trains every job through the single loop instead; Lenet layers keeping less than ``sparse_below``
    (default ``train.batched.SPARSE_BELOW``; 0: never) of their weights train with sparse matmuls."""
    from ticketlab.lottery.runner import Lottery
    check_device(device)   # before any worker starts
    trials = list(range(exp.lottery.trials)) if trials is None else trials
    if workers > 1 and len(trials) > 1:
        from ticketlab.exec import local
        # workers share the terminal: plain progress lines, not bars redrawn over each other
        worker_progress = "lines" if progress is None or progress is True else progress
        local.spread_trials(lottery, trials, workers, exp=exp, store=store, data_dir=data_dir, device=device,
                            progress=worker_progress, checkpoint_seconds=checkpoint_seconds,
                            batch_models=batch_models, engine=engine, sparse_below=sparse_below)
    else:
        splits = load_splits(exp.data, str(data_dir) if data_dir else None, device)
        Lottery(exp, Path(store), splits, progress=progress, checkpoint_seconds=checkpoint_seconds, log=log,
                batch_models=batch_models, engine=engine,
                sparse_below=SPARSE_BELOW if sparse_below is None else sparse_below).run(trials)
    return experiment_folder(exp, store)


def lottery_on_ray(experiments: list[LotteryExperimentSpec], store: str | Path, *, address: str | None = None,
                   cpus: int | None = None, gpus_per_task: float = 0, data_dir: str | None = None,
                   device: str = "cpu", checkpoint_seconds: float = 60.0, batch_models: int = 0,
                   engine: str = "auto", sparse_below: float | None = None) -> list[Path]:
    """Run (or resume) every trial of every experiment as a Ray task at once (``ticketlab.exec.ray``:
    ``address`` joins a running cluster, None starts one here with ``cpus`` CPUs); their folders."""
    from ticketlab.exec import ray
    if address is None:   # a remote cluster's machines may have GPUs this one lacks
        check_device(device)
    tasks = [(exp, trial) for exp in experiments for trial in range(exp.lottery.trials)]
    ray.run_trials(tasks, store, address=address, cpus=cpus, gpus_per_task=gpus_per_task, data_dir=data_dir,
                   device=device, checkpoint_seconds=checkpoint_seconds, batch_models=batch_models, engine=engine,
                   sparse_below=sparse_below)
    return [experiment_folder(exp, store) for exp in experiments]


def experiment_folder(exp: LotteryExperimentSpec, store: str | Path) -> Path:
    """Where ``exp`` lives (or will live) in the store: ``<store>/lottery-<hash>``."""
    from ticketlab.lottery.runner import experiment_name
    return layout.experiment_dir(Path(store), "lottery", experiment_name(exp))


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
    if isinstance(target, LotteryExperimentSpec):
        if store is None:
            raise TicketlabError(f"{caller}(spec) needs the store the experiment ran in")
        return experiment_folder(target, store)
    return Path(target)

