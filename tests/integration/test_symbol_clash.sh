#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Our libtsocket and Samba's libsamba-sockets in one process (issue 17):
# symbol_clash (linked against ours, dlopen()s Samba's) run three ways:
#   1. plainly: Samba's library loaded after ours, RTLD_LOCAL;
#   2. with Samba's library preloaded (LD_PRELOAD), first in the global
#      scope: without our own version node our program's unversioned
#      references would bind to Samba's functions;
#   3. under LD_DEBUG=bindings: the loader's own record of every binding
#      shows none from our program or libraries to Samba's tsocket and
#      none from Samba's library to ours.
# usage: test_symbol_clash.sh SYMBOL_CLASH_PROGRAM SAMBA_LIBRARY
set -euo pipefail

prog=$1
samba=$2
if [ ! -f "$samba" ]; then
	echo "FAIL: Samba's tsocket library $samba is missing" \
		"(samba-libs; scripts/deps test installs it)" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/symbol-clash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

status=0
echo "# 1. plain"
"$prog" "$samba" || status=1
echo "# 2. Samba's library preloaded"
# a sanitizer build: its runtime must stay first in the library list
san=$(ldd "$prog" | awk '$1 ~ /^lib(a|ub)san\.so/ { printf "%s ", $3 }')
LD_PRELOAD="$san$samba" "$prog" "$samba" || status=1
echo "# 3. LD_DEBUG=bindings"
LD_DEBUG=bindings LD_DEBUG_OUTPUT=$tmp/bind "$prog" "$samba" >/dev/null ||
	status=1
cat "$tmp"/bind.* >"$tmp/bindings"
# a line: binding file A [0] to B [0]: normal symbol `name' [VERSION]
cross=$(grep -E "binding file [^ ]*(symbol_clash|libtsocket|libtstream)[^ ]* .* to [^ ]*libsamba-sockets[^ ]* .*symbol \`_?(tsocket|tstream|tdgram)_|binding file [^ ]*libsamba-sockets[^ ]* .* to [^ ]*libtsocket" \
	"$tmp/bindings" || true)
ours=$(grep -cE "binding file [^ ]*symbol_clash[^ ]* .* to [^ ]*libtsocket\.so[^ ]* .*\[TSOCKET_0\.1\]" \
	"$tmp/bindings" || true)
samba_own=$(grep -cE "binding file [^ ]*libsamba-sockets[^ ]* .* to [^ ]*libsamba-sockets[^ ]* .*symbol \`_tsocket_address_create'" \
	"$tmp/bindings" || true)
if [ -n "$cross" ]; then
	echo "not ok - bindings across the two libraries:"
	printf '%s\n' "$cross" | sed 's/^/  /' | head -20
	status=1
else
	echo "ok - no binding across the two libraries"
fi
if [ "$ours" -gt 0 ]; then
	echo "ok - the program binds $ours tsocket symbols to libtsocket @TSOCKET_0.1"
else
	echo "not ok - no binding of the program to libtsocket [TSOCKET_0.1]"
	status=1
fi
if [ "$samba_own" -gt 0 ]; then
	echo "ok - Samba's library binds _tsocket_address_create to itself"
else
	echo "not ok - Samba's _tsocket_address_create binding not seen"
	status=1
fi
exit $status
