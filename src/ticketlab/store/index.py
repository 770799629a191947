"""The SQLite index of finished jobs that ``ticketlab results`` queries.

The index is a cache: every row comes from a job's ``summary.json``, so ``reindex`` rebuilds it.
WAL mode, writes that take the write lock first (BEGIN IMMEDIATE: a deferred transaction in WAL mode
can fail at once with "database is locked" when another process commits between its read and its
write, without waiting) and a retry with backoff on the busy errors SQLite does not wait out let
several processes write the same store safely.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from ticketlab.store import layout
from ticketlab.store.artifacts import load_json

COLUMNS = (
    "run_id", "experiment", "kind", "branch", "trial", "level", "pm", "weights_remaining",
    "model", "dataset", "data_official", "early_stop_iteration", "test_accuracy_at_early_stop",
    "val_accuracy_at_early_stop", "train_accuracy_at_early_stop", "final_test_accuracy",
    "final_val_accuracy", "final_train_accuracy", "iterations", "mask_hash", "path",
)
_SCHEMA = f"""CREATE TABLE IF NOT EXISTS runs (
    {", ".join(c + (" TEXT PRIMARY KEY" if c == "path" else "") for c in COLUMNS)}, summary TEXT)"""


_RETRY_SECONDS = 120.0


def _retrying(action):
    """``action()``, retried with backoff while SQLite reports the database busy or locked."""
    deadline, delay = time.monotonic() + _RETRY_SECONDS, 0.02
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not any(w in str(exc) for w in ("locked", "busy")) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 1.0)


def _connect(store: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), on the index in WAL mode; its
    callers retry the whole attempt (``_retrying``)."""
    Path(store).mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(Path(store) / layout.INDEX, timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _write(store: Path, statements: list[tuple[str, list]]) -> None:
    """Run ``statements`` in one transaction that holds the write lock from its start."""
    def attempt():
        conn = _connect(store)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    conn.execute(sql, args)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
    _retrying(attempt)


def record(store: Path, summary: dict) -> None:
    """Insert or replace the row of one finished job."""
    row = [summary.get(c) for c in COLUMNS]
    _write(store, [(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}, summary) "
                    f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})", [*row, json.dumps(summary, sort_keys=True)])])


def query(store: Path, where: dict[str, Any] | None = None) -> list[dict]:
    """Rows as dicts (index columns first, then the rest of each summary), filtered by equality on index
    columns, ordered by experiment, trial, level, branch."""
    where = where or {}
    unknown = set(where) - set(COLUMNS)
    if unknown:
        from ticketlab import TicketlabError
        raise TicketlabError(f"cannot filter on {sorted(unknown)}; columns are {list(COLUMNS)}")
    if not (Path(store) / layout.INDEX).exists():
        return []
    clause = " AND ".join(f"{k} = ?" for k in where)
    sql = f"SELECT {', '.join(COLUMNS)}, summary FROM runs" + (f" WHERE {clause}" if clause else "")
    sql += " ORDER BY experiment, trial, level, branch, path"
    def read():
        conn = _connect(store)
        try:
            return conn.execute(sql, list(where.values())).fetchall()
        finally:
            conn.close()
    rows = _retrying(read)
    return [{**dict(zip(COLUMNS, r[:-1])), **{k: v for k, v in json.loads(r[-1]).items() if k not in COLUMNS}}
            for r in rows]


def reindex(store: Path) -> int:
    """Rebuild the index from every summary.json under the store; returns the number of rows."""
    summaries: Iterable[Path] = sorted(Path(store).rglob(layout.SUMMARY))
    _write(store, [("DELETE FROM runs", [])])
    count = 0
    for path in summaries:
        record(store, load_json(path))
        count += 1
    return count
