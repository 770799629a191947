"""The README's main job: a short Lenet-300-100 run on MNIST, its results and its plots."""

from __future__ import annotations

from pathlib import Path

from ticketlab import api
from ticketlab.analysis import plots
from ticketlab.analysis.tables import format_summary


def run(store: str | Path, steps: str = "3000it", data_dir: str | None = None) -> dict:
    spec = api.make_spec("lenet", "mnist", {"training.steps": steps})
    print(f"ticketlab demo: Lenet-300-100 on MNIST, Adam 1.2e-3, batch 60, {steps}; store {store}")
    summary = api.train(spec, store, data_dir=data_dir)
    print(format_summary(summary))
    for path in plots.plot_run(store, summary["path"]):
        print(f"  plot: {path}")
    return summary
