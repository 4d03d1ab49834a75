#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Remake the real-token seeds of fuzz-gssapi (corpus/gssapi/krb5-real-*).
#
#   tests/fuzz/make_gssapi_seeds.sh TT_KDC_BIN [FUZZ_BUILDDIR]
#
# TT_KDC_BIN is tests/tt-kdc of a normal build with tests (a throw-away
# KDC, tests/common/tt_kdc_main.c). The service key of host/localhost is
# set from the same password fuzz-gssapi derives its keytab from, so the
# acceptor decrypts these tickets and authenticators and gets as far as
# the clock-skew and replay checks (the seeds age: a fresh one may even
# complete a handshake). Not run by CI; the output is committed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ttkdc=${1:?usage: $0 TT_KDC_BIN [FUZZ_BUILDDIR]}
builddir=${2:-$root/build-fuzz}
fuzzer=$builddir/tests/fuzz/fuzz-gssapi
password=tsgate-fuzz-service-key # FUZZ_KRB5_PASSWORD in fuzz_krb5.h

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsgate-gssapi-seeds.XXXXXX")
kdc=
cleanup() {
	[ -z "$kdc" ] || kill "$kdc" 2>/dev/null || true
	[ -z "$kdc" ] || wait "$kdc" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

"$ttkdc" >"$tmp/kdc.env" &
kdc=$!
for _ in $(seq 100); do
	grep -q '^# ready' "$tmp/kdc.env" && break
	sleep 0.1
done
# shellcheck disable=SC1091
. "$tmp/kdc.env"

kadmin.local -q "cpw -pw $password $TT_KDC_SERVICE" >/dev/null
n=0
# the enctypes the KDC of tt_kdc.c supports
for enctype in aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96; do
	cc="FILE:$tmp/alice-$n.ccache"
	cat >"$tmp/krb5-$n.conf" <<CONF
include $KRB5_CONFIG
[libdefaults]
	default_tgs_enctypes = $enctype
	default_tkt_enctypes = $enctype
	permitted_enctypes = $enctype
CONF
	# a TGT and service ticket of that enctype only
	KRB5_CONFIG=$tmp/krb5-$n.conf kinit -k -t "$TT_KDC_ALICE_KEYTAB" \
		-c "$cc" alice
	KRB5_CONFIG=$tmp/krb5-$n.conf KRB5CCNAME=$cc \
		FUZZ_GSSAPI_MAKE_SEED="$here/corpus/gssapi/krb5-real-$enctype" \
		"$fuzzer"
	n=$((n + 1))
done
ls -l "$here"/corpus/gssapi/krb5-real-*
