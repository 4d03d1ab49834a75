#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The tsgate command line, with the real binary:
#   --version, --help, usage errors;
#   --check-config on every broken fixture (exact FILE:LINE:COL messages
#   from its .expect file, exit 1), on every good fixture (exit 0);
#   --check-config on etc/tsgate.yaml and every etc/examples/*.yaml, with
#   the certificates, CRL and keytabs they name made here (openssl,
#   certtool, ktutil) in a temp dir;
#   a bad key, a missing file or (as nobody) an unreadable key in a real
#   config points at its line and column;
#   running (not checking) a broken config fails before doing anything;
#   running etc/tsgate.yaml serves TLS to an echo backend, SIGTERM exits 0.
# Usage: test_cli.sh PATH/TO/tsgate   (TSGATE_SRCDIR: the source tree)
set -euo pipefail

tsgate=${1:?usage: test_cli.sh PATH/TO/tsgate}
tsgate=$(cd "$(dirname "$tsgate")" && pwd)/$(basename "$tsgate")
src=${TSGATE_SRCDIR:?TSGATE_SRCDIR is not set}
fixtures=$src/tests/data/config

for prog in openssl certtool ktutil; do
	if ! command -v "$prog" >/dev/null; then
		echo "SKIP: $prog is not installed (scripts/deps test)" >&2
		exit 77
	fi
done

# shellcheck source=../common/wait.sh
. "$src/tests/common/wait.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsgate-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
pass() {
	echo "ok: $*"
}

# run NAME EXPECTED_RC DIR ARGS...: runs tsgate in DIR, output in $tmp/out
# and $tmp/err; counts a failure when the exit code is not EXPECTED_RC.
run() {
	local name=$1 want=$2 dir=$3 rc=0
	shift 3
	(cd "$dir" && exec "$tsgate" "$@") >"$tmp/out" 2>"$tmp/err" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$name: exit $rc, expected $want"
		sed 's/^/    /' "$tmp/out" "$tmp/err" >&2
		return 1
	fi
	return 0
}

# --version, --help, usage errors

if run version 0 . --version && grep -Eq '^tsgate [0-9]+\.[0-9]+' "$tmp/out"; then
	pass "--version: $(cat "$tmp/out")"
else
	fail "--version printed: $(cat "$tmp/out")"
fi
if run help 0 . --help && grep -q -- '--check-config' "$tmp/out" &&
	grep -q -- '/etc/tsgate/tsgate.yaml' "$tmp/out"; then
	pass "--help"
else
	fail "--help does not describe --check-config and the default path"
fi
if run bogus-option 2 . --bogus && grep -q Usage "$tmp/err"; then
	pass "unknown option: usage, exit 2"
fi
if run extra-argument 2 . --config x.yaml extra && grep -q "unexpected argument 'extra'" "$tmp/err"; then
	pass "extra argument: exit 2"
fi
if [ ! -e /etc/tsgate/tsgate.yaml ]; then
	if run default-path 1 . --check-config &&
		grep -q '^/etc/tsgate/tsgate.yaml: cannot open the config file: No such file or directory$' "$tmp/err"; then
		pass "default config path /etc/tsgate/tsgate.yaml"
	fi
fi

# Broken fixtures: exactly the expected lines, then the count; exit 1.

check_broken() {
	local dir=$1 file=$2 base expect count
	base=${file%.yaml}
	expect=$dir/$base.expect
	if [ ! -f "$expect" ]; then
		fail "$file: no $base.expect"
		return
	fi
	count=$(grep -c . "$expect")
	run "$file" 1 "$dir" --check-config --config "$file" || return 0
	if [ -s "$tmp/out" ]; then
		fail "$file: printed on stdout: $(cat "$tmp/out")"
		return
	fi
	if ! diff -u "$expect" <(head -n -1 "$tmp/err") >"$tmp/diff"; then
		fail "$file: messages differ from $base.expect"
		cat "$tmp/diff" >&2
		return
	fi
	if [ "$(tail -n 1 "$tmp/err")" != "$file: $count error$([ "$count" -eq 1 ] || echo s)" ]; then
		fail "$file: last line is '$(tail -n 1 "$tmp/err")'"
		return
	fi
	pass "$file: $count error(s) as expected"
}

n=0
for f in "$fixtures"/bad/*.yaml; do
	check_broken "$fixtures/bad" "$(basename "$f")"
	n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "only $n broken fixtures found in $fixtures/bad"

# Good fixtures: exit 0, one line on stdout, nothing on stderr.
for f in "$fixtures"/good/*.yaml; do
	name=$(basename "$f")
	if run "$name" 0 "$fixtures/good" -t -c "$name"; then
		if grep -q "^$name: configuration OK" "$tmp/out" && [ ! -s "$tmp/err" ]; then
			pass "$name: OK"
		else
			fail "$name: output $(cat "$tmp/out" "$tmp/err")"
		fi
	fi
done

# Credentials for etc/: a demo CA, certificates signed by it, a CRL and
# keytabs, like scripts/run and an operator would make them.

pki=$tmp/pki
mkdir -p "$pki"
(
	cd "$pki"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout ca.key -out ca.crt -days 2 -subj "/CN=tsgate test CA" \
		2>/dev/null
	for name in server default wildcard app other; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$name.key" -out "$name.csr" \
			-subj "/CN=$name.example.com" 2>/dev/null
		openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key \
			-CAcreateserial -days 2 -out "$name.crt" 2>/dev/null
	done
	cat >crl.tmpl <<-'EOF'
		crl_next_update = 2
		crl_number = 1
	EOF
	certtool --generate-crl --load-ca-privkey ca.key \
		--load-ca-certificate ca.crt --template crl.tmpl \
		--outfile ca.crl >/dev/null 2>&1
	for kt in tsgate:tsgate/gw.example.com@EXAMPLE.COM app:app@EXAMPLE.COM; do
		printf 'addent -password -p %s -k 1 -e aes256-cts-hmac-sha1-96\nsecret\nwkt %s.keytab\nquit\n' \
			"${kt#*:}" "${kt%%:*}" | ktutil >/dev/null 2>&1
	done
)
for f in ca.crt server.crt server.key ca.crl tsgate.keytab app.keytab; do
	[ -s "$pki/$f" ] || fail "could not make $f"
done

# etc/tsgate.yaml: its relative run/ paths are relative to the file, so a
# copy next to a run/ directory is checked as scripts/run would run it.

mkdir -p "$tmp/etc/run"
cp "$src/etc/tsgate.yaml" "$tmp/etc/"
cp "$pki/server.crt" "$pki/server.key" "$pki/other.key" "$tmp/etc/run/"
cp "$pki/ca.crt" "$tmp/etc/run/demo-ca.crt"
if run etc/tsgate.yaml 0 / --check-config --config "$tmp/etc/tsgate.yaml"; then
	pass "etc/tsgate.yaml with its run/ files"
fi

# The same file with the wrong key: one error at the key's line and column.
key_line=$(grep -n 'key: run/server.key' "$tmp/etc/tsgate.yaml" | cut -d: -f1)
key_col=$(awk '/key: run\/server.key/ { print index($0, "run/server.key") }' "$tmp/etc/tsgate.yaml")
sed 's|key: run/server.key|key: run/other.key|' "$tmp/etc/tsgate.yaml" >"$tmp/etc/wrong-key.yaml"
if run wrong-key.yaml 1 "$tmp/etc" -t -c wrong-key.yaml; then
	want="wrong-key.yaml:$key_line:$key_col: 'key': 'run/other.key' does not belong to the certificate in 'run/server.crt'"
	if [ "$(head -n 1 "$tmp/err")" = "$want" ] && [ "$(wc -l <"$tmp/err")" -eq 2 ]; then
		pass "a key that does not match: $want"
	else
		fail "wrong key: got $(cat "$tmp/err"), want $want"
	fi
fi

# Without run/ (before scripts/run made it): every missing file is listed.
mkdir -p "$tmp/bare"
cp "$src/etc/tsgate.yaml" "$tmp/bare/"
if run bare 1 "$tmp/bare" -t -c tsgate.yaml &&
	grep -q "^tsgate.yaml:[0-9]*:[0-9]*: 'cert': cannot open 'run/server.crt': No such file or directory$" "$tmp/err" &&
	grep -q "^tsgate.yaml:[0-9]*:[0-9]*: 'key': cannot open 'run/server.key': No such file or directory$" "$tmp/err"; then
	pass "etc/tsgate.yaml without run/: missing cert and key reported"
else
	fail "etc/tsgate.yaml without run/: $(cat "$tmp/err")"
fi

# etc/examples: their /etc/tsgate/ files are made in a temp dir and the
# paths rewritten to it.

mkdir -p "$tmp/examples/files"
(
	cd "$pki"
	cp default.crt default.key wildcard.crt wildcard.key server.crt \
		server.key app.crt app.key tsgate.keytab app.keytab \
		"$tmp/examples/files/"
	cp ca.crt "$tmp/examples/files/clients-ca.crt"
	cp ca.crt "$tmp/examples/files/api-ca.crt"
	cp ca.crt "$tmp/examples/files/gw-ca.crt"
	cp ca.crl "$tmp/examples/files/clients.crl"
)
n=0
for f in "$src"/etc/examples/*.yaml; do
	name=$(basename "$f")
	sed "s|/etc/tsgate/|$tmp/examples/files/|g" "$f" >"$tmp/examples/$name"
	if run "examples/$name" 0 "$tmp/examples" --check-config --config "$name"; then
		pass "etc/examples/$name"
	fi
	n=$((n + 1))
done
[ "$n" -ge 4 ] || fail "only $n examples in etc/examples"

# An unreadable key (as root, checked as nobody): reported at the key.
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
	echo "note: not root or no setpriv; unreadable-key check skipped"
elif ! as_nobody "$tsgate" --version >/dev/null 2>&1; then
	echo "note: nobody cannot run $tsgate; unreadable-key check skipped"
else
	mkdir -p "$tmp/perm"
	cp "$pki/server.crt" "$pki/server.key" "$tmp/perm/"
	printf 'listeners:\n  - name: a\n    listen: "tcp://127.0.0.1:8443"\n    accept: tls\n    tls: {cert: server.crt, key: server.key}\n    routes:\n      - backend: "unix:/x"\n' \
		>"$tmp/perm/perm.yaml"
	chmod 755 "$tmp" "$tmp/perm"
	chmod 644 "$tmp/perm/perm.yaml" "$tmp/perm/server.crt"
	chmod 600 "$tmp/perm/server.key"
	rc=0
	(cd "$tmp/perm" && as_nobody "$tsgate" -t -c perm.yaml) \
		>"$tmp/out" 2>"$tmp/err" || rc=$?
	want="perm.yaml:5:34: 'key': cannot open 'server.key': Permission denied"
	if [ "$rc" -eq 1 ] && [ "$(head -n 1 "$tmp/err")" = "$want" ]; then
		pass "unreadable key: $want"
	elif grep -q "cannot open the config file: Permission denied" "$tmp/err"; then
		echo "note: nobody cannot reach $tmp; unreadable-key check skipped"
	else
		fail "unreadable key: exit $rc, $(cat "$tmp/err")"
	fi
	chmod 700 "$tmp"
fi

# Running (not checking) a broken config: the errors, exit 1, nothing else.
if run run-broken 1 "$fixtures/bad" --config values.yaml &&
	head -n -1 "$tmp/err" | diff -q - "$fixtures/bad/values.expect" >/dev/null; then
	pass "running a broken config fails with its errors"
else
	fail "running a broken config: $(cat "$tmp/err")"
fi

# A listener, or the metrics endpoint, on a unix path of 120 bytes (more
# than sockaddr_un holds): refused by name at --check-config and at start,
# and no socket file appears, neither at the path nor at the path cut to
# 107 bytes (it used to be cut silently in one of two socket makers).
long=$tmp/long-unix-path
mkdir -p "$long"
long=$long/$(printf 'x%.0s' $(seq 1 $((120 - ${#long} - 1))))
cut=${long:0:107}
[ "${#long}" -eq 120 ] || fail "long unix path is ${#long} bytes, not 120"
too_long="unix socket path is too long (120 bytes, at most 107)"
printf 'listeners:\n  - name: long\n    listen: "unix:%s"\n    accept: plain\n    routes:\n      - backend: "tcp://127.0.0.1:9"\n' \
	"$long" >"$tmp/long-listener.yaml"
printf 'metrics: {listen: "unix:%s"}\nlisteners:\n  - name: a\n    listen: "tcp://127.0.0.1:9"\n    accept: plain\n    routes:\n      - backend: "tcp://127.0.0.1:9"\n' \
	"$long" >"$tmp/long-metrics.yaml"
for what in listener metrics; do
	for mode in --check-config run; do
		args=(--config "$tmp/long-$what.yaml")
		if [ "$mode" = --check-config ]; then
			args+=(--check-config)
		fi
		if run "long unix $what $mode" 1 . "${args[@]}" &&
			grep -qF "$too_long" "$tmp/err" &&
			[ ! -e "$long" ] && [ ! -e "$cut" ]; then
			pass "$what on a 120-byte unix path refused ($mode)"
		else
			fail "$what on a 120-byte unix path ($mode): $(cat "$tmp/err")"
		fi
	done
done

# Running etc/tsgate.yaml as scripts/run does: in the foreground, logging to
# stderr, a TLS front for an echo backend on run/echo.sock; SIGTERM stops
# it with exit 0. The listen port is moved to a free one.

demo=$tmp/demo
mkdir -p "$demo/run"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed "s|tcp://127.0.0.1:8443|tcp://127.0.0.1:$port|" "$src/etc/tsgate.yaml" >"$demo/tsgate.yaml"
(
	cd "$demo/run"
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
	openssl x509 -req -in server.csr -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-CAcreateserial -days 2 -extfile ext -out server.crt 2>/dev/null
	cp "$pki/ca.crt" demo-ca.crt
)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
python3 -c '
import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$demo/run/echo.sock" &
pids+=($!)
wait_for "$DEADLINE" test -S "$demo/run/echo.sock" || true
"$tsgate" --config "$demo/tsgate.yaml" >"$demo/stdout" 2>"$demo/stderr" &
tsgate_pid=$!
pids+=("$tsgate_pid")
up=0
# listening, or gone
listening_or_gone() {
	! kill -0 "$tsgate_pid" 2>/dev/null ||
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}
wait_for "$DEADLINE" listening_or_gone || true
if kill -0 "$tsgate_pid" 2>/dev/null &&
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	up=1
fi
if [ "$up" -eq 0 ] && grep -q 'this build has no daemon' "$demo/stderr"; then
	echo "note: this build has no daemon; running etc/tsgate.yaml not tested"
elif [ "$up" -eq 0 ]; then
	fail "tsgate --config etc/tsgate.yaml did not listen on $port: $(cat "$demo/stderr")"
else
	# stdin stays open until the echo came back (a condition, with a
	# deadline), then closes: no sleep for the reply to arrive in
	coproc sclient {
		timeout "$DEADLINE" openssl s_client -connect "127.0.0.1:$port" \
			-servername localhost -CAfile "$demo/run/demo-ca.crt" \
			-verify_return_error -quiet -no_ign_eof 2>/dev/null
	}
	sclient_pid=$sclient_PID
	printf 'hello through tsgate\n' >&"${sclient[1]}"
	reply=
	IFS= read -r -t "$DEADLINE" reply <&"${sclient[0]}" || true
	eval "exec ${sclient[1]}>&-"
	wait "$sclient_pid" 2>/dev/null || true
	if [ "$reply" = "hello through tsgate" ]; then
		pass "etc/tsgate.yaml serves: TLS on 127.0.0.1 to the echo backend"
	else
		fail "etc/tsgate.yaml: echo through TLS gave '$reply'"
		sed 's/^/    /' "$demo/stderr" >&2
	fi
	kill -TERM "$tsgate_pid"
	rc=0
	wait "$tsgate_pid" || rc=$?
	if [ "$rc" -eq 0 ] && [ ! -s "$demo/stdout" ] && [ -s "$demo/stderr" ]; then
		pass "SIGTERM: exit 0, logs on stderr only"
	else
		fail "after SIGTERM: exit $rc, stdout '$(cat "$demo/stdout")'"
	fi
fi

if [ "$failures" -ne 0 ]; then
	echo "$failures failure(s)" >&2
	exit 1
fi
echo "all passed"
