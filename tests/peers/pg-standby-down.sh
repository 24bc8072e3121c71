#!/bin/sh
# Stop and remove a standby made by pg-standby-up.sh: pg-standby-down.sh DIR
exec "$(dirname "$0")/pg-down.sh" "$@"
