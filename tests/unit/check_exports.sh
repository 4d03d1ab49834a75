#!/bin/sh
# SPDX-License-Identifier: MIT
# Check that a shared library exports exactly the functions its public
# headers declare: nothing missing, nothing extra; with --node NODE, also
# that every one of them carries the symbol version NODE as its default
# version (name@@NODE) and that the library defines no other version node,
# so a process that also loads Samba's tsocket cannot mix the two.
#
# usage: check_exports.sh [--node NODE] LIBRARY.so HEADER.h [HEADER.h ...]
#
# The declared names come from the compiler itself (gcc -aux-info on a
# file including every header), so macros, line breaks and comments in
# the headers cannot fool it. Only declarations made in the given headers
# count, not those of headers they include (talloc, tevent, other libs).
# Extra include directories and flags for the headers' own includes come
# from $CHECK_EXPORTS_CFLAGS (default: pkg-config talloc tevent).
set -eu

node=
if [ "${1:-}" = --node ] && [ $# -ge 2 ]; then
	node=$2
	shift 2
fi
if [ $# -lt 2 ]; then
	echo "usage: $0 [--node NODE] LIBRARY.so HEADER.h [HEADER.h ...]" >&2
	exit 2
fi
lib=$1
shift

GCC=${GCC:-gcc}
if ! command -v "$GCC" >/dev/null 2>&1 || ! command -v nm >/dev/null 2>&1; then
	echo "SKIP: needs gcc (for -aux-info) and nm" >&2
	exit 77
fi
if [ ! -f "$lib" ]; then
	echo "FAIL: no such library: $lib" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

cflags=${CHECK_EXPORTS_CFLAGS:-$(pkg-config --cflags talloc tevent)}
: >"$tmp/all.c"
: >"$tmp/paths"
for h in "$@"; do
	dir=$(cd "$(dirname "$h")" && pwd)
	path="$dir/$(basename "$h")"
	printf '#include "%s"\n' "$path" >>"$tmp/all.c"
	printf '%s\n' "$path" >>"$tmp/paths"
	cflags="$cflags -I$dir"
done

# shellcheck disable=SC2086 # cflags is a list of flags
"$GCC" $cflags -D_GNU_SOURCE -aux-info "$tmp/aux" -fsyntax-only \
	"$tmp/all.c"

# Lines look like:
#   /* /abs/path/tsocket.h:71:NC */ extern char *name (args);
while read -r path; do
	grep -F "/* $path:" "$tmp/aux" || true
done <"$tmp/paths" |
	sed -e 's|^/\*[^*]*\*/ *||' -e 's/ (.*$//' \
	    -e 's/^.*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\)$/\1/' |
	sort -u >"$tmp/declared"

nm -D --defined-only "$lib" |
	awk 'NF == 3 && $2 ~ /^[TtWiDdBbRrVv]$/ { print $3 }' |
	sort -u >"$tmp/versioned"
sed 's/@.*$//' "$tmp/versioned" | sort -u >"$tmp/exported"

if [ ! -s "$tmp/declared" ]; then
	echo "FAIL: found no declarations in: $*" >&2
	exit 1
fi

status=0
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
if [ -n "$missing" ]; then
	echo "FAIL: declared in the headers but not exported by $lib:"
	printf '%s\n' "$missing" | sed 's/^/  /'
	status=1
fi
if [ -n "$extra" ]; then
	echo "FAIL: exported by $lib but not declared in the headers:"
	printf '%s\n' "$extra" | sed 's/^/  /'
	status=1
fi
if [ -n "$node" ]; then
	unversioned=$(grep -v "@@$node\$" "$tmp/versioned" || true)
	if [ -n "$unversioned" ]; then
		echo "FAIL: exported without the default version $node:"
		printf '%s\n' "$unversioned" | sed 's/^/  /'
		status=1
	fi
	# the version definitions (type A): exactly NODE
	nodes=$(nm -D --defined-only "$lib" | awk '$2 == "A" { print $3 }' |
		sort -u | tr '\n' ' ')
	if [ "$nodes" != "$node " ]; then
		echo "FAIL: version nodes of $lib: '${nodes% }', expected '$node'"
		status=1
	fi
fi
if [ $status -eq 0 ]; then
	echo "OK: $(wc -l <"$tmp/exported") symbols, exactly the declared API${node:+, all @@$node}"
fi
exit $status
