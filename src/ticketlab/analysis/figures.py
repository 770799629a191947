"""What every figure of an experiment shares: its title, where it is written, the Pm axis (100 on the
left, ticks at the levels' Pm), panel grids, one legend below the panels, histogram bin counts and
mean-with-min/max error bars. Used by lottery_plots, weight_plots and mask_plots."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib import ticker

from ticketlab.analysis.lottery_series import Series, _root
from ticketlab.analysis.plots import plt


def figure_title(rows: list[dict], what: str, experiments: list[str] | None = None) -> str:
    """Model and dataset label (an unofficial copy says so in its label), what is shown, which experiments."""
    models = list(dict.fromkeys(str(r.get("model")) for r in rows))
    data = list(dict.fromkeys(str(r.get("data_label") or r.get("dataset")) for r in rows))
    names = experiments or list(dict.fromkeys(r["experiment"] for r in rows))
    # a sweep's many names would stretch the figure: wrapped, at most three lines of them
    lines = textwrap.wrap(", ".join(names), 110)
    if len(lines) > 3:
        lines = lines[:2] + [f"... ({len(names)} experiments)"]
    return f"{'/'.join(models)} on {'/'.join(data)}: {what}\n" + "\n".join(lines)


def out_stem(out, store, experiment: str | None, default: str) -> Path:
    """``out`` as a file stem: a directory gets ``default`` inside it; no ``out`` means the plots folder."""
    if out is None:
        return (_root(store, experiment) if experiment else Path(store)) / "plots" / default
    out = Path(out)
    if out.is_dir() or str(out).endswith(("/", "\\")):
        return out / default
    return out.with_suffix("") if out.suffix in (".png", ".pdf") else out


def pm_text(pm: float) -> str:
    return "100" if pm >= 99.95 else f"{pm:.1f}" if pm >= 0.95 else f"{pm:.2g}"


def count_text(n: float) -> str:
    """266200 -> '266K', 9000 -> '9.0K', 978600 -> '979K', 2.1e7 -> '21M'."""
    for div, unit in ((1e6, "M"), (1e3, "K")):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 10 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


def pm_axis(ax, pms, log: bool = True, max_ticks: int = 8, weights: bool = False) -> None:
    """x = Pm decreasing to the right (100 on the left), ticks at the Pm values of the levels; with
    ``weights`` the values are numbers of weights remaining ([S1] Figs 31, 37), same layout."""
    distinct = []
    for p in sorted(pms, reverse=True):  # overlaid experiments: 80.06 and 80.00 are one tick
        if not distinct or p < distinct[-1] * 0.985:
            distinct.append(p)
    pms = distinct
    step = max(1, math.ceil(len(pms) / max_ticks))
    ticks = pms[::step]
    if weights and log:
        # overlaid networks of different sizes have no shared levels: round counts (1, 2, 5 x 10^k) read better
        rounds = [m * 10 ** k for k in range(int(math.log10(pms[-1])), int(math.log10(pms[0])) + 1) for m in (1, 2, 5)]
        rounds = sorted((t for t in rounds if pms[-1] <= t <= pms[0]), reverse=True)
        ticks = rounds[::max(1, math.ceil(len(rounds) / max_ticks))] if len(rounds) >= 3 else ticks
    if log:
        ax.set_xscale("log")
        ax.set_xlim(pms[0] * 1.12, pms[-1] / 1.12)
    else:
        pad = 0.04 * (pms[0] - pms[-1] or 1)
        ax.set_xlim(pms[0] + pad, pms[-1] - pad)
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([(count_text if weights else pm_text)(t) for t in ticks]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel("weights remaining" if weights else "percent of weights remaining (Pm)")
    ax.grid(alpha=0.3)


def panel_grid(n: int, ncols: int, width: float, height: float, **kw):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained", **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def figure_legend(fig, handles_labels: dict) -> None:
    """One legend for the whole figure, below the panels, so no panel's lines are hidden."""
    if handles_labels:
        fig.legend(list(handles_labels.values()), list(handles_labels), loc="outside lower center",
                   ncols=min(4, len(handles_labels)), frameon=False)


def bin_count(n: float) -> int:
    """About sqrt(n) bins, 10 to 50: enough shape for a large layer, not noise for a small one."""
    return int(np.clip(round(math.sqrt(max(n, 1))), 10, 50))


def errorbar_series(ax, series: Series, label: str, **style):
    pm, mean, lo, hi = series
    return ax.errorbar(pm, mean, yerr=[mean - lo, hi - mean], capsize=2.5, lw=1.4, ms=4, elinewidth=0.8,
                       label=label, **style)
