"""Text tables and summaries for the terminal."""

from __future__ import annotations


def format_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return "" if v is None else str(v)
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def format_summary(s: dict) -> str:
    """Three lines describing one finished training job."""
    return "\n".join([
        f"run {s['run_id']}  {s['model']} on {s['data_label']}  Pm {s['pm']:.2f}%  ({s['path']})",
        f"  early stop (min val loss) at iteration {s['early_stop_iteration']}: test acc "
        f"{s['test_accuracy_at_early_stop']:.4f}, val acc {s['val_accuracy_at_early_stop']:.4f}, "
        f"train acc {s['train_accuracy_at_early_stop']:.4f}",
        f"  final (iteration {s['iterations']}): test acc {s['final_test_accuracy']:.4f}, "
        f"train acc {s['final_train_accuracy']:.4f}",
    ])
