#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Starts the private
# PostgreSQL cluster under APEXOPS_HOME (default ./.apexops), migrates it,
# bootstraps the sandbox, builds revenue scenarios, previews a retention
# purge and prints the status screen. It never touches DATABASE_URL: the
# demo always runs on the embedded cluster.
set -euo pipefail
BIN=${1:-build/apexops}
cd "$(dirname "$0")/.."
unset DATABASE_URL
export APEXOPS_HOME=${APEXOPS_HOME:-$PWD/.apexops}
OUT=${APEXOPS_DEMO_OUT:-$APEXOPS_HOME/demo}
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ops() { printf '$ apexops %s\n' "$*"; "$BIN" "$@"; }

step "1. embedded PostgreSQL cluster"
ops db start
step "2. schema migrations"
ops migrate up
ops migrate status
step "3. sandbox bootstrap (publisher, apps, placements, logins, FakeNetworkA/B/C, waterfalls)"
ops sandbox bootstrap
step "   a second run changes nothing"
ops sandbox bootstrap
step "4. sandbox revenue: the three tiers previewed, Growth written"
ops sandbox revenue --tier all --dry-run --start 2026-10-01 --days 30
ops sandbox revenue growth --start 2026-10-01 --days 30 --plot "$OUT/revenue-growth.svg"
step "5. retention purge preview (dry-run: nothing is deleted)"
ops purge
step "6. status"
ops status || true
step "done"
cat <<EOT
The embedded cluster keeps running: 'apexops db url' prints its URL,
'apexops db stop' stops it. Revenue chart: $OUT/revenue-growth.svg
EOT
