#!/usr/bin/env bash
# Rebuilds this folder's table and figure from the store of the running Conv-2 experiment.
# Usage: docs/results/conv2_cifar10/snapshot.sh STORE   (the experiment is lottery-0d7a290d262c6774)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
store="${1:?usage: snapshot.sh STORE}"
exp=lottery-0d7a290d262c6774
ticketlab="$(cd "$here/../../.." && pwd)/.venv/bin/ticketlab"
"$ticketlab" results --store "$store" --where experiment=$exp --csv > "$here/jobs.csv"
"$ticketlab" status "$exp" --store "$store" > "$here/status.txt"
"$ticketlab" verify "$exp" --store "$store" > "$here/verify.txt" || true   # a failure is recorded, not hidden
if [ "$(wc -l < "$here/jobs.csv")" -gt 1 ]; then   # a header line and at least one finished job
  "$ticketlab" tables "$exp" --store "$store" --kind levels > "$here/table.txt"
  "$ticketlab" plot "$exp" --store "$store" --kind levels --out "$here/levels" > /dev/null
  rm -f "$here/levels.pdf"
fi
