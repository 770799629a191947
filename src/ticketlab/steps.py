"""Typed training steps: ``Step.parse("50000it")`` or ``Step.parse("2ep")``, never a bare integer of unknown unit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ticketlab import TicketlabError

_PATTERN = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")


@dataclass(frozen=True, order=True)
class Step:
    """An amount of training in iterations (``it``) or epochs (``ep``)."""

    amount: int
    unit: str = "it"

    def __post_init__(self):
        if self.unit not in ("it", "ep"):
            raise TicketlabError(f"step unit must be 'it' or 'ep', got {self.unit!r}")
        if self.amount < 0:
            raise TicketlabError(f"a step cannot be negative, got {self.amount}{self.unit}")

    @classmethod
    def parse(cls, text: "str | int | Step") -> "Step":
        if isinstance(text, Step):
            return text
        if isinstance(text, int) and not isinstance(text, bool):
            return cls(text, "it")
        match = _PATTERN.match(str(text))
        if not match:
            raise TicketlabError(f"cannot read step {text!r}: write it as e.g. '50000it' or '2ep'")
        return cls(int(match.group(1)), match.group(2))

    def iterations(self, iterations_per_epoch: int) -> int:
        """This step in iterations, given how many iterations make an epoch (last partial batch dropped)."""
        return self.amount if self.unit == "it" else self.amount * iterations_per_epoch

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"
