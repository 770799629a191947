"""Progress with ETA: a redrawn bar on a terminal, a plain line at most once a minute when stderr is a
file or a pipe (a background run's log, a worker process), silent in CI or when disabled."""

from __future__ import annotations

import os
import sys
import time


LINE_SECONDS = 60.0   # between plain progress lines


class Progress:
    def __init__(self, label: str, total: int, enabled: bool | str | None = None, stream=None):
        """``enabled``: True or "bar" (redrawn bar), "lines" (plain lines), False (silent), None (bar on a
        terminal, lines otherwise, silent when the CI environment variable is set)."""
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = False if os.environ.get("CI") else "bar" if self.stream.isatty() else "lines"
        self.lines = enabled == "lines"
        self.enabled = bool(enabled)
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
            if self.lines:  # the first line after a period, when the rate means something
                self._last_draw = now
        if not force and now - self._last_draw < (LINE_SECONDS if self.lines else 0.5):
            return
        self._last_draw = now
        done = step - self.start_step
        rate = done / max(now - self.start_time, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        if self.lines:
            self.stream.write(f"{self.label}: {step}/{self.total} {rate:.0f} it/s ETA {_fmt(eta)} {note}\n")
        else:
            self.stream.write(f"\r{self.label} [{bar}] {step}/{self.total} {rate:6.0f} it/s ETA {_fmt(eta)} {note}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and not self.lines:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(seconds: float) -> str:
    if seconds == float("inf"):
        return "--:--"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"
