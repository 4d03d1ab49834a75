#!/usr/bin/env bash
# The README's tour, run as a user would: every YAML block of README.md
# passes `tsgate --check-config` with the files it names (made here), and
# the first step is done for real: ./scripts/run, the README's openssl
# s_client command through it, then a reload (SIGHUP) and a drain (SIGTERM)
# of that tsgate by pid. Uses port 8443 (etc/tsgate.yaml): not parallel.
set -euo pipefail

src=${TSGATE_SRCDIR:?}
build=${TSGATE_BUILDDIR:?}
tsgate=$build/gateway/tsgate
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }

tmp=$(mktemp -d /tmp/tsgate-readme.XXXXXX)
run_pid=
cleanup() {
	if [ -n "$run_pid" ]; then
		kill -TERM "$run_pid" 2>/dev/null || true
		wait "$run_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# A krb5.conf of our own: nothing may look for a KDC anywhere.
cat >"$tmp/krb5.conf" <<'K'
[libdefaults]
	default_realm = EXAMPLE.COM
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	dns_canonicalize_hostname = false
K
export KRB5_CONFIG=$tmp/krb5.conf

# The files the README's blocks name.
mkfiles() {
	local d=$1
	(
		cd "$d"
		umask 077
		ca() {
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
				-nodes -keyout "$1.key" -out "$1.crt" -days 2 \
				-subj "/CN=$1" 2>/dev/null
		}
		leaf() { # leaf NAME CA CN SAN
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
			printf 'subjectAltName=%s\n' "$4" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" \
				-CAcreateserial -out "$1.crt" -days 2 \
				-extfile "$1.ext" 2>/dev/null
			rm -f "$1.csr" "$1.ext"
		}
		ca server-ca
		ca clients-ca
		leaf server server-ca api.example.com DNS:api.example.com
		leaf app clients-ca app-1 DNS:app-1.apps.example.com
		for kt in "tsgate.keytab host/gw.example.com@EXAMPLE.COM" \
			"app.keytab app@EXAMPLE.COM"; do
			set -- $kt
			printf 'addent -password -p %s -k 1 -e aes256-cts-hmac-sha1-96\nsecret\nwkt %s\nquit\n' \
				"$2" "$1" | ktutil >/dev/null 2>&1
		done
		chmod 0644 ./*.crt
		chmod 0600 ./*.key ./*.keytab
	)
}

# 1. every YAML block of the README validates
python3 - "$src/README.md" "$tmp" <<'PY'
import re, sys, os
text = open(sys.argv[1]).read()
blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
for i, b in enumerate(blocks):
    d = os.path.join(sys.argv[2], "block%d" % i)
    os.makedirs(d)
    open(os.path.join(d, "tsgate.yaml"), "w").write(b)
print(len(blocks))
PY
nblocks=$(ls -d "$tmp"/block* | wc -l)
[ "$nblocks" -ge 4 ] && ok "README has $nblocks YAML blocks" || not_ok "README YAML blocks: $nblocks"
for d in "$tmp"/block*; do
	mkfiles "$d"
	if out=$("$tsgate" --check-config --config "$d/tsgate.yaml" 2>&1); then
		ok "README block $(basename "$d") passes --check-config"
	else
		not_ok "README block $(basename "$d"): $out"
	fi
done

# 2. ./scripts/run and the README's openssl s_client command
cd "$src"
TSGATE_BUILD_DIR=$build setsid scripts/run >"$tmp/run.log" 2>&1 &
run_pid=$!
up=0
for _ in $(seq 1 300); do
	if [ -s etc/run/demo-ca.crt ] &&
		python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8443), 1)' 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.1
done
[ $up = 1 ] && ok "scripts/run serves 127.0.0.1:8443" || not_ok "scripts/run did not come up"

echo "hello from the README" |
	timeout 10 openssl s_client -connect 127.0.0.1:8443 -CAfile etc/run/demo-ca.crt \
		-quiet -verify_return_error >"$tmp/echo.out" 2>"$tmp/s_client.err" || true
grep -qx "hello from the README" "$tmp/echo.out" &&
	ok "openssl s_client echoes through scripts/run" ||
	not_ok "echo through scripts/run: $(cat "$tmp/echo.out" "$tmp/s_client.err")"

# 3. reload and drain of that tsgate, by its pid (a child of scripts/run)
gw=$(ps -o pid= --ppid "$run_pid" | while read -r p; do
	[ "$(cat /proc/"$p"/comm 2>/dev/null)" = tsgate ] && echo "$p"
done | head -n 1)
if [ -n "$gw" ]; then
	kill -HUP "$gw"
	reloaded=0
	for _ in $(seq 1 100); do
		grep -q "reload" "$tmp/run.log" && reloaded=1 && break
		sleep 0.1
	done
	[ $reloaded = 1 ] && ok "SIGHUP reloads (logged)" || not_ok "no reload line after SIGHUP"
	kill -0 "$gw" 2>/dev/null && ok "tsgate alive after reload" || not_ok "tsgate died on SIGHUP"
	kill -TERM "$gw"
	rc=0
	for _ in $(seq 1 100); do
		kill -0 "$gw" 2>/dev/null || break
		sleep 0.1
	done
	wait "$run_pid" 2>/dev/null || rc=$?
	run_pid=
	[ $rc = 0 ] && ok "SIGTERM drains, scripts/run exits 0" || not_ok "exit status $rc after SIGTERM"
else
	not_ok "no tsgate process under scripts/run"
fi

if [ $fail -ne 0 ]; then
	echo "--- scripts/run log"
	cat "$tmp/run.log"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
