"""Presets: small TOML files in ``presets/`` that reproduce the papers' experiments.

Each file has a ``[meta]`` table (description, figures, command, runtime on a named machine, the paper's
reference numbers and their source) and a ``[settings]`` table of ``section.field = value`` overrides
applied on top of the model's paper defaults.
"""

from __future__ import annotations

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
    unknown = set(data) - {"meta", "settings"}
    if unknown or "settings" not in data:
        raise TicketlabError(f"preset {name} must have [meta] and [settings] tables only, found {sorted(data)}")
    return {"name": name, "meta": data.get("meta", {}), "settings": data["settings"]}
