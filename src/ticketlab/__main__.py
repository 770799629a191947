"""``python -m ticketlab ...`` (what torchrun starts: ``torchrun --nproc-per-node N -m ticketlab train ...``)."""

import sys

from ticketlab.cli import main

sys.exit(main())
