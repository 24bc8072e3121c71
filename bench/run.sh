#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other. Each starts its own
# PostgreSQL cluster and prints its table; bench/purge also rewrites its
# section of docs/benchmarks.md (NO_DOCS=1 to skip), the revenue table is
# copied there by hand, and so are the others'. About 25 minutes on 2
# cores (the queue and export benchmarks install their npm peers on the
# first run).
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
echo
echo "== bench/dunning"
bench/dunning/run.sh "$BIN"
echo
echo "== bench/cron"
bench/cron "$BIN"
echo
echo "== bench/queue"
bench/queue/run.sh "$BIN"
echo
echo "== bench/export"
bench/export/run.sh "$BIN"
