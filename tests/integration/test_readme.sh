#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's tour, run as a user would. The shell blocks the tour marks
# with <!-- tour: NAME --> run as written:
#   server-cert, client-certs, keytab  make the files (keytab: kadmin.local
#                 on a throw-away Kerberos database for EXAMPLE.COM)
#   every YAML block passes `tsgate --check-config` with those files;
#   step 1 for real: its YAML (ports made free, the metrics line of step 5
#                 added), an echo backend, the operate block of step 5
#                 (start, --health until healthy, SIGHUP, SIGTERM) and the
#                 connect-own openssl s_client command through it;
#   ./scripts/run and the connect-demo command, then a reload (SIGHUP) and
#                 a drain (SIGTERM) of that tsgate by pid;
#   build         meson setup/compile/install on a copy of the sources,
#                 into a DESTDIR, and the installed tsgate runs.
# Uses port 8443 (etc/tsgate.yaml, scripts/run): not parallel.
set -euo pipefail

src=${TSGATE_SRCDIR:?}
build=${TSGATE_BUILDDIR:?}
tsgate=$build/gateway/tsgate
# shellcheck source=../common/wait.sh
. "$src/tests/common/wait.sh"
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }

tmp=$(mktemp -d /tmp/tsgate-readme.XXXXXX)
pids=()
run_pid=
cleanup() {
	local p
	for p in "${pids[@]}" $run_pid; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# tour NAME: the shell block after <!-- tour: NAME --> in README.md
tour() {
	python3 - "$src/README.md" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- tour: %s -->\n```sh\n(.*?)```" % re.escape(sys.argv[2]),
              text, re.S)
if not m:
    sys.exit("README.md has no tour block '%s'" % sys.argv[2])
print(m.group(1), end="")
PY
}
# run_tour NAME DIR: run the block in DIR with bash -e, log kept
run_tour() {
	local code
	code=$(tour "$1") || { not_ok "README block '$1' missing"; return 1; }
	if (cd "$2" && bash -euo pipefail -c "$code") >"$tmp/$1.log" 2>&1; then
		ok "README block '$1' runs"
	else
		not_ok "README block '$1' failed: $(tail -5 "$tmp/$1.log")"
		return 1
	fi
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A krb5.conf and a Kerberos database of our own (realm EXAMPLE.COM, no
# KDC needed: kadmin.local works on the database): nothing may look for a
# KDC anywhere.
mkdir "$tmp/kdb"
cat >"$tmp/krb5.conf" <<'K'
[libdefaults]
	default_realm = EXAMPLE.COM
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	dns_canonicalize_hostname = false
K
cat >"$tmp/kdc.conf" <<K
[realms]
	EXAMPLE.COM = {
		database_name = $tmp/kdb/principal
		key_stash_file = $tmp/kdb/stash
		acl_file = $tmp/kdb/kadm5.acl
	}
K
export KRB5_CONFIG=$tmp/krb5.conf KRB5_KDC_PROFILE=$tmp/kdc.conf
kdb5_util create -s -r EXAMPLE.COM -P "throw-away-$$" >"$tmp/kdb.log" 2>&1 || {
	cat "$tmp/kdb.log"
	not_ok "kdb5_util create (krb5-kdc, scripts/deps test)"
	exit 1
}

# 1. the files of the tour, made by its own commands
files=$tmp/files
mkdir "$files"
for b in server-cert client-certs keytab; do
	run_tour "$b" "$files" || true
done
# what the tour leaves to the reader (step 4): the remote's CA, a client
# keytab
(
	cd "$files"
	umask 077
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout server-ca.key -out server-ca.crt -days 2 \
		-subj /CN=server-ca 2>/dev/null
	kadmin.local -q "addprinc -randkey app@EXAMPLE.COM" >/dev/null 2>&1
	kadmin.local -q "ktadd -k app.keytab app@EXAMPLE.COM" >/dev/null 2>&1
)
key_modes=$(cd "$files" && stat -c '%n %a' ./*.key ./*.keytab | tr '\n' ' ')
if grep -Eq '[0-7][0-7][1-7] ' <<<"$key_modes "; then
	not_ok "the tour's keys are readable by others: $key_modes"
else
	ok "the tour's keys and keytabs are private ($key_modes)"
fi

# 2. every YAML block of the README validates with those files
python3 - "$src/README.md" "$tmp" <<'PY'
import re, sys, os
text = open(sys.argv[1]).read()
for i, b in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
    d = os.path.join(sys.argv[2], "block%d" % i)
    os.makedirs(d)
    open(os.path.join(d, "tsgate.yaml"), "w").write(b)
PY
nblocks=$(ls -d "$tmp"/block* | wc -l)
[ "$nblocks" -ge 4 ] && ok "README has $nblocks YAML blocks" || not_ok "README YAML blocks: $nblocks"
for d in "$tmp"/block*; do
	cp -p "$files"/* "$d"/
	if out=$("$tsgate" --check-config --config "$d/tsgate.yaml" 2>&1); then
		ok "README block $(basename "$d") passes --check-config"
	else
		not_ok "README block $(basename "$d"): $out"
	fi
done

# 3. step 1 for real, operated as step 5 says: the same file with free
# ports and step 5's metrics line, the README's commands with the built
# binary and those ports
p_tls=$(free_port)
p_backend=$(free_port)
p_metrics=$(free_port)
step=$tmp/step1
mkdir "$step"
cp -p "$files"/server.crt "$files"/server.key "$step"/
metrics=$(grep -o 'metrics: {listen: "tcp://127.0.0.1:9100"}' "$src/README.md" | head -n 1)
[ -n "$metrics" ] || not_ok "README step 5 has no metrics line"
{
	sed -e "s/:8443\"/:$p_tls\"/" -e "s/:8080\"/:$p_backend\"/" \
		-e 's|tcp://0\.0\.0\.0:|tcp://127.0.0.1:|' "$tmp/block0/tsgate.yaml"
	printf '%s\n' "${metrics/9100/$p_metrics}"
} >"$step/tsgate.yaml"
python3 - "$p_backend" >"$tmp/backend.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4)
s.settimeout(120)
while True:
    c, _ = s.accept()
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
PY
pids+=($!)
localize() { # the README's command with our binary and ports
	sed -e "s|build/gateway/tsgate|$tsgate|g" -e "s/:8443 /:$p_tls /g" <<<"$1"
}
mapfile -t op < <(tour operate | sed 's/ *#.*$//' | grep -v '^$')
if [ ${#op[@]} -ne 4 ]; then
	not_ok "README operate block: expected 4 commands, got ${#op[@]}"
else
	cd "$step"
	pid=
	eval "$(localize "${op[0]}")" 2>"$tmp/step1.log"
	pids+=("$pid")
	if wait_for "$DEADLINE" eval "$(localize "${op[1]}") >/dev/null 2>&1"; then
		ok "step 5: '${op[1]}' says healthy"
	else
		not_ok "step 5: --health never succeeded: $(cat "$tmp/step1.log")"
	fi
	connect=$(localize "$(tour connect-own)")
	# s_client -quiet runs on after its stdin ends: stopped once the
	# echo came back (or at the deadline)
	echo "hello through step 1" |
		timeout "$DEADLINE" bash -c "$connect -verify_return_error" \
			>"$tmp/own.out" 2>"$tmp/own.err" &
	sc=$!
	wait_for "$DEADLINE" grep -qx "hello through step 1" "$tmp/own.out" || true
	kill "$sc" 2>/dev/null || true
	wait "$sc" 2>/dev/null || true
	grep -qx "hello through step 1" "$tmp/own.out" &&
		ok "step 1: the README's s_client command echoes through tsgate" ||
		not_ok "step 1 echo: $(cat "$tmp/own.out" "$tmp/own.err")"
	eval "$(localize "${op[2]}")"
	wait_for "$DEADLINE" grep -q "reload" "$tmp/step1.log" &&
		ok "step 5: SIGHUP reloads (logged)" ||
		not_ok "step 5: no reload line after SIGHUP"
	eval "$(localize "${op[3]}")"
	rc=0
	wait "$pid" || rc=$?
	[ $rc = 0 ] && ok "step 5: SIGTERM drains, exit 0" ||
		not_ok "step 5: exit status $rc after SIGTERM"
	cd "$src"
fi

# 4. ./scripts/run and the README's openssl s_client command
cd "$src"
# scripts/run's port is fixed: a program that holds it already (another
# run of this test) would answer for a tsgate that could not bind it
holder=$(ss -Hltnp 'sport = :8443' 2>/dev/null || true)
[ -z "$holder" ] || not_ok "127.0.0.1:8443 is taken before scripts/run: $holder"
TSGATE_BUILD_DIR=$build setsid scripts/run >"$tmp/run.log" 2>&1 &
run_pid=$!
run_gw() { # the tsgate of scripts/run
	pgrep -P "$run_pid" -x tsgate | head -n 1
}
demo_up() { # that tsgate listens on 8443 and accepts
	local gw
	gw=$(run_gw) && [ -n "$gw" ] &&
		ss -Hltnp 'sport = :8443' | grep -q "pid=$gw," &&
		[ -s etc/run/demo-ca.crt ] &&
		python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8443), 1)' 2>/dev/null
}
run_built() { # scripts/run builds first, then says it starts tsgate
	grep -q '^tsgate: starting' "$tmp/run.log" || ! kill -0 "$run_pid" 2>/dev/null
}
# the build has nothing to do after meson test's own, unless a source
# changed since (then it compiles, minutes under load): its own deadline
wait_for 600 run_built || true
wait_for "$DEADLINE" demo_up && ok "scripts/run serves 127.0.0.1:8443" || not_ok "scripts/run did not come up"

echo "hello from the README" |
	timeout "$DEADLINE" bash -c "$(tour connect-demo) -verify_return_error" \
		>"$tmp/echo.out" 2>"$tmp/s_client.err" &
sc=$!
wait_for "$DEADLINE" grep -qx "hello from the README" "$tmp/echo.out" || true
kill "$sc" 2>/dev/null || true
wait "$sc" 2>/dev/null || true
grep -qx "hello from the README" "$tmp/echo.out" &&
	ok "openssl s_client echoes through scripts/run" ||
	not_ok "echo through scripts/run: $(cat "$tmp/echo.out" "$tmp/s_client.err")"

# reload and drain of that tsgate, by its pid (a child of scripts/run)
gw=$(run_gw || true)
if [ -n "$gw" ]; then
	kill -HUP "$gw"
	wait_for "$DEADLINE" grep -q "reload" "$tmp/run.log" &&
		ok "SIGHUP reloads (logged)" || not_ok "no reload line after SIGHUP"
	kill -0 "$gw" 2>/dev/null && ok "tsgate alive after reload" || not_ok "tsgate died on SIGHUP"
	kill -TERM "$gw"
	rc=0
	wait "$run_pid" 2>/dev/null || rc=$?
	run_pid=
	[ $rc = 0 ] && ok "SIGTERM drains, scripts/run exits 0" || not_ok "exit status $rc after SIGTERM"
else
	not_ok "no tsgate process under scripts/run"
fi

# 5. the plain meson path on a copy of the sources, into a DESTDIR
copy=$tmp/src
mkdir "$copy"
if [ -d "$src/.git" ] || [ -f "$src/.git" ]; then
	git -C "$src" ls-files -z | (cd "$src" && xargs -0 cp --parents -t "$copy")
else
	(cd "$src" && tar --exclude='./build*' --exclude=./etc/run -cf - .) |
		tar -C "$copy" -xf -
fi
if DESTDIR=$tmp/dest run_tour build "$copy"; then
	inst=$(find "$tmp/dest" -path '*/bin/tsgate' | head -n 1)
	libdir=$(dirname "$(find "$tmp/dest" -name 'libtsocket.so.0' | head -n 1)")
	v=$(LD_LIBRARY_PATH=$libdir "$inst" --version 2>&1 || true)
	[[ "$v" == "tsgate "* ]] && ok "the installed tsgate runs: $v" ||
		not_ok "installed tsgate: $v"
	[ -n "$(find "$tmp/dest" -name tsgate.8)" ] &&
		ok "the man pages are installed" || not_ok "no tsgate.8 installed"
fi

if [ $fail -ne 0 ]; then
	echo "--- scripts/run log"
	cat "$tmp/run.log"
	echo "--- step 1 log"
	cat "$tmp/step1.log" 2>/dev/null || true
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
