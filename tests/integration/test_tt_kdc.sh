#!/bin/sh
# SPDX-License-Identifier: MIT
# tt-kdc (tests/common/tt_kdc_main.c), the throw-away KDC for shell-driven
# tests: it starts, prints an environment that works with the MIT tools,
# and on SIGTERM stops krb5kdc and removes its directory.
#
# usage: test_tt_kdc.sh PATH/TO/tt-kdc
set -eu

exe=$1
if [ ! -x /usr/sbin/krb5kdc ] || ! command -v klist >/dev/null 2>&1 ||
	! command -v kvno >/dev/null 2>&1; then
	echo "SKIP: MIT krb5kdc/klist/kvno not installed" >&2
	exit 77
fi

env_file=$(mktemp "${TMPDIR:-/tmp}/tt-kdc-env.XXXXXX")
"$exe" >"$env_file" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$env_file"' EXIT INT TERM

# shellcheck source=../common/wait.sh
. "${TSGATE_SRCDIR:?TSGATE_SRCDIR is not set}/tests/common/wait.sh"
ready_or_gone() {
	grep -q '^# ready' "$env_file" || ! kill -0 "$pid" 2>/dev/null
}
if ! wait_for "$DEADLINE" ready_or_gone; then
	echo "FAIL: tt-kdc not ready after $DEADLINE s" >&2
	exit 1
fi
if ! grep -q '^# ready' "$env_file"; then
	echo "FAIL: tt-kdc exited before it was ready" >&2
	exit 1
fi
. "$env_file"

klist -c "$TT_KDC_ALICE_CCACHE" | grep -q "alice@$TT_KDC_REALM"
klist -c "$TT_KDC_BOB_CCACHE" | grep -q "bob@$TT_KDC_REALM"
klist -k "$TT_KDC_SERVICE_KEYTAB" | grep -q "host/localhost@$TT_KDC_REALM"
# a service ticket from the running KDC
kvno -c "$TT_KDC_ALICE_CCACHE" host/localhost >/dev/null

kill "$pid"
wait "$pid"
if [ -e "$TT_KDC_DIR" ]; then
	echo "FAIL: $TT_KDC_DIR left behind" >&2
	exit 1
fi
if kill -0 "$TT_KDC_PID" 2>/dev/null; then
	echo "FAIL: krb5kdc $TT_KDC_PID still running" >&2
	exit 1
fi
echo "OK: tt-kdc started, served tickets and cleaned up"
