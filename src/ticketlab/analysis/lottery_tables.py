"""Tables of a lottery experiment, read from the store's index: one row per (branch family, level),
aggregated over trials (mean, min, max), the way the paper's plots aggregate them."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.store import index

METRICS = ("early_stop_iteration", "test_accuracy_at_early_stop", "val_accuracy_at_early_stop",
           "train_accuracy_at_early_stop", "final_test_accuracy", "final_train_accuracy")


def family(branch: str) -> str:
    """'reinit_2' -> 'reinit', 'random_global_0' -> 'random_global'; the IMP job and 'ticket' -> 'ticket'.

    Noise branches keep their multiple ('noise_0.5', 'noise_3'): each c is its own control, and the
    suffix of 'noise_3' is the multiple, not a repeat index."""
    if branch == "main":
        return "ticket"
    if branch.startswith("noise_"):
        return branch
    return re.sub(r"_\d+$", "", branch)


def rows_of(store: str | Path, experiment: str) -> list[dict]:
    name = experiment if experiment.startswith("lottery-") else f"lottery-{experiment}"
    rows = index.query(Path(store), {"experiment": name})
    if not rows:
        raise TicketlabError(f"no finished jobs of experiment {experiment!r} in {store}; "
                             "run `ticketlab lottery` first or check the name with `ticketlab results`")
    # When a level has a separate 'ticket' job (mode=continue, or eval hyperparameters), the IMP job
    # 'main' is the find run and 'ticket' the reported network.
    has_ticket = {(r["kind"], r["trial"], r["level"]) for r in rows if r["branch"] == "ticket"}
    for r in rows:
        r["family"] = "find" if r["branch"] == "main" and (r["kind"], r["trial"], r["level"]) in has_ticket else family(r["branch"])
        if r["kind"] == "flip":  # [S4] LTH_flip chains, one family per flipped level
            r["family"] = f"flip_{r['flip_from']}"
    return rows


def level_table(store: str | Path, experiment: str, kind: str = "lottery") -> list[dict]:
    """Per (family, level): n, Pm, and mean/min/max of every metric over trials and repeats.
    For ``kind="oneshot"`` the key is the pruned fraction, stored under "level"."""
    return aggregate(rows_of(store, experiment), kind)


def aggregate(rows: list[dict], kind: str = "lottery") -> list[dict]:
    """``level_table`` of rows already read (``rows_of``): the pure part, shared with the plots."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["kind"] == kind:
            key = (r["family"], r.get("oneshot_fraction") if kind == "oneshot" else r["level"])
            groups[key].append(r)
    table = []
    for (fam, level), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "ticket", kv[0][0], kv[0][1])):
        row = {"family": fam, "level": level, "n": len(rs), "pm": statistics.mean(r["pm"] for r in rs)}
        metrics = list(METRICS) + sorted({k for r in rs for k in r if k.startswith("test_accuracy_at_")})
        for m in metrics:
            values = [r[m] for r in rs if r.get(m) is not None]
            if values:
                row[m] = statistics.mean(values)
                row[f"{m}_min"], row[f"{m}_max"] = min(values), max(values)
        table.append(row)
    return table


def format_levels(table: list[dict]) -> str:
    lines = [f"{'family':16s} {'level':>5s} {'Pm %':>7s} {'n':>3s} {'early stop':>10s} {'test@es':>8s} {'train@es':>8s} {'final test':>10s}"]
    for r in table:
        lines.append(f"{r['family']:16s} {r['level']!s:>5s} {r['pm']:7.2f} {r['n']:3d} {r.get('early_stop_iteration', float('nan')):10.0f} "
                     f"{r.get('test_accuracy_at_early_stop', float('nan')):8.4f} {r.get('train_accuracy_at_early_stop', float('nan')):8.4f} "
                     f"{r.get('final_test_accuracy', float('nan')):10.4f}")
    return "\n".join(lines)
