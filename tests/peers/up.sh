#!/bin/sh
# Start the npm test peers on 127.0.0.1, each on a free port the kernel
# picks (no race with parallel runs): stripe-stateful-mock (through
# stripe-mock-127.js) and our Stripe double (stripe-double.mjs). Writes
# $PEERS_DIR/env (export OPS_TEST_STRIPE_MOCK_URL=...,
# OPS_TEST_STRIPE_DOUBLE_URL=...), one *.pid per peer, and prints the state
# dir; tests/peers/down.sh DIR stops them.
set -eu
cd "$(dirname "$0")"
PEERS_DIR=${PEERS_DIR:-$(mktemp -d /tmp/peers.XXXXXX)}
mkdir -p "$PEERS_DIR"
# on any failure, stop what was started
trap 'for f in "$PEERS_DIR"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done' EXIT

# start NAME SCRIPT: run it with PORT=0, wait for "... on 127.0.0.1:PORT"
# on its first line, print the port
start() {
	: >"$PEERS_DIR/$1.log" # exists before sed reads it
	PORT=0 node "$2" >>"$PEERS_DIR/$1.log" 2>&1 &
	echo $! >"$PEERS_DIR/$1.pid"
	i=0
	while :; do
		port=$(sed -n '1s/.* on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$PEERS_DIR/$1.log" || true)
		[ -n "$port" ] && break
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$(cat "$PEERS_DIR/$1.pid")" 2>/dev/null; then
			echo "peer $1 did not start; see $PEERS_DIR/$1.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "$port"
}

MOCK_PORT=$(start stripe-mock stripe-mock-127.js)
DOUBLE_PORT=$(start stripe-double stripe-double.mjs)
cat >"$PEERS_DIR/env" <<ENV
export OPS_TEST_STRIPE_MOCK_URL=http://127.0.0.1:$MOCK_PORT
export OPS_TEST_STRIPE_DOUBLE_URL=http://127.0.0.1:$DOUBLE_PORT
ENV
trap - EXIT
echo "$PEERS_DIR"
