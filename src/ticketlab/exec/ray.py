"""The Ray executor: the trials of lottery experiments (every point of a sweep at once) as Ray tasks.

``ticketlab lottery ... --executor ray`` turns every (experiment, trial) chain into one task asking for
one CPU (and ``--ray-gpus`` GPUs), and Ray places the tasks on whatever machines its cluster has. A
task trains its chain into the store exactly as a ``--workers`` process does here: the same files, the
same bits (one thread per task), resumable the same way. Without ``--ray-address`` Ray starts a
cluster on this machine for the command (``--workers`` CPUs, default all) and stops it at the end;
with ``auto`` or ``HOST:PORT`` the command joins a running cluster (``ray start --head`` on one
machine, ``ray start --address HOST:PORT`` on the others), whose machines need ticketlab installed,
the data, and the store on a filesystem they share (its locks are flock-based; jobs never overlap).
Killing the command ends its tasks (Ray's jobs share the fate of their driver); rerunning resumes.
"""

from __future__ import annotations

import os
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.spec import LotteryExperimentSpec


def _ray():
    # progress lines of different trials look alike; Ray would fold them into "[repeated 7x]"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        import ray
    except ImportError:
        raise TicketlabError("--executor ray needs Ray: pip install 'ticketlab[ray]' (or pip install ray)") from None
    return ray


def run_trials(tasks: list[tuple[LotteryExperimentSpec, int]], store: str | Path, *, address: str | None = None,
               cpus: int | None = None, gpus_per_task: float = 0, data_dir: str | None = None, device: str = "cpu",
               checkpoint_seconds: float = 60.0, batch_models: int = 0, engine: str = "auto",
               sparse_below: float | None = None) -> None:
    """Train every (experiment, trial) chain of ``tasks`` as a Ray task; returns when all have ended and
    raises the first failure then (a TicketlabError keeps its message). ``address``: a running cluster
    (None: start one here with ``cpus`` CPUs, default all)."""
    ray = _ray()
    store = str(Path(store).resolve())   # the same path on every machine of the cluster
    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": cpus or os.cpu_count() or 1} if address is None else {}
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", **local)
    try:
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_task, max_retries=0)(_train_trial)
        refs = [remote.remote(exp, trial, store, data_dir, device, checkpoint_seconds, batch_models, engine,
                              sparse_below) for exp, trial in tasks]
        failures = []
        for ref in refs:   # wait for every task, so that no chain is left half-way by another's failure
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                failures.append(exc)
        if failures:
            cause = getattr(failures[0], "cause", None)
            if isinstance(cause, TicketlabError):
                raise TicketlabError(str(cause)) from None
            raise failures[0]
    finally:
        if started:
            ray.shutdown()


def _train_trial(exp: LotteryExperimentSpec, trial: int, store: str, data_dir: str | None, device: str,
                 checkpoint_seconds: float, batch_models: int, engine: str, sparse_below: float | None) -> int:
    """One task: one trial's chain, one thread, plain progress lines (Ray forwards them to the command)."""
    import torch

    from ticketlab import api, runtime
    torch.set_num_threads(1)
    runtime.tune_allocator()
    api.lottery(exp, store, trials=[trial], data_dir=data_dir, device=device, progress="lines",
                checkpoint_seconds=checkpoint_seconds, batch_models=batch_models, engine=engine,
                sparse_below=sparse_below)
    return trial
