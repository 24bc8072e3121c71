#!/bin/sh
# Install exactly what apexops needs on Debian 12: build tools and libraries,
# PostgreSQL 15 (tests and the embedded default), and the npm test peers.
# Idempotent, and fast when everything is present (one dpkg query).
#   scripts/install-deps.sh [--runtime|--build|--demo|--test]   (default: --test)
# --demo adds node and curl to --build: `make demo` runs the project's Stripe
# test double (tests/peers/stripe-double.mjs, node built-ins only).
set -eu
cd "$(dirname "$0")/.."
mode=${1:---test}

RUNTIME="libpq5 libcurl4 libjansson4 libcrypt1 libmicrohttpd12 postgresql-15 postgresql-client-15"
BUILD="gcc make cmake pkg-config libpq-dev libcurl4-openssl-dev libssl-dev libjansson-dev libcrypt-dev libmicrohttpd-dev"
DEMO="nodejs curl"
TEST="libcmocka-dev clang libclang-rt-14-dev postgresql-15-partman nodejs npm curl libxml2-utils python3 bc systemd"

case "$mode" in
--runtime) pkgs="$RUNTIME" ;;
--build) pkgs="$RUNTIME $BUILD" ;;
--demo) pkgs="$RUNTIME $BUILD $DEMO" ;;
--test) pkgs="$RUNTIME $BUILD $TEST" ;;
*) echo "usage: $0 [--runtime|--build|--demo|--test]" >&2; exit 64 ;;
esac

missing=""
for p in $pkgs; do
	# node and npm may come from outside Debian (the machine image): accept
	# any working binary rather than insisting on the Debian package
	case "$p" in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: installing:$missing"
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$mode" = "--test" ]; then
	if [ ! -f tests/peers/node_modules/.installed ] ||
		[ tests/peers/package.json -nt tests/peers/node_modules/.installed ] ||
		[ tests/peers/package-lock.json -nt tests/peers/node_modules/.installed ]; then
		echo "install-deps: installing npm test peers"
		# the tests fail without the peers (tests/run.sh never skips them):
		# say so here, where the cause is
		if ! (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
			echo "install-deps: npm ci in tests/peers failed; the tests need these peers" >&2
			exit 1
		fi
		touch tests/peers/node_modules/.installed
	fi
fi
