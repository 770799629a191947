#!/usr/bin/env bash
# Rebuilds this folder's table and figure from the store of the running experiment.
# Usage: docs/results/lenet_fig4/snapshot.sh STORE   (the experiment is lottery-6fab9fb5532329d6)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
store="${1:?usage: snapshot.sh STORE}"
exp=lottery-6fab9fb5532329d6
ticketlab="$(cd "$here/../../.." && pwd)/.venv/bin/ticketlab"
"$ticketlab" results --store "$store" --where experiment=$exp --csv > "$here/jobs.csv"
"$(dirname "$ticketlab")/python" - "$store" "$exp" > "$here/table.txt" <<'PY'
import sys
from ticketlab.analysis import lottery_tables
print(lottery_tables.format_levels(lottery_tables.level_table(sys.argv[1], sys.argv[2])))
PY
"$ticketlab" plot "$exp" --store "$store" --kind levels --out "$here/levels" > /dev/null
rm -f "$here/levels.pdf"
