#!/usr/bin/env bash
# Rebuilds this folder's files from the store of the Conv-2 experiment (finished or running).
# Usage: docs/results/conv2_cifar10/snapshot.sh STORE   (the experiment is lottery-0d7a290d262c6774)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../snapshot.sh" lottery-0d7a290d262c6774 "${1:?usage: snapshot.sh STORE}" "$here"
