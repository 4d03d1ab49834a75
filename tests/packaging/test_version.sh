#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tsgate --version and its verbose form (issue 17): -v/--version print one
# line with the project's version; -vv and --version --verbose print the
# same report, whose library rows agree with what pkg-config says the
# build used and with the library files the binary actually loads (ldd),
# and whose feature list names what the config parser accepts.
# usage: test_version.sh TSGATE PROJECT_VERSION
set -euo pipefail

tsgate=$1
want=$2
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

for opt in --version -V -v; do
	out=$("$tsgate" "$opt")
	check "$opt prints 'tsgate $want' (got '$out')" test "$out" = "tsgate $want"
done

vv=$("$tsgate" -vv)
long=$("$tsgate" --version --verbose)
check "-vv and --version --verbose print the same" test "$vv" = "$long"
check "-vv starts with the version line" \
	test "$(head -n 1 <<<"$vv")" = "tsgate $want"
check "--help names -vv and --verbose" \
	grep -q -- '--verbose' <<<"$("$tsgate" --help)"

# row NAME: "RUNNING BUILT" of the Libraries table
row() { awk -v n="$1" '$1 == n && NF == 3 { print $2, $3 }' <<<"$vv"; }
pc() { pkg-config --modversion "$1"; }
# the release in the name of the file ldd resolves for a library
loaded() {
	local f
	f=$(ldd "$tsgate" | awk -v l="$1" '$1 ~ "^"l"\\.so" { print $3 }')
	[ -n "$f" ] || return 0
	f=$(basename "$(readlink -f "$f")")
	echo "${f#*.so.}"
}

check "GnuTLS built with pkg-config's $(pc gnutls)" \
	test "$(row GnuTLS | cut -d' ' -f2)" = "$(pc gnutls)"
check "libyaml built with pkg-config's $(pc yaml-0.1)" \
	test "$(row libyaml | cut -d' ' -f2)" = "$(pc yaml-0.1)"
check "c-ares: running and built with pkg-config's $(pc libcares)" \
	test "$(row c-ares)" = "$(pc libcares) $(pc libcares)"
check "talloc: running $(loaded libtalloc), built with $(pc talloc)" \
	test "$(row talloc)" = "$(loaded libtalloc) $(pc talloc)"
check "tevent: running $(loaded libtevent), built with $(pc tevent)" \
	test "$(row tevent)" = "$(loaded libtevent) $(pc tevent)"
krb5=$(ldd "$tsgate" | awk '$1 ~ /^libkrb5\.so/ { print $3 }')
check "MIT krb5: the loaded file, built with $(pc krb5)" \
	test "$(awk '$1 == "MIT" { print $3, $4 }' <<<"$vv")" = \
	"$(basename "$(readlink -f "$krb5")") $(pc krb5)"
check "GnuTLS running version is a version" \
	grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+ ' <<<"$(row GnuTLS)"
check "tsocket: libtsocket.so.$want" test "$(row tsocket)" = "$want $want"
for lib in tstream-tls tstream-gssapi; do
	check "$lib: $want" test "$(row "$lib")" = "$want $want"
done
check "build options: compiler" grep -Eq '^  compiler: (gcc|clang) [0-9]' <<<"$vv"
check "build options: build type" grep -Eq '^  build type: [a-z]+' <<<"$vv"
check "build options: sanitizers" grep -Eq '^  sanitizers: ' <<<"$vv"
check "features: accept plain tls gssapi tls-gssapi" \
	grep -qx '  accept: plain tls gssapi tls-gssapi' <<<"$vv"
check "features: connect plain tls gssapi tls-gssapi" \
	grep -qx '  connect: plain tls gssapi tls-gssapi' <<<"$vv"
check "features: framing raw length32 nbt ncacn" \
	grep -qx '  framing: raw length32 nbt ncacn' <<<"$vv"
check "features: identity none proxy-v2 knc" \
	grep -qx '  identity: none proxy-v2 knc' <<<"$vv"

if [ $fail -ne 0 ]; then
	printf '%s\n' "--- tsgate -vv" "$vv"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
