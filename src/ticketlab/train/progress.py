"""A one-line progress bar with ETA on a terminal; silent when stderr is not a terminal or in CI."""

from __future__ import annotations

import os
import sys
import time


class Progress:
    def __init__(self, label: str, total: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = self.stream.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self.label, self.total = label, total
        self.start_time = time.monotonic()
        self.start_step = None
        self._last_draw = 0.0

    def update(self, step: int, note: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.start_step is None:
            self.start_step, self.start_time = step, now
        if not force and now - self._last_draw < 0.5:
            return
        self._last_draw = now
        done = step - self.start_step
        rate = done / max(now - self.start_time, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {step}/{self.total} {rate:6.0f} it/s ETA {_fmt(eta)} {note}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(seconds: float) -> str:
    if seconds == float("inf"):
        return "--:--"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"
