#!/bin/sh
# Stop and remove a cluster made by pg-up.sh: pg-down.sh DIR
set -u
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
d=$1
[ -d "$d/data" ] || exit 0
if [ "$(id -u)" = 0 ]; then AS="runuser -u postgres --"; else AS=""; fi
$AS "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$d"
