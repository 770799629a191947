"""Every file name of the on-disk layout, in one place.

    <store>/index.sqlite                      queryable index of finished jobs (rebuildable from summaries)
    <store>/<kind>-<hash>/spec.json           the experiment's full hyperparameters, readable
    <store>/lottery-<hash>/ADOPT.lock         flock target while finished jobs of a shallower experiment
                                              are copied in (lottery/adopt.py)
    <store>/<kind>-<hash>/...                 one job directory (a single training run), or for a
                                              lottery: trial_<t>/level_<k>/<branch>/ job directories,
                                              trial_<t>/oneshot_<p>/<branch>/ and the LTH_flip chains
                                              trial_<t>/flip_<k>/level_<j>/main/
A job directory holds:
    spec.json        what this job trains (spec, mask hash, init source)
    init.pt          theta_0 of this job (state dict)
    mask.npz         the mask it trains under (bit-packed)
    resume.pt        the latest resumable state (weights, optimizer, step, tracker, RNG)
    metrics.jsonl    append-only long records {"step", "name", "value"}
    step_<n>.pt      weights kept at requested steps (e.g. the rewind point)
    final.pt         weights at the end of training
    best.pt          weights at the early-stopping iteration (minimum validation loss)
    summary.json     written last: its presence means the job finished
    LOCK             flock target: one process works in a job at a time
"""

from __future__ import annotations

from pathlib import Path

INDEX = "index.sqlite"
SPEC = "spec.json"
INIT = "init.pt"
MASK = "mask.npz"
RESUME = "resume.pt"
METRICS = "metrics.jsonl"
FINAL = "final.pt"
BEST = "best.pt"
SUMMARY = "summary.json"
LOCK = "LOCK"
ADOPT_LOCK = "ADOPT.lock"


LOTTERY = "lottery"   # experiment kinds: the prefix of their folders
TRAIN = "train"


def experiment_id(kind: str, name: str) -> str:
    """An experiment's id and folder name: ``lottery-<hash>``, ``train-<hash>``."""
    return f"{kind}-{name}"


def experiment_hash(experiment: str, kind: str = LOTTERY) -> str:
    """The hash part of an experiment id (``lottery-<hash>`` -> ``<hash>``); a bare hash is returned as is."""
    return experiment.removeprefix(f"{kind}-")


def resolve_experiment(store: Path, target: str | Path, kind: str = LOTTERY) -> Path:
    """An experiment's folder from its id (``lottery-<hash>``), its hash, or its folder's path; an error
    naming the store's listing command when the store has no such experiment."""
    from ticketlab import TicketlabError
    folder = Path(target)
    if (folder / SPEC).exists():
        return folder
    name = experiment_id(kind, experiment_hash(str(target), kind))
    if not (Path(store) / name).is_dir():
        raise TicketlabError(f"no {kind} experiment {str(target)!r} in {store}; `ticketlab status --store {store}` lists them")
    return Path(store) / name


def step_checkpoint(step: int) -> str:
    return f"step_{step}.pt"


def experiment_dir(store: Path, kind: str, name: str) -> Path:
    return Path(store) / experiment_id(kind, name)


def trial_dir(experiment: Path, trial: int) -> Path:
    return Path(experiment) / f"trial_{trial}"


def level_dir(trial: Path, level: int) -> Path:
    return Path(trial) / f"level_{level}"


def oneshot_dir(trial: Path, fraction: float) -> Path:
    return Path(trial) / f"oneshot_{fraction:g}"


def flip_dir(trial: Path, level: int) -> Path:
    """The LTH_flip chain grown from the complement of level ``level``'s ticket."""
    return Path(trial) / f"flip_{level}"
