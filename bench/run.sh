#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other. Each starts its own
# PostgreSQL cluster and prints its table; bench/purge also rewrites its
# section of docs/benchmarks.md (NO_DOCS=1 to skip), the revenue table is
# copied there by hand. About 6 minutes on 2 cores.
#   bench/run.sh [path/to/apexops]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/apexops}")
echo "== bench/revenue"
bench/revenue "$BIN"
echo
echo "== bench/purge"
bench/purge "$BIN"
echo
echo "== bench/stripe-sync"
bench/stripe-sync/run.sh "$BIN"
