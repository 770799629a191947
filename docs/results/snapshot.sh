#!/usr/bin/env bash
# What every results folder records of its experiment, rebuilt from the store (finished or running):
# jobs.csv (the index rows), status.txt, verify.txt, and once a job has finished table.txt, summary.txt
# (speed-ups, gains and winning tickets against the dense network) and levels.png.
# Usage: docs/results/snapshot.sh EXPERIMENT STORE FOLDER   (the folders' own snapshot.sh call it)
set -euo pipefail
exp="${1:?usage: snapshot.sh EXPERIMENT STORE FOLDER}" store="${2:?STORE}" out="${3:?FOLDER}"
ticketlab="$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/ticketlab"
"$ticketlab" results --store "$store" --where experiment="$exp" --csv > "$out/jobs.csv"
"$ticketlab" status "$exp" --store "$store" > "$out/status.txt"
"$ticketlab" verify "$exp" --store "$store" > "$out/verify.txt" || true   # a failure is recorded, not hidden
if [ "$(wc -l < "$out/jobs.csv")" -gt 1 ]; then   # a header line and at least one finished job
  "$ticketlab" tables "$exp" --store "$store" --kind levels > "$out/table.txt"
  "$ticketlab" tables "$exp" --store "$store" --kind summary > "$out/summary.txt"
  "$ticketlab" plot "$exp" --store "$store" --kind levels --out "$out/levels" > /dev/null
  rm -f "$out/levels.pdf"
fi
