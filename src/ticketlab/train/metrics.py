"""Metrics: append-only long records ``{"step", "name", "value"}`` and early-stop bookkeeping.

Everything that reads metrics (summaries, tables, plots) goes through ``read_metrics``.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ticketlab.store.artifacts import atomic_write_bytes

WALL = "time/wall_seconds"   # metrics.jsonl: a run's time so far, at each evaluation


class MetricLog:
    """Appends records to ``metrics.jsonl``, flushed per evaluation.

    On resume the log is first cut back to the resumed step, so records written after the last
    checkpoint by a killed process are not duplicated."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None

    def truncate_after(self, step: int) -> None:
        if self.path is None or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError):
                break  # a torn last line from a kill mid-write
        atomic_write_bytes(self.path, "".join(k + "\n" for k in kept).encode())

    def write(self, step: int, values: dict[str, float]) -> None:
        if self.path is None:
            return
        lines = "".join(json.dumps({"step": step, "name": k, "value": v}) + "\n" for k, v in values.items())
        with open(self.path, "a") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value), ...]}`` from a metrics file, ignoring a torn last line."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    if not Path(path).exists():
        return {}
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            break
        series[record["name"]].append((record["step"], record["value"]))
    return dict(series)


@dataclass
class EarlyStop:
    """Tracks the [S1] early-stopping iteration (minimum validation loss, training not truncated)
    and, when ``patience`` > 0, the [S4] rule (stop after ``patience`` evaluations without a better
    validation accuracy; the early-stop iteration is then the best-accuracy one)."""

    patience: int = 0
    best_step: int = -1
    best_value: float = math.inf
    at_best: dict = field(default_factory=dict)
    evals_since_best: int = 0

    def update(self, step: int, evaluation: dict[str, float]) -> bool:
        """Record an evaluation; returns True when this step is the new early-stopping point."""
        value = -evaluation["val/accuracy"] if self.patience else evaluation["val/loss"]
        if math.isnan(value):
            value = math.inf
        if value < self.best_value or self.best_step < 0:
            self.best_step, self.best_value, self.at_best = step, value, dict(evaluation)
            self.evals_since_best = 0
            return True
        self.evals_since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.evals_since_best >= self.patience

    def state(self) -> dict:
        return asdict(self)
