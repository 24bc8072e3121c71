#!/bin/bash
# A streaming standby of a test cluster made by pg-up.sh, from a base
# backup (pg_basebackup -R writes primary_conninfo and standby.signal).
# As root it runs as postgres, as pg-up.sh does. Prints the standby's temp
# dir (data, socket, server.log, port).
#   PRIMARY_PORT=55432 [PGPORT=55532] tests/peers/pg-standby-up.sh
# Stop it with pg-standby-down.sh DIR. The primary needs nothing beyond
# initdb's defaults: wal_level replica, max_wal_senders 10 and the
# "host replication all 127.0.0.1/32 trust" line of pg_hba.conf.
set -eu
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
: "${PRIMARY_PORT:?set PRIMARY_PORT to the port of the primary}"
port=${PGPORT:-$((PRIMARY_PORT + 100))}
cd /
SBTMP=$(mktemp -d /tmp/apexops-pgstandby.XXXXXX)
if [ "$(id -u)" = 0 ]; then
	chown postgres:postgres "$SBTMP"
	AS="runuser -u postgres --"
else
	AS=""
fi
chmod 755 "$SBTMP"
# application_name names the standby in the primary's pg_stat_replication
if ! $AS "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres \
	-D "$SBTMP/data" -R -X stream -c fast --no-sync \
	-d "application_name=apexops_test_standby" >"$SBTMP/basebackup.log" 2>&1; then
	cat "$SBTMP/basebackup.log" >&2
	rm -rf "$SBTMP"
	exit 1
fi
# the copied postgresql.conf names the primary's port and socket: the
# later lines win
cat >>"$SBTMP/data/postgresql.conf" <<CONF
unix_socket_directories = '$SBTMP'
hot_standby = on
wal_receiver_status_interval = 1s
CONF
# another cluster may take a free-looking port first: try the next ones
for _ in 1 2 3 4 5; do
	while (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do port=$((port + 1)); done
	echo "port = $port" >>"$SBTMP/data/postgresql.conf"
	if $AS "$PGBIN/pg_ctl" -D "$SBTMP/data" -l "$SBTMP/server.log" -w -t 60 start >/dev/null; then
		echo "$port" >"$SBTMP/port"
		echo "$SBTMP"
		exit 0
	fi
	grep -q "could not create any TCP/IP sockets" "$SBTMP/server.log" || break
	port=$((port + 1))
done
cat "$SBTMP/server.log" >&2
rm -rf "$SBTMP"
exit 1
