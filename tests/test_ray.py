"""The Ray executor (exec/ray.py) on a real Ray cluster started on this machine: every trial a task,
the same store files and results as the local executor, failures reported, nothing left after a kill."""

import signal
import time
from pathlib import Path

import pytest

from ticketlab import api
from ticketlab.store import layout
from ticketlab.store.artifacts import load_torch

from helpers import run_ticketlab

pytest.importorskip("ray")

COMMAND = ["lottery", "--set", "data.dataset=synthetic", "--set", "data.val_size=200", "--set", "model.hidden=32,16",
           "--set", "training.steps=200it", "--set", "training.eval_every=20it", "--set", "lottery.levels=2",
           "--set", "lottery.reinits=1", "--set", "lottery.trials=2", "--workers", "2"]


def strip(rows):
    return [{k: v for k, v in r.items() if k not in ("path", "wall_seconds")} for r in rows]


def test_trials_as_ray_tasks_give_the_local_executors_results(tmp_path):
    local = run_ticketlab(*COMMAND, "--store", str(tmp_path / "local"))
    on_ray = run_ticketlab(*COMMAND, "--executor", "ray", "--store", str(tmp_path / "ray"))
    assert local.returncode == 0 and on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "_train_trial pid=" in on_ray.stdout + on_ray.stderr   # the chains ran in Ray's workers
    rows = api.results(tmp_path / "ray")
    assert len(rows) == 10 and strip(rows) == strip(api.results(tmp_path / "local"))
    for path in (tmp_path / "local").rglob(layout.FINAL):
        mine, theirs = load_torch(path), load_torch(tmp_path / "ray" / path.relative_to(tmp_path / "local"))
        assert all((mine[k] == theirs[k]).all() for k in mine)
    tables = lambda out: out[out.index("experiment "):].replace(str(tmp_path / "ray"), "S").replace(str(tmp_path / "local"), "S")
    assert tables(on_ray.stdout) == tables(local.stdout)
    again = run_ticketlab(*COMMAND, "--executor", "ray", "--store", str(tmp_path / "ray"))
    assert again.returncode == 0 and "[lottery" not in again.stdout + again.stderr   # nothing left to train


def test_a_failing_task_is_one_clear_error(tmp_path):
    # no MNIST anywhere (an empty cache, offline): both tasks fail in Ray's workers, the command once
    bad = run_ticketlab(*COMMAND, "--set", "data.dataset=mnist", "--data-dir", str(tmp_path / "nothing"),
                    "--executor", "ray", "--store", str(tmp_path / "store"),
                    XDG_CACHE_HOME=str(tmp_path / "cache"), TICKETLAB_OFFLINE="1")
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert bad.stderr.count("ticketlab: error:") == 1 and "mnist" in bad.stderr.split("ticketlab: error:")[1]


def test_killing_the_command_ends_its_ray_tasks(tmp_path):
    store = tmp_path / "store"
    proc = run_ticketlab(*COMMAND, "--set", "training.steps=20000it", "--executor", "ray", "--store", str(store), wait=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(store.rglob(layout.METRICS))) < 2:
        time.sleep(0.1)
    assert len(list(store.rglob(layout.METRICS))) >= 2, "the tasks did not start"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _training(store):
        time.sleep(0.2)
    assert not _training(store), "a Ray task outlived the killed command"


def _training(store: Path) -> bool:
    """Whether some job of the store still grows its metrics (a live task)."""
    sizes = {p: p.stat().st_size for p in store.rglob(layout.METRICS)}
    time.sleep(1.0)
    return any(p.stat().st_size != size for p, size in sizes.items())
