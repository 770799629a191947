"""[S0]'s results table from the store: per cycle, the prunable (conv) weights left, their fraction, and
top-1 accuracy on ImageNet (the test set) and each shifted test set, at the early-stop (best-validation)
weights, as [S0] reports its best-validation checkpoint; IN-A to 3 decimals, the rest to 2 (PROTOCOL 4.12)."""

from __future__ import annotations

from pathlib import Path

from ticketlab import models
from ticketlab.analysis import lottery_tables
from ticketlab.spec import LotteryExperimentSpec, from_dict
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json

COLUMNS = {"test_accuracy_at_early_stop": "IN", "imagenet_v2_accuracy_at_early_stop": "IN-V2",
           "imagenet_r_accuracy_at_early_stop": "IN-R", "imagenet_a_accuracy_at_early_stop": "IN-A",
           "imagenet_sketch_accuracy_at_early_stop": "IN-S"}


def s0_table(store: str | Path, experiment: str) -> list[dict]:
    """One row per level of the ticket: ``cycle``, ``prunable`` (weights left in the pruned tensors),
    ``fraction`` of them, and the mean over trials of every accuracy column present (``COLUMNS``)."""
    rows = lottery_tables.rows_of(store, experiment)
    name = layout.experiment_id(layout.LOTTERY, layout.experiment_hash(experiment))
    exp = from_dict(LotteryExperimentSpec, load_json(Path(store) / name / layout.SPEC)["spec"])
    counts = models.describe(exp.model.name, exp.model)
    unprunable = counts["weights"] - counts["prunable"]
    table = []
    for row in lottery_tables.aggregate(rows):
        if row["family"] != "ticket":
            continue
        prunable = row["weights_remaining"] - unprunable
        out = {"cycle": row["level"], "n": row["n"], "prunable": round(prunable),
               "fraction": prunable / counts["prunable"]}
        out.update({label: 100 * row[key] for key, label in COLUMNS.items() if key in row})
        table.append(out)
    return table


def format_s0(table: list[dict]) -> str:
    labels = [label for label in COLUMNS.values() if any(label in r for r in table)]
    lines = [f"{'cycle':>5s} {'n':>2s} {'conv params':>12s} {'fraction':>8s} " + " ".join(f"{c:>6s}" for c in labels)]
    for r in table:
        cells = [(f"{r[c]:6.3f}" if c == "IN-A" else f"{r[c]:6.2f}") if c in r else f"{'-':>6s}" for c in labels]
        lines.append(f"{r['cycle']:5d} {r['n']:2d} {r['prunable']:12,d} {r['fraction']:8.4f} " + " ".join(cells))
    return "\n".join(lines)
