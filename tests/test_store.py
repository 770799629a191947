"""The store: atomic artifacts, locking, an index that survives concurrent writers."""

import json
import os
import subprocess
import sys

import pytest

from ticketlab.store import index
from ticketlab.store.artifacts import load_json, save_json


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    save_json(path, {"a": 1})

    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_json(path, {"a": 2})
    assert load_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # the temporary file was removed


def test_index_query_and_reindex(tmp_path):
    for i in range(3):
        job = tmp_path / f"train-{i}"
        summary = {"run_id": str(i), "path": str(job), "kind": "train", "level": i, "trial": 0, "pm": 100.0 / (i + 1)}
        save_json(job / "summary.json", summary)
        index.record(tmp_path, summary)
    assert [r["level"] for r in index.query(tmp_path)] == [0, 1, 2]
    assert [r["run_id"] for r in index.query(tmp_path, {"level": 1})] == ["1"]
    (tmp_path / "index.sqlite").unlink()
    assert index.reindex(tmp_path) == 3 and len(index.query(tmp_path)) == 3


WORKER = """
import sys
from ticketlab.cli import main
sys.exit(main(["train", "--store", sys.argv[1], "--json", "--set", "data.dataset=synthetic", "--set", "data.val_size=200",
               "--set", "model.hidden=16,8", "--set", "training.steps=40it", "--set", "training.eval_every=20it",
               "--set", f"training.lr={sys.argv[2]}"]))
"""


def test_concurrent_processes_share_a_store(tmp_path):
    # Four processes, two of them on the same run: each run trains once, the index holds both, nothing is torn.
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), lr], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for lr in ("0.001", "0.001", "0.002", "0.002")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    summaries = [json.loads(o[0]) for o in outs]
    assert summaries[0] == summaries[1] and summaries[2] == summaries[3], summaries
    rows = index.query(tmp_path)
    assert sorted(r["run_id"] for r in rows) == sorted({s["run_id"] for s in summaries}), (rows, summaries)


def test_index_writes_retry_the_busy_errors_sqlite_does_not_wait_out(tmp_path, monkeypatch):
    # In WAL mode SQLite can answer "database is locked" at once (a stale snapshot, a racing recovery):
    # the index retries such errors, and only such errors, instead of failing the job that wrote it.
    import sqlite3
    real_connect, failures = sqlite3.connect, {"left": 3}

    class Flaky:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql == "BEGIN IMMEDIATE" and failures["left"] > 0:
                failures["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return self.conn.execute(sql, *args)

        def close(self):
            self.conn.close()

    monkeypatch.setattr(index.sqlite3, "connect", lambda *a, **k: Flaky(real_connect(*a, **k)))
    index.record(tmp_path, {"run_id": "a", "path": "p"})
    assert failures["left"] == 0 and [r["run_id"] for r in index.query(tmp_path)] == ["a"]
    failures["left"] = 10 ** 6
    monkeypatch.setattr(index, "_RETRY_SECONDS", 0.2)
    with pytest.raises(sqlite3.OperationalError, match="locked"):   # not forever
        index.record(tmp_path, {"run_id": "b", "path": "q"})


WRITER = """
import sys
from pathlib import Path
from ticketlab.store import index
for k in range(100):
    index.record(Path(sys.argv[1]), {"run_id": sys.argv[2], "path": f"{sys.argv[2]}-{k}", "level": k})
    if k % 10 == 0:
        index.query(Path(sys.argv[1]))
"""


def test_many_processes_write_one_index(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(i)], stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert len(index.query(tmp_path)) == 400
