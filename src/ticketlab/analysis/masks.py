"""Comparing masks: overlap of two masks of one model ([S4] Tables 6-7) and the layer-wise pruning
ratio ([S3] Figs 6, 8, A17). PROTOCOL §4 items 7 and 8.

For masks A and B of the same tensors, per layer and in total:

    n            positions
    kept_a/b     |A|, |B|
    overlap      |A ∧ B|
    difference   |A ∧ ¬B|: [S4]'s "difference", which equals kept − overlap when |A| = |B|
    symmetric_difference   |A xor B| (= 2·difference when |A| = |B|)
    jaccard      |A ∧ B| / |A ∨ B| (1.0 when both are empty)
    chance       n·d_a·d_b summed over layers: the expected overlap of masks drawn uniformly at random
                 with the same per-layer densities (Σ n_l d_l² when the densities are equal)
    ratio        overlap / chance (None when chance is 0)
    overlap_fraction, chance_fraction   overlap and chance as fractions of |A| (None when |A| is 0)

Everything here is a pure function of masks except ``load_mask`` and ``overlap_by_level``, which read
the store.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from ticketlab import TicketlabError
from ticketlab.analysis.lottery_series import experiment_name
from ticketlab.analysis.plots import resolve_job
from ticketlab.pruning import Mask
from ticketlab.store import index, layout

# The statistics of one comparison row, in table order.
STATS = ("n", "kept_a", "kept_b", "overlap", "difference", "symmetric_difference", "jaccard", "chance", "ratio",
         "overlap_fraction", "chance_fraction")


# ---------------------------------------------------------------------------------------------------
# The numbers.

def compare(a: Mask, b: Mask) -> dict:
    """``{"layers": [row per tensor, in A's order], "total": row}``; each row has ``name`` and STATS.

    The total's chance is the sum of the per-layer chances: a random mask with A's or B's layer-wise
    densities, not one global density, is the baseline a per-layer pruner must beat."""
    _check_same_tensors(a, b)
    layers = []
    for name, ma in a.items():
        mb = b[name].to(ma.device)
        n = ma.numel()
        kept_a, kept_b = int(ma.sum().item()), int(mb.sum().item())
        overlap = int((ma & mb).sum().item())
        layers.append(_row(name, n, kept_a, kept_b, overlap, chance=kept_a * kept_b / n if n else 0.0))
    total = _row("total", *(sum(r[k] for r in layers) for k in ("n", "kept_a", "kept_b", "overlap", "chance")))
    return {"layers": layers, "total": total}


def _row(name: str, n: int, kept_a: int, kept_b: int, overlap: int, chance: float) -> dict:
    union = kept_a + kept_b - overlap
    return {"name": name, "n": n, "kept_a": kept_a, "kept_b": kept_b, "overlap": overlap,
            "difference": kept_a - overlap,
            "symmetric_difference": union - overlap,
            "jaccard": overlap / union if union else 1.0,
            "chance": chance,
            "ratio": overlap / chance if chance else None,
            "overlap_fraction": overlap / kept_a if kept_a else None,
            "chance_fraction": chance / kept_a if kept_a else None}


def _check_same_tensors(a: Mask, b: Mask) -> None:
    only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
    if only_a or only_b:
        raise TicketlabError(f"the masks cover different tensors (only in A: {only_a}, only in B: {only_b}); "
                             "compare masks of the same model")
    shapes = [f"{n} {tuple(a[n].shape)} vs {tuple(b[n].shape)}" for n in a if a[n].shape != b[n].shape]
    if shapes:
        raise TicketlabError(f"the masks' tensors differ in shape ({'; '.join(shapes)}); "
                             "compare masks of the same model (same architecture and padding)")


def lpr(mask: Mask) -> dict[str, float]:
    """Layer-wise pruning ratio 1 − kept/n per tensor, in the mask's order (0.0 for an empty tensor)."""
    return {name: 1.0 - d for name, d in mask.layer_density().items()}


def describe(mask: Mask) -> dict:
    """``{"layers": [{name, n, kept, density, lpr}], "total": {...}}`` of one mask."""
    kept, density = mask.layer_counts(), mask.layer_density()
    layers = [{"name": name, "n": m.numel(), "kept": kept[name], "density": density[name], "lpr": 1.0 - density[name]}
              for name, m in mask.items()]
    total = {"name": "total", "n": mask.size(), "kept": mask.count(), "density": mask.density(),
             "lpr": 1.0 - mask.density()}
    return {"layers": layers, "total": total}


def overlap_series(rows: list[dict], stats=("overlap_fraction", "chance_fraction", "jaccard")) -> dict:
    """``{stat: (pm, mean, min, max)}`` over trials per level, Pm decreasing (rows of ``overlap_by_level``);
    the same shape as ``lottery_series.levels_series`` so the same axis code draws it."""
    by_level = defaultdict(list)
    for r in rows:
        by_level[r["level"]].append(r)
    levels = sorted(by_level, key=lambda lv: -statistics.mean(r["pm"] for r in by_level[lv]))
    series = {}
    for stat in stats:
        points = []
        for lv in levels:
            values = [r[stat] for r in by_level[lv] if r.get(stat) is not None]
            if values:
                points.append((statistics.mean(r["pm"] for r in by_level[lv]), statistics.mean(values),
                               min(values), max(values)))
        if points:
            series[stat] = tuple(np.array(column, dtype=float) for column in zip(*points))
    return series


# ---------------------------------------------------------------------------------------------------
# Text.

_HEADERS = {"name": "layer", "n": "n", "kept_a": "kept A", "kept_b": "kept B", "overlap": "A∧B",
            "difference": "A∧¬B", "symmetric_difference": "A xor B", "jaccard": "Jaccard", "chance": "chance",
            "ratio": "A∧B/chance", "kept": "kept", "density": "density", "lpr": "LPR"}


def format_compare(result: dict) -> str:
    """A fixed-width table of ``compare``'s rows, the total last."""
    return _format(result, ["n", "kept_a", "kept_b", "overlap", "difference", "symmetric_difference",
                            "jaccard", "chance", "ratio"])


def format_describe(result: dict) -> str:
    """A fixed-width table of ``describe``'s rows, the total last."""
    return _format(result, ["n", "kept", "density", "lpr"])


def _format(result: dict, columns: list[str]) -> str:
    def cell(value, column):
        if value is None:
            return "-"
        if column == "chance":
            return f"{value:,.1f}"
        return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"
    rows = [*result["layers"], result["total"]]
    cells = [[r["name"]] + [cell(r.get(c), c) for c in columns] for r in rows]
    headers = [_HEADERS["name"]] + [_HEADERS.get(c, c) for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]

    def line(row):
        return "  ".join([row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])])
    return "\n".join([line(headers), *map(line, cells[:-1]), "-" * len(line(headers)), line(cells[-1])])


# ---------------------------------------------------------------------------------------------------
# Reading the store.

def load_mask(path_or_job: str | Path, store: str | Path | None = None) -> Mask:
    """A mask from a ``.npz`` file, a job directory holding ``mask.npz``, or (with ``store``) a run id."""
    path = Path(path_or_job)
    if path.is_file():
        return Mask.load(path)
    if not path.is_dir():
        if store is None:
            raise TicketlabError(f"{path_or_job!r} is neither a mask file nor a job directory; give a .npz mask, "
                                 "a job directory, or a run id together with the store (--store)")
        try:
            path = resolve_job(store, str(path_or_job))
        except TicketlabError:
            raise TicketlabError(f"{path_or_job!r} is not a mask file, a job directory, or a run id of store {store}; "
                                 f"check the path, or list the runs with `ticketlab results --store {store}`") from None
    file = path / layout.MASK
    if not file.is_file():
        raise TicketlabError(f"job {path} has no {layout.MASK}; it has not started yet, or give the mask file itself")
    return Mask.load(file)


def overlap_by_level(store: str | Path, experiment: str, branch_a: str = "main", branch_b: str = "snip",
                     trials=None) -> list[dict]:
    """Rows ``{trial, level, pm, **compare(A, B)["total"]}`` for every (trial, level) of a lottery
    experiment where both branches have a mask, ordered by trial and level; levels where either is
    missing are skipped (an experiment still running). ``pm`` is branch A's Pm from the index, or
    100·density of A's mask (prunable weights only) when A's job has not finished."""
    root = Path(store) / experiment_name(experiment)
    if not root.is_dir():
        raise TicketlabError(f"no experiment {experiment_name(experiment)} in store {store}; "
                             f"list them with `ticketlab results --store {store}`")
    pms = {(r["trial"], r["level"]): r["pm"]
           for r in index.query(Path(store), {"experiment": root.name, "branch": branch_a, "kind": "lottery"})}
    rows = []
    for trial, trial_dir in _numbered(root, "trial"):
        if trials is not None and trial not in trials:
            continue
        for level, level_dir in _numbered(trial_dir, "level"):
            file_a, file_b = level_dir / branch_a / layout.MASK, level_dir / branch_b / layout.MASK
            if not (file_a.is_file() and file_b.is_file()):
                continue
            a, b = Mask.load(file_a), Mask.load(file_b)
            pm = pms.get((trial, level), 100.0 * a.density())
            total = {k: v for k, v in compare(a, b)["total"].items() if k != "name"}
            rows.append({"trial": trial, "level": level, "pm": pm, **total})
    return rows


def _numbered(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """``[(7, folder/trial_7), ...]`` sorted by number; stray names (``trial_7.tmp``) are ignored."""
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := re.fullmatch(rf"{prefix}_(\d+)", p.name))]
    return sorted(found)
