#!/usr/bin/env bash
# What every results folder records of its experiment, rebuilt from the store (finished or running):
# `ticketlab report` writes spec.json, jobs.csv (the index rows), status.txt, verify.txt, and once a job has
# finished table.txt, summary.txt (speed-ups, gains and winning tickets against the dense network) and levels.png.
# Usage: docs/results/snapshot.sh EXPERIMENT STORE FOLDER   (the folders' own snapshot.sh call it)
set -euo pipefail
exp="${1:?usage: snapshot.sh EXPERIMENT STORE FOLDER}" store="${2:?STORE}" out="${3:?FOLDER}"
ticketlab="$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/ticketlab"
"$ticketlab" report "$exp" --store "$store" --out "$out" > /dev/null
