#!/usr/bin/env bash
# Rebuilds this folder's tables and figures from the store of the [S4] Lenet experiment.
# Usage: docs/results/s4_lenet/snapshot.sh STORE   (the experiment is lottery-709fe3ffd108cf23)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
store="${1:?usage: snapshot.sh STORE}"
exp=lottery-709fe3ffd108cf23
"$here/../snapshot.sh" "$exp" "$store" "$here"
mv "$here/table.txt" "$here/levels.txt"
ticketlab="$here/../../../.venv/bin/ticketlab"
"$ticketlab" tables "$exp" --store "$store" --kind s4 > "$here/tables.txt"
plots="$store/$exp/plots"
"$ticketlab" plot "$exp" --store "$store" --kind levels --families ticket,snip,isnip --out "$here/levels" > /dev/null
cp "$plots/overlap_snip.png" "$plots/flips.png" "$here/"
cp "$plots"/lpr_level*.png "$here/"
rm -f "$here"/*.pdf
