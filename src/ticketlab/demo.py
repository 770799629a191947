"""The README's main job: a short lottery experiment on MNIST with its controls, table and plots.

Lenet-300-100, 2 trials x 7 levels (0..6) with 40% of the hidden weights (20% of the output layer)
pruned per level so that a few minutes reach Pm 4.7%, 2,000 iterations per run, 1 random
reinitialisation per trial and level; one worker process per trial (at most one per core). What it shows: the tickets keep their
accuracy as the network shrinks while the same masks randomly reinitialised fall behind.
"""

from __future__ import annotations

from pathlib import Path

from ticketlab import api
from ticketlab.analysis import lottery_tables
from ticketlab.lottery.verify import format_verification
from ticketlab.options import RunOptions, cores

TRIALS = 2
SETTINGS = {"data.dataset": "mnist", "training.steps": "2000it", "training.eval_every": "100it",
            "pruning.fc_rate": 0.4, "lottery.levels": 6, "lottery.trials": TRIALS, "lottery.reinits": 1}


def run(store: str | Path, data_dir: str | None = None, workers: int | None = None,
        options: RunOptions | None = None) -> Path:
    """Run (or resume) the demo in ``store``: ``workers`` processes (default: one per trial, at most one per
    core), ``options`` how each job runs (``data_dir`` is its field of that name)."""
    workers = workers or max(1, min(cores(), TRIALS))
    exp = api.make_experiment("lenet", overrides=SETTINGS)
    print(f"ticketlab demo: Lenet-300-100 on MNIST, {TRIALS} trials x 7 levels (40% per level), 2,000 iterations "
          f"per run,\n  1 random reinitialisation per trial and level; {workers} worker process(es); store {store}")
    root = api.lottery(exp, store, options=options, data_dir=data_dir, workers=workers)
    table = api.table(root)
    print(lottery_tables.format_levels(table))
    print(lottery_tables.format_summary(lottery_tables.summary(table), rows=False))
    for path in api.plot_lottery(root.parent, [root.name], "all"):
        print(f"plot: {path}")
    print(format_verification(api.verify_lottery(root)))  # nested masks, exact resets, zeros: on this run's files
    return root
