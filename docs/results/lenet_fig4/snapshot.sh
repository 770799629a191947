#!/usr/bin/env bash
# Rebuilds this folder's table and figures from the store of the experiment (finished or running).
# Usage: docs/results/lenet_fig4/snapshot.sh STORE   (the experiment is lottery-6fab9fb5532329d6)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
store="${1:?usage: snapshot.sh STORE}"
exp=lottery-6fab9fb5532329d6
"$here/../snapshot.sh" "$exp" "$store" "$here"
ticketlab="$here/../../../.venv/bin/ticketlab"
# Fig 3: test accuracy vs iteration at Pm 100, 51.3, 21.1, 7.0, 3.6 (levels 0, 3, 7, 12, 15), x up to 15K;
# Fig 11 (right): validation loss of tickets vs their reinits at Pm 51.3 and 21.1, x up to 25K.
"$ticketlab" plot "$exp" --store "$store" --kind curves --levels 0,3,7,12,15 --until 15000 --out "$here/fig3_curves" > /dev/null
"$ticketlab" plot "$exp" --store "$store" --kind curves --levels 3,7 --families ticket,reinit --metric val/loss \
  --until 25000 --out "$here/fig11_val_loss" > /dev/null
rm -f "$here"/*.pdf
