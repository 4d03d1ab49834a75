#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What `meson install` puts on a system (issue 17): install the build into
# a temporary DESTDIR and check that
#  - the headers are exactly the public ones (tsocket.h, tsocket_internal.h
#    for new stream types, tstream_tls.h, tstream_gssapi.h) in
#    include/tsgate, none of the private or build headers, and each one
#    compiles on its own with only the installed include directory;
#  - the libraries carry their soname and symbol version node;
#  - the daemon, the man pages, LICENSE and the docs are there, and nothing
#    of the tests (programs, static libraries) is.
# usage: test_install.sh BUILDDIR
set -euo pipefail

build=$1
CC=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsgate-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# the build is complete when meson test runs us: never rebuild from here
meson install -C "$build" --no-rebuild --destdir "$root" \
	>"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	echo "not ok - meson install --destdir"
	exit 1
}
(cd "$root" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort) \
	>"$tmp/files"

headers=$(grep -E '\.h$' "$tmp/files" | sed 's|.*/include/|include/|' | sort |
	tr '\n' ' ')
want="include/tsgate/tsocket.h include/tsgate/tsocket_internal.h include/tsgate/tstream_gssapi.h include/tsgate/tstream_tls.h "
check "installed headers are exactly the public ones (got: ${headers% })" \
	test "$headers" = "$want"
incdir=$(dirname "$(grep -m1 '/include/tsgate/tsocket\.h$' "$tmp/files")")
# shellcheck disable=SC2046 # pkg-config prints a list of flags
sysflags=$(pkg-config --cflags talloc tevent gnutls krb5-gssapi)
for h in $headers; do
	name=$(basename "$h")
	printf '#include <%s>\nint main(void) { return 0; }\n' "$name" \
		>"$tmp/only.c"
	# shellcheck disable=SC2086
	if "$CC" -Wall -Werror -I"$root/$incdir" $sysflags -fsyntax-only \
		"$tmp/only.c" 2>"$tmp/cc.err"; then
		ok "$name compiles with only the installed headers"
	else
		not_ok "$name: $(cat "$tmp/cc.err")"
	fi
done

for lib in libtsocket:TSOCKET_0.1 libtstream-tls:TSGATE_TUNNELS_0.1 \
	libtstream-gssapi:TSGATE_TUNNELS_0.1; do
	name=${lib%%:*}
	node=${lib#*:}
	f=$(grep -m1 -E "/$name\.so\.0\.[0-9.]+$" "$tmp/files" || true)
	if [ -z "$f" ]; then
		not_ok "$name.so.0.* not installed"
		continue
	fi
	check "$name: soname $name.so.0" \
		grep -q "SONAME.*\[$name\.so\.0\]" <<<"$(readelf -d "$root/$f")"
	check "$name: version node $node" \
		grep -qw "$node" <<<"$(nm -D --defined-only "$root/$f")"
	check "$name.so.0 and $name.so links" \
		test -L "$root/$(dirname "$f")/$name.so.0" -a -L "$root/$(dirname "$f")/$name.so"
done

for f in bin/tsgate share/man/man8/tsgate.8 share/man/man5/tsgate.yaml.5 \
	share/doc/tsgate/LICENSE share/doc/tsgate/README.md \
	share/doc/tsgate/configuration.md share/doc/tsgate/etc/tsgate.service; do
	check "installs .../$f" grep -q "/$f\$" "$tmp/files"
done
check "the installed man pages name the version" \
	grep -q "tsgate $(meson introspect --projectinfo "$build" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')" \
	"$root/$(grep -m1 'man8/tsgate\.8$' "$tmp/files")"
strays=$(grep -E '(^|/)(test_|tt-|knc-peer|symbol_clash|tsocket_oracle)|\.a$|private\.h$|\.c$' \
	"$tmp/files" | grep -v '/share/doc/tsgate/' || true)
check "nothing of the tests or the build is installed${strays:+: $strays}" \
	test -z "$strays"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
