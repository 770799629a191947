"""ticketlab: lottery-ticket experiments (iterative magnitude pruning, rewinding, controls, analyses)."""

__version__ = "0.1.0"


class TicketlabError(Exception):
    """An error caused by the user's input; the message names the fix. The CLI prints it on one line."""
