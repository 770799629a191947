"""fp32 vs bf16 tickets of one Lenet experiment pair: per level, early stop and test accuracy (mean and
range over trials), and the Jaccard index of the two precisions' masks of the same trial next to the
Jaccard of masks of different trials (the trial-to-trial baseline).

Usage: .venv/bin/python docs/results/bf16_lenet/compare.py STORE EXPERIMENT_FP32 EXPERIMENT_BF16"""

import statistics
import sys
from itertools import combinations
from pathlib import Path

from ticketlab.analysis.lottery_tables import level_table
from ticketlab.analysis.masks import compare
from ticketlab.pruning import Mask
from ticketlab.store import layout

store, fp32, bf16 = sys.argv[1], sys.argv[2], sys.argv[3]
tables = {name: {r["level"]: r for r in level_table(store, name) if r["family"] == "ticket"} for name in (fp32, bf16)}


def mask(experiment, trial, level):
    root = layout.experiment_dir(Path(store), "lottery", experiment.removeprefix("lottery-"))
    return Mask.load(layout.level_dir(layout.trial_dir(root, trial), level) / layout.MASK)


trials = range(tables[fp32][0]["n"])
print(f"{'level':>5} {'Pm %':>6} | {'early stop fp32 (range)':>24} {'bf16 (range)':>20} | {'test fp32':>9} {'bf16':>7} |"
      f" {'Jaccard fp32~bf16':>17} {'trial~trial':>11}")
for level in sorted(tables[fp32]):
    a, b = tables[fp32][level], tables[bf16].get(level)
    if b is None:
        continue
    same = [compare(mask(fp32, t, level), mask(bf16, t, level))["total"]["jaccard"] for t in trials] if level else [1.0]
    other = ([compare(mask(fp32, s, level), mask(fp32, t, level))["total"]["jaccard"] for s, t in combinations(trials, 2)]
             if level else [1.0])
    es = lambda r: f"{r['early_stop_iteration']:,.0f} ({r['early_stop_iteration_min']:,}-{r['early_stop_iteration_max']:,})"
    print(f"{level:5d} {a['pm']:6.2f} | {es(a):>24} {es(b):>20} | {100 * a['test_accuracy_at_early_stop']:8.2f}% "
          f"{100 * b['test_accuracy_at_early_stop']:6.2f}% | {statistics.mean(same):17.3f} {statistics.mean(other):11.3f}")
