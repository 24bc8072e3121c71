#!/usr/bin/env bash
# Queue benchmark: no-op jobs through apexops's queue (apexops worker, kind
# noop) against graphile-worker in its batched configuration and pg-boss,
# on one PostgreSQL 15, in one run, at equal concurrency.
#
#   bench/queue/run.sh [path/to/apexops]          (default build/apexops)
#   JOBS=100000 CONCURRENCY=8 TRICKLE_RATE=200 TRICKLE_S=10 bench/queue/run.sh
#   SYSTEMS="apexops graphile" CASES="burst analyzed" bench/queue/run.sh
#   SYSTEMS="apexops notify claim disk" CASES=trickle bench/queue/run.sh
#   TRICKLE_WARMUP=0 ...   (no thrown-away trickle before the measured ones)
#   TRICKLE_DUMP=DIR ...   (each trickle job's call, ack and start times)
#   TRICKLE_CLIENT=libpq ... (the trickle enqueued by trickle_client.c, a
#                            libpq client, instead of node-postgres; pg-boss,
#                            which has no SQL enqueue, keeps node's)
#
# Starts its own server (tests/peers/pg-up.sh) with durability on (fsync,
# synchronous_commit, full_page_writes: printed) and autovacuum off, so
# that no ANALYZE runs behind a "no statistics" case; installs the peers
# from bench/queue/package-lock.json with `npm ci` on first run; then
# bench.mjs measures, per system: the bulk enqueue rate, a burst of JOBS
# jobs just enqueued into a job table never analyzed, the same after
# ANALYZE, and the trickle latency (TRICKLE_RATE jobs/s for TRICKLE_S s,
# enqueue to handler start, p50/p99). It prints one table and checks that
# no job was lost or ran twice in any run (exit 1 otherwise). It asserts
# no times. Not part of `make test`; CI does not run it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-${APEXOPS_BIN:-$ROOT/build/apexops}}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export APEXOPS_MIGRATIONS_DIR=$ROOT/migrations/postgres
[ -x "$BIN" ] || { echo "bench/queue: no binary at $BIN (build first)" >&2; exit 64; }
command -v node >/dev/null || { echo "bench/queue: node is needed for the peers" >&2; exit 69; }

if [ ! -d "$HERE/node_modules/graphile-worker" ] || [ ! -d "$HERE/node_modules/pg-boss" ]; then
	echo "bench/queue: installing the peers (npm ci)" >&2
	(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

free_port() {
	local p=$1
	while (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
PORT=$(free_port 58432)
WORK=$(mktemp -d /tmp/apexops-bench-queue.XXXXXX)
# the claim floor (SYSTEMS=claim), a libpq client of its own
cc -std=c11 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" \
	-o "$WORK/claim_floor" "$HERE/claim_floor.c" -lpq
# the trickle's enqueuing client in C (TRICKLE_CLIENT=libpq)
cc -std=c11 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" \
	-o "$WORK/trickle_client" "$HERE/trickle_client.c" -lpq
# the disk's floor (SYSTEMS=disk): write+fdatasync, no database
cc -std=c11 -O2 -Wall -Wextra -Werror -o "$WORK/fsync_floor" "$HERE/fsync_floor.c"
PGTMP=$(PGPORT=$PORT "$ROOT/tests/peers/pg-up.sh")
# fsync_floor writes beside the server's data, on its file system
export BENCH_DISK_DIR=$PGTMP
AS=""
[ "$(id -u)" = 0 ] && AS="runuser -u postgres --"
cleanup() {
	$AS "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$PGTMP" "$WORK"
}
trap cleanup EXIT
ADMIN="postgresql://postgres@127.0.0.1:$PORT/postgres"
# durability on (pg-up.sh turns it off for the tests), autovacuum off
psql -X -q "$ADMIN" -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
	-c "ALTER SYSTEM SET full_page_writes = on" -c "ALTER SYSTEM SET autovacuum = off" \
	-c "ALTER SYSTEM SET max_wal_size = '4GB'"
$AS "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 restart >/dev/null
settings=$(psql -X -At "$ADMIN" -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
	WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'autovacuum', 'shared_buffers')")
echo "PostgreSQL $(psql -X -At "$ADMIN" -c "SHOW server_version"): $settings"
case " $settings " in
*" fsync=on "*" synchronous_commit=on "*) ;;
*) echo "bench/queue: fsync and synchronous_commit must be on" >&2; exit 1 ;;
esac
echo "machine: $(nproc) CPU(s), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); node $(node --version);" \
	"graphile-worker $(node -p "require('$HERE/node_modules/graphile-worker/package.json').version")," \
	"pg-boss $(node -p "require('$HERE/node_modules/pg-boss/package.json').version"); $($BIN --version 2>/dev/null | head -1)"
node "$HERE/bench.mjs" "$ADMIN" "$BIN" "$WORK"
