"""Plots read only the store. PNG and PDF through matplotlib's non-interactive backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ticketlab import TicketlabError  # noqa: E402
from ticketlab.store import index, layout  # noqa: E402
from ticketlab.store.artifacts import load_json  # noqa: E402
from ticketlab.train.metrics import read_metrics  # noqa: E402


def resolve_job(store: str | Path, run: str) -> Path:
    """A job directory from a path or a run_id of the store's index."""
    if Path(run).is_dir():
        return Path(run)
    rows = [r for r in index.query(Path(store)) if r["run_id"] == run or r["path"].endswith(run)]
    if not rows:
        raise TicketlabError(f"no finished run {run!r} in store {store}; list them with `ticketlab results --store {store}`")
    return Path(rows[0]["path"])


def save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return paths


def plot_run(store: str | Path, run: str, out: str | None = None) -> list[Path]:
    """Accuracy and loss vs iteration of one job, with its early-stopping iteration marked."""
    job = resolve_job(store, run)
    series = read_metrics(job / layout.METRICS)
    if not series:
        raise TicketlabError(f"{job} has no metrics yet; train it first")
    summary = load_json(job / layout.SUMMARY) if (job / layout.SUMMARY).exists() else {}
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("val", "-"), ("test", "--")):
        for ax, metric in ((ax_acc, "accuracy"), (ax_loss, "loss")):
            points = series.get(f"{split}/{metric}", [])
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, label=split)
    if "train/batch_loss" in series:
        steps, values = zip(*series["train/batch_loss"])
        ax_loss.plot(steps, values, ":", label="train (batch mean)")
    if "early_stop_iteration" in summary:
        for ax in (ax_acc, ax_loss):
            ax.axvline(summary["early_stop_iteration"], color="grey", lw=0.8, label="early stop")
    ax_acc.set(xlabel="iteration", ylabel="accuracy", title="accuracy")
    ax_loss.set(xlabel="iteration", ylabel="cross-entropy", title="loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    if summary:
        fig.suptitle(f"{summary.get('model')} on {summary.get('data_label')}, Pm {summary.get('pm', 100):.1f}%")
    return save(fig, Path(out) if out else job / "curves")
