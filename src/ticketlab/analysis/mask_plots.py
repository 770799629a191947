"""Figures of mask comparisons (PROTOCOL §4 items 7-8), written as PNG and PDF by ``plots.save``:

    plot_lpr       layer-wise pruning ratio vs layer index, one line per mask ([S3] Figs 6, 8, A17)
    plot_overlap   overlap and chance fractions and Jaccard of two branches vs Pm ([S4] Tables 6-7)

The numbers come from ``ticketlab.analysis.masks``; the Pm axis is the lottery figures' axis.
"""

from __future__ import annotations

from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.analysis.figures import errorbar_series, pm_axis
from ticketlab.analysis.masks import lpr, overlap_series
from ticketlab.analysis.plots import plt, save
from ticketlab.pruning import Mask

# Layer names fit under the axis up to about this many layers; beyond it the ticks are indices only.
_NAMED_TICKS = 20
_OVERLAP_LABELS = {"overlap_fraction": "|A∧B| / |A|", "chance_fraction": "chance |A∧B| / |A| (random masks)",
                   "jaccard": "Jaccard |A∧B| / |A∨B|"}
_OVERLAP_STYLES = {"overlap_fraction": dict(color="C0", ls="-", marker="o"),
                   "chance_fraction": dict(color="grey", ls="--", marker="s"),
                   "jaccard": dict(color="C1", ls="-", marker="^")}


def plot_lpr(masks: dict[str, Mask], out_stem: str | Path) -> list[Path]:
    """LPR (1 − kept/n) per layer index, one line with markers per mask labelled by its key."""
    if not masks:
        raise TicketlabError("plot_lpr needs at least one mask")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (label, mask) in enumerate(masks.items()):
        ax.plot(range(len(mask)), list(lpr(mask).values()), marker="os^vDP"[i % 6], ms=5, lw=1.2,
                label=f"{label} (density {mask.density():.3f})")
    layer_names = {tuple(mask) for mask in masks.values()}
    longest = max(len(mask) for mask in masks.values())
    ax.set_xticks(range(longest))
    if len(layer_names) == 1 and longest <= _NAMED_TICKS:  # masks of one model: name the layers
        ax.set_xticklabels(layer_names.pop(), rotation=45, ha="right", fontsize=8)
    ax.set(xlabel="layer", ylabel="layer-wise pruning ratio (1 − kept/n)", ylim=(-0.03, 1.03),
           title="layer-wise pruning ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, Path(out_stem))


def plot_overlap(rows: list[dict], out_stem: str | Path, label_a: str = "A", label_b: str = "B") -> list[Path]:
    """Overlap fraction |A∧B|/|A|, its random-chance value and the Jaccard index vs % of weights
    remaining (log axis, 100 on the left); mean over trials, bars min/max. ``rows`` come from
    ``masks.overlap_by_level``."""
    series = overlap_series(rows)
    if not series:
        raise TicketlabError("no levels to plot: no level has masks in both branches yet")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for stat, points in series.items():
        errorbar_series(ax, points, _OVERLAP_LABELS[stat], **_OVERLAP_STYLES[stat])
    pm_axis(ax, [pm for points in series.values() for pm in points[0]])
    ax.set(ylabel="fraction", ylim=(0, 1.03),
           title=f"mask overlap of {label_a} and {label_b} (mean; bars: min/max over trials)")
    ax.legend(fontsize=8)
    return save(fig, Path(out_stem))
