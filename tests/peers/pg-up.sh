#!/bin/sh
# Throwaway PostgreSQL 15 cluster for tests, started without systemd.
# As root the server runs as postgres (initdb refuses root).
# Prints the temp dir (data, socket, server.log). PGPORT picks the port;
# PGTMP_PARENT the directory it is made in (default /tmp: a benchmark may
# put the cluster on another file system).
set -eu
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGTMP=$(mktemp -d "${PGTMP_PARENT:-/tmp}/apexops-pgtest.XXXXXX")
PGPORT=${PGPORT:-55432}
if [ "$(id -u)" = 0 ]; then
	chown postgres:postgres "$PGTMP"
	AS="runuser -u postgres --"
else
	AS=""
fi
chmod 755 "$PGTMP"
$AS "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$PGTMP/initdb.log" 2>&1
cat >>"$PGTMP/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGTMP'
unix_socket_permissions = 0777
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
# one role logs in with a password over TCP, for the tests of refused
# logins (a wrong password is not retried); every other role is trusted
{
	echo "host all ops_pwuser 127.0.0.1/32 scram-sha-256"
	cat "$PGTMP/data/pg_hba.conf"
} >"$PGTMP/pg_hba.new"
$AS cp "$PGTMP/pg_hba.new" "$PGTMP/data/pg_hba.conf"
rm -f "$PGTMP/pg_hba.new"
$AS "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 start >/dev/null
echo "$PGTMP"
