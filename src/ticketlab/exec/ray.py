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
from dataclasses import replace
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.options import RunOptions
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
               cpus: int | None = None, gpus_per_task: float = 0, options: RunOptions = RunOptions()) -> None:
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
        # one thread per task, plain progress lines (Ray forwards them to the command)
        task_options = replace(options, progress="lines", threads=1)
        refs = [remote.remote(exp, trial, store, task_options) for exp, trial in tasks]
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


def _train_trial(exp: LotteryExperimentSpec, trial: int, store: str, options: RunOptions) -> int:
    """One task: one trial's chain, through the runner's entry point."""
    from ticketlab import runtime
    from ticketlab.lottery.runner import run_trials
    options.apply_threads()
    runtime.tune_allocator()
    run_trials(exp, Path(store), [trial], options)
    return trial
