"""[S4]'s Tables 2-7 regenerated from the store (PROTOCOL §5 "[S4]", §4 item 7).

    flips      Tables 2/3: early-stop iteration per prune iteration, LTH vs each LTH_flip chain. Flip
               level j is prune iteration j + 1 (the flip itself counts as one, PROTOCOL 1.17).
    snip       Tables 4/5: early-stop iteration and test accuracy per level, LTH vs SNIP (and iterative
               SNIP where it ran), with the ticket's % of weights remaining.
    overlap    Tables 6/7: kept, overlap, difference (= kept - overlap), chance overlap and Jaccard of
               the LTH and SNIP masks per level.

Every number is a mean over the trials that finished (2 seeds in [S4], hence its ".5" values). The
early-stop iteration is the best-validation iteration (the patience rule keeps that model); [S4] does
not say whether its tables show it or the stopping iteration (PROTOCOL 3.3).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from ticketlab.analysis.lottery_tables import rows_of
from ticketlab.analysis.masks import overlap_by_level


def _mean_by(rows: list[dict], key, metric: str) -> dict:
    groups = defaultdict(list)
    for r in rows:
        if r.get(metric) is not None:
            groups[key(r)].append(r[metric])
    return {k: statistics.mean(v) for k, v in groups.items()}


def flip_table(rows: list[dict]) -> list[dict]:
    """Rows per prune iteration i >= 1: LTH (level i) and every flip chain (its level i - 1)."""
    lottery = [r for r in rows if r["kind"] == "lottery" and r["family"] == "ticket"]
    flips = [r for r in rows if r["kind"] == "flip"]
    chains = sorted({r["flip_from"] for r in flips})
    lth_es = _mean_by(lottery, lambda r: r["level"], "early_stop_iteration")
    lth_pm = _mean_by(lottery, lambda r: r["level"], "pm")
    flip_es = _mean_by(flips, lambda r: (r["flip_from"], r["level"] + 1), "early_stop_iteration")
    flip_pm = _mean_by(flips, lambda r: (r["flip_from"], r["level"] + 1), "pm")
    flip_acc = _mean_by(flips, lambda r: (r["flip_from"], r["level"] + 1), "test_accuracy_at_early_stop")
    lth_acc = _mean_by(lottery, lambda r: r["level"], "test_accuracy_at_early_stop")
    iterations = sorted({i for i in lth_es if i >= 1} | {i for _, i in flip_es})
    table = []
    for i in iterations:
        row = {"iteration": i, "lth_pm": lth_pm.get(i), "lth_early_stop": lth_es.get(i), "lth_test_acc": lth_acc.get(i)}
        for k in chains:
            row[f"flip_{k}_pm"] = flip_pm.get((k, i))
            row[f"flip_{k}_early_stop"] = flip_es.get((k, i))
            row[f"flip_{k}_test_acc"] = flip_acc.get((k, i))
        table.append(row)
    return table


def snip_table(rows: list[dict]) -> list[dict]:
    """Rows per level >= 1: Pm, then early stop and test accuracy of LTH, SNIP and iterative SNIP."""
    lottery = [r for r in rows if r["kind"] == "lottery"]
    names = {"lth": "ticket", "snip": "snip", "isnip": "isnip"}
    levels = sorted({r["level"] for r in lottery if r["family"] in ("snip", "isnip")})
    table = []
    for level in levels:
        row = {"level": level}
        at = [r for r in lottery if r["level"] == level]
        row["pm"] = _mean_by([r for r in at if r["family"] == "ticket"], lambda r: 0, "pm").get(0)
        for label, fam in names.items():
            mine = [r for r in at if r["family"] == fam]
            for metric, short in (("early_stop_iteration", "early_stop"), ("test_accuracy_at_early_stop", "test_acc"),
                                  ("train_accuracy_at_early_stop", "train_acc"), ("val_accuracy_at_early_stop", "val_acc")):
                row[f"{label}_{short}"] = _mean_by(mine, lambda r: 0, metric).get(0)
        if row["lth_test_acc"] is not None and row["snip_test_acc"] is not None:
            row["gap_test_points"] = 100 * (row["lth_test_acc"] - row["snip_test_acc"])
        table.append(row)
    return table


def overlap_table(store: str | Path, experiment: str, branch_b: str = "snip") -> list[dict]:
    """Rows per level: LTH mask vs ``branch_b``'s mask, each statistic averaged over trials."""
    per_trial = overlap_by_level(store, experiment, "main", branch_b)
    table = []
    for level in sorted({r["level"] for r in per_trial}):
        rs = [r for r in per_trial if r["level"] == level]
        row = {"level": level, "trials": len(rs)}
        for key in ("pm", "kept_a", "kept_b", "overlap", "difference", "chance", "ratio", "jaccard"):
            values = [r[key] for r in rs if r.get(key) is not None]
            row[key] = statistics.mean(values) if values else None
        table.append(row)
    return table


def s4_tables(store: str | Path, experiment: str) -> dict[str, list[dict]]:
    """All three tables of one experiment (empty lists where the experiment has no such branches)."""
    rows = rows_of(store, experiment)
    tables = {"flips": flip_table(rows), "snip": snip_table(rows), "overlap": overlap_table(store, experiment)}
    if any(r["family"] == "isnip" for r in rows):
        tables["overlap_isnip"] = overlap_table(store, experiment, "isnip")
    return tables


def format_s4(tables: dict[str, list[dict]]) -> str:
    out = []
    titles = {"flips": "Early-stop iteration, LTH vs LTH_flip ([S4] Tables 2/3; flip level j = prune iteration j+1)",
              "snip": "Early stop and test accuracy, LTH vs SNIP vs iterative SNIP ([S4] Tables 4/5)",
              "overlap": "Mask overlap, LTH vs SNIP ([S4] Tables 6/7; difference = kept - overlap)",
              "overlap_isnip": "Mask overlap, LTH vs iterative SNIP"}
    for name, table in tables.items():
        if not table:
            continue
        columns = list(dict.fromkeys(k for row in table for k in row))
        out.append(titles.get(name, name))
        out.append("  ".join(f"{c:>14s}" for c in columns))
        for row in table:
            out.append("  ".join(f"{_fmt(row.get(c)):>14s}" for c in columns))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4f}"
