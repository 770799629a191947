"""``python -m ticketlab.cli ...``, as ``python -m ticketlab ...``."""

import sys

from ticketlab.cli import main

sys.exit(main())
