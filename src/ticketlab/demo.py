"""The README's main job: a short lottery experiment on MNIST with its controls, table and plots.

Lenet-300-100, 2 trials x 7 levels (0..6) with 40% of the hidden weights (20% of the output layer)
pruned per level so that a few minutes reach Pm 4.7%, 2,000 iterations per run, 1 random
reinitialisation per trial and level; two worker processes. What it shows: the tickets keep their
accuracy as the network shrinks while the same masks randomly reinitialised fall behind.
"""

from __future__ import annotations

from pathlib import Path

from ticketlab import api
from ticketlab.analysis import lottery_plots, lottery_tables
from ticketlab.lottery.verify import format_verification

SETTINGS = {"data.dataset": "mnist", "training.steps": "2000it", "training.eval_every": "100it",
            "pruning.fc_rate": 0.4, "lottery.levels": 6, "lottery.trials": 2, "lottery.reinits": 1}


def run(store: str | Path, data_dir: str | None = None, workers: int = 2) -> Path:
    exp = api.make_experiment("lenet", overrides=SETTINGS)
    print("ticketlab demo: Lenet-300-100 on MNIST, 2 trials x 7 levels (40% per level), 2,000 iterations per run,\n"
          f"  1 random reinitialisation per trial and level; store {store}")
    root = api.lottery(exp, store, data_dir=data_dir, workers=workers)
    table = lottery_tables.level_table(store, root.name)
    print(lottery_tables.format_levels(table))
    print(lottery_tables.format_summary(lottery_tables.summary(table), rows=False))
    for path in lottery_plots.standard_plots(store, root.name):
        print(f"plot: {path}")
    print(format_verification(api.verify_lottery(root)))  # nested masks, exact resets, zeros: on this run's files
    return root
