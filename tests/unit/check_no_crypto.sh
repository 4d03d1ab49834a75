#!/bin/sh
# SPDX-License-Identifier: MIT
# Check that a static library calls no crypto or tunnel library: the
# config walk (gateway_config) must stand without GnuTLS, krb5, GSSAPI or
# tstream_tls, whose checks are the credential pass in gateway/tunnel/.
# The meson dependencies already keep their headers out; this catches a
# call that slipped in through a declaration of its own.
#
# usage: check_no_crypto.sh LIBRARY.a
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 LIBRARY.a" >&2
	exit 2
fi
if ! command -v nm >/dev/null 2>&1; then
	echo "FAIL: needs nm (binutils)" >&2
	exit 1
fi
if [ ! -f "$1" ]; then
	echo "FAIL: no such library: $1" >&2
	exit 1
fi
bad=$(nm -u "$1" | awk '{ print $NF }' |
	grep -E '^(gnutls_|krb5_|gss_|tstream_tls_|tstream_gssapi_)' |
	sort -u || true)
if [ -n "$bad" ]; then
	echo "FAIL: $1 calls:" >&2
	echo "$bad" >&2
	exit 1
fi
echo "ok - $1 calls no GnuTLS, krb5, GSSAPI or tunnel function"
