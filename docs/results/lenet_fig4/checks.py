"""[S1] Fig 4a/4b's claims (PROTOCOL §5) checked on this folder's jobs.csv (written by snapshot.sh): the
numbers behind the README's verdicts, each printed beside the paper's.

    .venv/bin/python docs/results/lenet_fig4/checks.py
"""

import csv
import statistics
from collections import defaultdict
from pathlib import Path

rows = list(csv.DictReader(open(Path(__file__).parent / "jobs.csv")))
by = defaultdict(list)   # (family, level) -> rows; family: ticket (the IMP job) or reinit
for r in rows:
    by[("ticket" if r["branch"] == "main" else r["branch"].split("_")[0], int(r["level"]))].append(r)


def mean(family, level, field):
    values = [float(r[field]) for r in by.get((family, level), [])]
    return statistics.mean(values) if values else None


levels = sorted(level for family, level in by if family == "ticket")
pm = {level: float(by[("ticket", level)][0]["pm"]) for level in levels}
dense_es, dense_test = mean("ticket", 0, "early_stop_iteration"), mean("ticket", 0, "test_accuracy_at_early_stop")
dense_final = mean("ticket", 0, "final_test_accuracy")
print(f"dense: early stop {dense_es:,.0f}, test acc. at early stop {100 * dense_test:.2f}%, at 50K {100 * dense_final:.2f}%")
print("level    Pm  ticket es  vs dense  test@es -dense  test@50K -dense  train@50K | reinit es  test@es  ticket-reinit  es ratio")
for level in levels:
    es, test, final = (mean("ticket", level, f) for f in ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy"))
    train = mean("ticket", level, "final_train_accuracy")
    line = (f"{level:5d} {pm[level]:6.2f} {es:10,.0f} {100 * (es / dense_es - 1):+8.0f}% {100 * (test - dense_test):+13.2f}"
            f" {100 * (final - dense_final):+15.2f} {100 * train:9.2f}%")
    r_es, r_test = mean("reinit", level, "early_stop_iteration"), mean("reinit", level, "test_accuracy_at_early_stop")
    if r_es is not None:
        line += f" | {r_es:9,.0f} {100 * r_test:7.2f}% {100 * (test - r_test):+13.2f} {r_es / es:8.2f}x"
    print(line)
fastest = min(levels, key=lambda k: mean("ticket", k, "early_stop_iteration"))
print(f"fastest tickets: level {fastest} (Pm {pm[fastest]:.1f}%), early stop "
      f"{100 * (1 - mean('ticket', fastest, 'early_stop_iteration') / dense_es):.0f}% earlier than dense   [S1]: Pm 21%, 38% earlier")
above = [k for k in levels if k and mean("ticket", k, "test_accuracy_at_early_stop") > dense_test]
print(f"tickets above dense test acc. at early stop: levels {above}   [S1]: down to Pm 3.6% (level 15)")
best = max(levels, key=lambda k: mean("ticket", k, "final_test_accuracy"))
print(f"best test acc. at 50K: level {best} (Pm {pm[best]:.1f}%), "
      f"{100 * (mean('ticket', best, 'final_test_accuracy') - dense_final):+.2f} points   [S1] Fig 4b: up to +0.35")
