#!/bin/sh
# The installed libraries are usable by others: `meson install` the build
# into a temporary DESTDIR, then build and run small programs against it
# with nothing but `cc prog.c $(pkg-config --cflags --libs NAME)` (our .pc
# files relocated into the DESTDIR, system packages as installed).
#
#  - tsocket: an echo over tstream_unix_socketpair (must exist);
#  - tstream-tls, tstream-gssapi: header + link check (each skipped when
#    the build did not install its .pc, e.g. -Dtls=disabled).
#
# usage: test_pkgconfig.sh [BUILDDIR]   (default: $TSGATE_BUILDDIR)
set -eu

builddir=${1:-${TSGATE_BUILDDIR:-}}
if [ -z "$builddir" ] || [ ! -d "$builddir" ]; then
	echo "usage: $0 BUILDDIR (or set TSGATE_BUILDDIR)" >&2
	exit 2
fi
CC=${CC:-cc}
for tool in meson pkg-config "$CC"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found" >&2
		exit 77
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsgate-pkgconfig.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
root="$tmp/root"

# The build is complete when meson test runs us; never rebuild from here.
if ! meson install -C "$builddir" --no-rebuild --destdir "$root" \
	>"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	echo "FAIL: meson install into DESTDIR failed" >&2
	exit 1
fi

pcfile=$(find "$root" -name tsocket.pc -path '*/pkgconfig/*' | head -n 1)
if [ -z "$pcfile" ]; then
	echo "FAIL: tsocket.pc was not installed" >&2
	exit 1
fi
instdir=$(dirname "$pcfile")
# The .pc files name the real prefix; relocate our own into DESTDIR (and
# only ours: talloc, tevent, gnutls and krb5 keep coming from the system).
pcdir="$tmp/pkgconfig"
mkdir "$pcdir"
for pc in "$instdir"/*.pc; do
	sed "s|^prefix=|prefix=$root|" "$pc" >"$pcdir/$(basename "$pc")"
done
PKG_CONFIG_PATH=$pcdir
export PKG_CONFIG_PATH
unset PKG_CONFIG_SYSROOT_DIR || true
libdir=$(pkg-config --variable=libdir tsocket)
case $libdir in
"$root"/*) ;;
*)
	echo "FAIL: tsocket.pc libdir '$libdir' is not under its prefix" >&2
	exit 1
	;;
esac
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

echo "installed tsocket $(pkg-config --modversion tsocket) in $instdir"

for f in "$libdir/libtsocket.so" "$(pkg-config --variable=includedir tsocket)/tsgate/tsocket.h"; do
	if [ ! -e "$f" ]; then
		echo "FAIL: not installed: $f" >&2
		exit 1
	fi
done

# build NAME SOURCE: compile and link SOURCE against pkg-config NAME only.
build() {
	name=$1
	src=$2
	cflags=$(pkg-config --cflags "$name")
	libs=$(pkg-config --libs "$name")
	echo "cc $src $cflags $libs"
	# shellcheck disable=SC2086 # word splitting of flags is intended
	if ! "$CC" -Wall -Werror -o "${src%.c}" "$src" $cflags $libs \
		>"$tmp/cc.log" 2>&1; then
		cat "$tmp/cc.log" >&2
		echo "FAIL: building against the installed $name" >&2
		exit 1
	fi
}

cat >"$tmp/echo.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <tsocket.h>

static void set_done(struct tevent_req *req)
{
	*(int *)tevent_req_callback_data_void(req) = 1;
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tstream_context *a, *b;
	static const char msg[] = "hello over tsocket";
	char buf[sizeof(msg)] = "";
	struct iovec wiov = { (void *)msg, sizeof(msg) };
	struct iovec riov = { buf, sizeof(buf) };
	struct tevent_req *w, *r;
	int wdone = 0, rdone = 0, err = 0, n, i;

	if (ev == NULL || tstream_unix_socketpair(mem, &a, mem, &b) != 0) {
		return 1;
	}
	w = tstream_writev_send(mem, ev, a, &wiov, 1);
	r = tstream_readv_send(mem, ev, b, &riov, 1);
	if (w == NULL || r == NULL) {
		return 1;
	}
	tevent_req_set_callback(w, set_done, &wdone);
	tevent_req_set_callback(r, set_done, &rdone);
	for (i = 0; i < 1000 && !(wdone && rdone); i++) {
		tevent_loop_once(ev);
	}
	if (!(wdone && rdone)) {
		return 1;
	}
	if (tstream_writev_recv(w, &err) != (int)sizeof(msg)) {
		return 1;
	}
	n = tstream_readv_recv(r, &err);
	if (n != (int)sizeof(msg) || memcmp(buf, msg, sizeof(msg)) != 0) {
		return 1;
	}
	printf("%s\n", buf);
	talloc_free(mem);
	return 0;
}
EOF
build tsocket "$tmp/echo.c"
out=$("$tmp/echo")
if [ "$out" != "hello over tsocket" ]; then
	echo "FAIL: echo program printed '$out'" >&2
	exit 1
fi
echo "tsocket: echo over the installed library OK"

# The program must use the installed library, not the build tree's.
if command -v ldd >/dev/null 2>&1; then
	used=$(ldd "$tmp/echo" | awk '/libtsocket/ { print $3 }')
	case $used in
	"$libdir"/*) ;;
	*)
		echo "FAIL: echo linked to '$used', not to $libdir" >&2
		exit 1
		;;
	esac
fi

# Optional libraries: NAME HEADER SYMBOL
check_optional() {
	name=$1
	header=$2
	symbol=$3
	if [ ! -f "$pcdir/$name.pc" ]; then
		echo "$name: not installed by this build, skipped"
		return 0
	fi
	cat >"$tmp/$name.c" <<EOF
#include <stdio.h>
#include <$header>

int main(void)
{
	/* Referencing the symbol makes the link prove it is exported. */
	printf("%p\n", (void *)$symbol);
	return 0;
}
EOF
	build "$name" "$tmp/$name.c"
	if ! "$tmp/$name" >/dev/null; then
		echo "FAIL: the $name program did not run" >&2
		exit 1
	fi
	echo "$name: header and library usable OK"
}

check_optional tstream-tls tstream_tls.h tstream_tls_connect_send
check_optional tstream-gssapi tstream_gssapi.h tstream_gssapi_connect_send

echo "PASS"
