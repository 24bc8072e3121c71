#!/bin/sh
# Stop the peers started by up.sh and remove their state: down.sh DIR
set -u
d=${1:?usage: down.sh DIR}
[ -d "$d" ] || exit 0
for f in "$d"/*.pid; do
	[ -f "$f" ] || continue
	kill "$(cat "$f")" 2>/dev/null || true
done
rm -rf "$d"
