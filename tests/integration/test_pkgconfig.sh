#!/bin/sh
# SPDX-License-Identifier: MIT
# The installed libraries are usable by others: `meson install` the build
# into a temporary DESTDIR, then build and run small programs against it
# with nothing but `cc prog.c $(pkg-config --cflags --libs NAME)` (our .pc
# files relocated into the DESTDIR, system packages as installed).
#
#  - tsocket: an echo over tstream_unix_socketpair (must exist);
#  - tstream-tls, tstream-gssapi: header + link check (each skipped when
#    the build did not install its .pc, e.g. -Dtls=disabled);
#  - the example programs of docs/api.md (docs/examples/*.c), built the
#    way their comments say and run: a TCP echo (tsocket), a TLS session
#    with certificates made here by openssl (tstream-tls), a Kerberos
#    session against tt-kdc, the test KDC (tstream-gssapi).
#
# A sanitizer build installs libraries that need the sanitizer runtime
# loaded first: the programs are then built with the same -fsanitize.
#
# usage: test_pkgconfig.sh [BUILDDIR]   (default: $TSGATE_BUILDDIR)
set -eu
# shellcheck source=../common/wait.sh
. "${TSGATE_SRCDIR:-$(dirname "$0")/../..}/tests/common/wait.sh"

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

# A library built with -Db_sanitize needs its runtime first in the
# program: build the programs with the same sanitizers.
san=
if command -v ldd >/dev/null 2>&1; then
	needed=$(ldd "$libdir/libtsocket.so" 2>/dev/null || true)
	case $needed in *libasan*) san="$san -fsanitize=address" ;; esac
	case $needed in *libubsan*) san="$san -fsanitize=undefined" ;; esac
fi

# build NAME SOURCE: compile and link SOURCE against pkg-config NAME only.
build() {
	name=$1
	src=$2
	cflags=$(pkg-config --cflags "$name")
	libs=$(pkg-config --libs "$name")
	echo "cc $src $cflags $libs"
	# shellcheck disable=SC2086 # word splitting of flags is intended
	if ! "$CC" -Wall -Wextra -Werror $san -o "${src%.c}" "$src" $cflags $libs \
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

# The example programs of docs/api.md, built as their comments say.
examples=${TSGATE_SRCDIR:-$(dirname "$0")/../..}/docs/examples
for f in tsocket_echo tls_echo gssapi_echo; do
	if [ ! -f "$examples/$f.c" ]; then
		echo "FAIL: $examples/$f.c is missing" >&2
		exit 1
	fi
	cp "$examples/$f.c" "$tmp/"
done

build tsocket "$tmp/tsocket_echo.c"
out=$("$tmp/tsocket_echo")
if ! printf '%s\n' "$out" |
	grep -Eq '^ipv4:127\.0\.0\.1:[0-9]+ echoed "hello, tsocket"$'; then
	echo "FAIL: docs/examples/tsocket_echo printed '$out'" >&2
	exit 1
fi
echo "docs/examples/tsocket_echo: $out"

if [ ! -f "$pcdir/tstream-tls.pc" ]; then
	echo "docs/examples/tls_echo: tstream-tls not installed, skipped"
elif ! command -v openssl >/dev/null 2>&1; then
	echo "docs/examples/tls_echo: no openssl to make certificates, skipped"
else
	build tstream-tls "$tmp/tls_echo.c"
	(
		cd "$tmp"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout ca.key -out ca.crt -days 2 \
			-subj "/CN=example CA" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout server.key -out server.csr -subj "/CN=localhost" \
			2>/dev/null
		printf 'subjectAltName=DNS:localhost\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key \
			-CAcreateserial -days 2 -extfile server.ext \
			-out server.crt 2>/dev/null
	)
	out=$("$tmp/tls_echo" "$tmp/server.crt" "$tmp/server.key" "$tmp/ca.crt")
	if ! printf '%s\n' "$out" | grep -q '^TLS1\.[23] .*CN=localhost$' ||
		! printf '%s\n' "$out" | grep -q '^echoed "hello over TLS"$'; then
		echo "FAIL: docs/examples/tls_echo printed '$out'" >&2
		exit 1
	fi
	# and it refuses a certificate for another name
	if "$tmp/tls_echo" "$tmp/server.crt" "$tmp/server.key" "$tmp/ca.crt" \
		other.example >/dev/null 2>"$tmp/tls.err" ||
		! grep -q 'verification failed' "$tmp/tls.err"; then
		echo "FAIL: tls_echo accepted a certificate for another name" >&2
		exit 1
	fi
	echo "docs/examples/tls_echo: $(printf '%s' "$out" | tr '\n' ' ')"
fi

kdc_exe=$builddir/tests/tt-kdc
if [ ! -f "$pcdir/tstream-gssapi.pc" ]; then
	echo "docs/examples/gssapi_echo: tstream-gssapi not installed, skipped"
elif [ ! -x "$kdc_exe" ] || [ ! -x /usr/sbin/krb5kdc ]; then
	echo "docs/examples/gssapi_echo: no test KDC (tt-kdc, krb5kdc), skipped"
else
	build tstream-gssapi "$tmp/gssapi_echo.c"
	"$kdc_exe" >"$tmp/kdc.env" 2>"$tmp/kdc.err" &
	kdc_pid=$!
	trap 'kill "$kdc_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT INT TERM
	kdc_ready_or_gone() {
		grep -q '^# ready' "$tmp/kdc.env" ||
			! kill -0 "$kdc_pid" 2>/dev/null
	}
	wait_for "$DEADLINE" kdc_ready_or_gone || true
	if ! grep -q '^# ready' "$tmp/kdc.env"; then
		cat "$tmp/kdc.err" >&2
		echo "FAIL: tt-kdc did not start" >&2
		exit 1
	fi
	out=$(
		# shellcheck disable=SC1091 # written by tt-kdc just now
		. "$tmp/kdc.env"
		"$tmp/gssapi_echo" "$TT_KDC_SERVICE_KEYTAB" \
			"$TT_KDC_SERVICE@$TT_KDC_REALM" "$TT_KDC_ALICE_CCACHE"
	) || {
		echo "FAIL: docs/examples/gssapi_echo failed: $out" >&2
		exit 1
	}
	kill "$kdc_pid"
	wait "$kdc_pid" || true
	trap 'rm -rf "$tmp"' EXIT INT TERM
	if ! printf '%s\n' "$out" |
		grep -q '^alice@[A-Z.]* authenticated to host/localhost@.* (krb5)$' ||
		! printf '%s\n' "$out" | grep -q '^echoed "hello over GSSAPI"$'; then
		echo "FAIL: docs/examples/gssapi_echo printed '$out'" >&2
		exit 1
	fi
	echo "docs/examples/gssapi_echo: $(printf '%s' "$out" | tr '\n' ' ')"
fi

echo "PASS"
