"""Moved to ``ticketlab.cli.analysis`` (``ticketlab masks``); these names stay for scripts that import them."""

from __future__ import annotations

from ticketlab.cli.analysis import add_masks_parser, cmd_compare, cmd_masks, cmd_show  # noqa: F401
from ticketlab.cli.common import DEFAULT_STORE


def add_parser(subparsers, default_store: str = DEFAULT_STORE):
    """Register ``masks`` on ``subparsers``; ``default_store`` is the ``--store`` run ids are looked up in."""
    p = add_masks_parser(subparsers)
    for sub in p._subparsers._group_actions[0].choices.values():
        sub.set_defaults(store=default_store)
    return p
