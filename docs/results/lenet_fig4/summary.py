"""`ticketlab tables --kind summary` of the Fig-4a run, computed from this folder's jobs.csv (the store's
index rows, written by snapshot.sh) with the same functions, since the store itself is not kept:

    .venv/bin/python docs/results/lenet_fig4/summary.py > docs/results/lenet_fig4/summary.txt
"""

import csv
from pathlib import Path

from ticketlab.analysis import lottery_tables

rows = []
for r in csv.DictReader(open(Path(__file__).parent / "jobs.csv")):
    row = {k: (float(v) if v not in ("", "True", "False") and k not in ("run_id", "experiment", "kind", "branch",
                                                                         "model", "dataset", "mask_hash", "path",
                                                                         "data_label") else v)
           for k, v in r.items()}
    row["level"], row["trial"] = int(row["level"]), int(row["trial"])
    row["family"] = lottery_tables.family(row["branch"])
    rows.append(row)
print(lottery_tables.format_summary(lottery_tables.summary(lottery_tables.aggregate(rows))))
