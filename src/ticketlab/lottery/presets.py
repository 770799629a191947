"""Presets: small TOML files in ``presets/`` that reproduce the papers' experiments.

Each file has a ``[meta]`` table (description, figures, command, runtime on a named machine, the paper's
reference numbers and their source), a ``[settings]`` table of ``section.field = value`` overrides
applied on top of the model's paper defaults, and optionally a ``[sweep]`` table of
``section.field = [values]``: one experiment per point, the lists zipped (``meta.sweep = "zip"``, the
default: all lists have one length) or crossed (``meta.sweep = "product"``).
"""

from __future__ import annotations

import itertools
import tomllib
from importlib import resources

from ticketlab import TicketlabError


def names() -> list[str]:
    folder = resources.files("ticketlab.lottery") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load(name: str) -> dict:
    """``{"name", "meta": {...}, "settings": {...}}`` of preset ``name``."""
    if name not in names():
        raise TicketlabError(f"unknown preset {name!r}; choose one of {names()} (see `ticketlab presets`)")
    text = (resources.files("ticketlab.lottery") / "presets" / f"{name}.toml").read_text()
    data = tomllib.loads(text)
    unknown = set(data) - {"meta", "settings", "sweep"}
    if unknown or "settings" not in data:
        raise TicketlabError(f"preset {name} may have [meta], [settings] and [sweep] tables only, found {sorted(data)}")
    return {"name": name, "meta": data.get("meta", {}), "settings": data["settings"], "sweep": data.get("sweep", {})}


def sweep_points(preset: dict) -> list[dict]:
    """The overrides of each experiment of a preset's sweep ([{}] without a sweep)."""
    sweep = preset["sweep"]
    if not sweep:
        return [{}]
    keys = list(sweep)
    if preset["meta"].get("sweep", "zip") == "product":
        return [dict(zip(keys, values)) for values in itertools.product(*sweep.values())]
    lengths = {len(v) for v in sweep.values()}
    if len(lengths) != 1:
        raise TicketlabError(f"preset {preset['name']}: zipped sweep lists differ in length {sorted(lengths)}")
    return [dict(zip(keys, values)) for values in zip(*sweep.values())]
