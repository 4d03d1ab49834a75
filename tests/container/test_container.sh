#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end test of the container image, with podman/buildah (no Docker
# engine here): build the image from the Dockerfile, check its metadata and
# that it runs as non-root, that without a mounted config it refuses to
# start (exit 1, a message naming the mount path, the health check
# failing: the image has no config of its own), that it is built as
# issue 17 asks (ENTRYPOINT ["tsgate"] + CMD, no VOLUME, OCI labels, only
# runtime files: no compiler, headers, pkg-config files or meson), then
# run tsgate from the image and push a TLS connection through it to a
# backend on the host. Bounded in time; cleans up what it starts (by pid
# / by id).
set -euo pipefail
cd "$(dirname "$0")/../.."

image=localhost/tsgate:test
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

scripts/deps container
for tool in podman buildah debootstrap openssl python3; do
	command -v "$tool" >/dev/null || {
		echo "test_container: $tool missing (scripts/deps container)" >&2
		exit 1
	}
done

tmp=$(mktemp -d /tmp/tsgate-container.XXXXXX)
ctr=
pids=()
# pid and every descendant of it (by parent pid, from ps): a backgrounded
# shell function is a subshell, and buildah runs the command two process
# levels below itself, so killing the pid $! gives is not enough.
tree() {
	local c
	echo "$1"
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		tree "$c"
	done
}
cleanup() {
	local p
	for p in "${pids[@]}"; do
		for q in $(tree "$p"); do
			kill "$q" 2>/dev/null || true
		done
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	[ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

tests/container/base-image.sh

echo "# building the image (build stage runs the unit suite)"
timeout 1500 podman build --isolation=chroot --pull=never --format docker \
	-t "$image" . \
	>"$tmp/build.log" 2>&1 || {
	tail -40 "$tmp/build.log"
	not_ok "podman build"
	exit 1
}
ok "podman build"

inspect() { podman image inspect --format "$1" "$image"; }
check "runs as a non-root USER" test "$(inspect '{{.Config.User}}')" = "tsgate:tsgate"
check "STOPSIGNAL SIGTERM" test "$(inspect '{{.Config.StopSignal}}')" = "SIGTERM"
check "HEALTHCHECK set" grep -q -- --health <<<"$(inspect '{{json .Config.Healthcheck}}')"
volumes=$(inspect '{{json .Config.Volumes}}')
check "no VOLUME (got $volumes)" grep -Eqx 'null|\{\}|' <<<"$volumes"
check "EXPOSE 8443" grep -q '8443/tcp' <<<"$(inspect '{{json .Config.ExposedPorts}}')"
check "ENTRYPOINT [\"tsgate\"]" test "$(inspect '{{json .Config.Entrypoint}}')" = '["tsgate"]'
check "CMD [\"--config\", \"/etc/tsgate/tsgate.yaml\"]" \
	test "$(inspect '{{json .Config.Cmd}}')" = '["--config","/etc/tsgate/tsgate.yaml"]'
version=$(sed -n "s/^[[:space:]]*version: '\([^']*\)'.*/\1/p" meson.build | head -n 1)
label() { inspect "{{index .Config.Labels \"org.opencontainers.image.$1\"}}"; }
check "OCI label version = meson's $version" test "$(label version)" = "$version"
check "OCI label licenses = MIT" test "$(label licenses)" = MIT
for l in title description vendor base.name; do
	check "OCI label $l set" test -n "$(label "$l")"
done

ctr=$(buildah from --pull-never "$image")
run_in() { buildah run --isolation chroot "$@"; }

# only runtime files in the final image
for tool in gcc cc clang ld as meson ninja pkg-config make; do
	check "no $tool in the image" run_in "$ctr" -- sh -c "! command -v $tool"
done
check "no C headers in the image" run_in "$ctr" -- \
	sh -c 'test -z "$(find / -xdev -name "*.h" -print -quit)"'
check "no pkg-config files in the image" run_in "$ctr" -- \
	sh -c 'test -z "$(find / -xdev -name "*.pc" -print -quit)"'
check "no development links of our libraries (libtsocket.so)" run_in "$ctr" -- \
	sh -c 'test -z "$(find / -xdev \( -name libtsocket.so -o -name "libtstream-*.so" \) -print -quit)"'
check "the runtime libraries are there (libtsocket.so.0)" run_in "$ctr" -- \
	sh -c 'test -n "$(find / -xdev -name "libtsocket.so.0")"'
check "tsgate -vv runs in the image" run_in "$ctr" -- tsgate -vv

uid=$(run_in "$ctr" -- id -u)
check "process uid is not 0 (got $uid)" test "$uid" != 0
check "the image has no config of its own" \
	run_in "$ctr" -- sh -c '! test -e /etc/tsgate/tsgate.yaml'

# Without a config mounted, the ENTRYPOINT and CMD (as the image says them,
# run in the image) exit 1 with a message naming the mount path, and the
# HEALTHCHECK command says unhealthy: a forgotten mount exposes nothing.
mapfile -t entrypoint < <(inspect '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' |
	python3 -c 'import json,sys; e,c=sys.stdin.read().split(" ",1); print("\n".join(json.loads(e)+json.loads(c)))')
mapfile -t healthcmd < <(inspect '{{json .Config.Healthcheck.Test}}' |
	python3 -c 'import json,sys; t=json.load(sys.stdin); print("\n".join(t[1:] if t[0]=="CMD" else ["sh","-c",t[1]]))')
rc=0
timeout 60 buildah run --isolation chroot "$ctr" -- "${entrypoint[@]}" \
	>"$tmp/noconfig.log" 2>&1 || rc=$?
check "without a config the entrypoint exits 1 (got $rc)" test "$rc" = 1
check "... naming the mount path /etc/tsgate/tsgate.yaml" \
	grep -q 'no configuration at /etc/tsgate/tsgate.yaml.*mount it at /etc/tsgate/tsgate.yaml' \
	"$tmp/noconfig.log"
rc=0
timeout 60 buildah run --isolation chroot "$ctr" -- "${healthcmd[@]}" \
	>"$tmp/nohealth.log" 2>&1 || rc=$?
check "without a config the HEALTHCHECK command fails (got $rc)" test "$rc" != 0
check "tsgate --version" run_in "$ctr" -- /usr/bin/tsgate --version

# A TLS connection through tsgate running from the image to a host backend.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$tmp/server.key" -out "$tmp/server.crt" -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	>/dev/null 2>&1
# the image's user (uid 10001) owns its key, readable by nobody else
chmod 0644 "$tmp/server.crt"
chown 10001:10001 "$tmp/server.key"
chmod 0600 "$tmp/server.key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/tsgate.yaml" <<YAML
log: {level: info, format: text}
metrics: {listen: "tcp://127.0.0.1:$mport"}
listeners:
  - name: tls-in
    listen: "tcp://127.0.0.1:$port"
    accept: tls
    tls: {cert: /etc/tsgate/server.crt, key: /etc/tsgate/server.key}
    routes:
      - name: echo
        backend: "tcp://127.0.0.1:$bport"
YAML
chmod 0755 "$tmp"
chmod 0644 "$tmp/tsgate.yaml"

# the backend: echoes one connection's bytes back, upper-cased
python3 - "$bport" >"$tmp/backend.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4)
s.settimeout(120)
c, _ = s.accept()
while True:
    b = c.recv(65536)
    if not b:
        break
    c.sendall(b.upper())
c.close()
PY
pids+=($!)

run_in -v "$tmp:/etc/tsgate:ro" "$ctr" -- /usr/bin/tsgate \
	--config /etc/tsgate/tsgate.yaml >"$tmp/tsgate.log" 2>&1 &
gw=$!
pids+=($gw)

up=0
for _ in $(seq 1 100); do
	if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.1
done
check "tsgate in the image listens" test $up = 1
# the image's HEALTHCHECK command, run in the image against the running daemon
check "HEALTHCHECK command (tsgate --health) answers healthy" \
	run_in -v "$tmp:/etc/tsgate:ro" "$ctr" -- /usr/bin/tsgate --health \
	--config /etc/tsgate/tsgate.yaml

# a real TLS client (Python's ssl, OpenSSL): verify the certificate, send a
# line, read the echo, close
timeout 20 python3 - "$port" "$tmp/server.crt" >"$tmp/out.txt" 2>"$tmp/client.log" <<'PY' || true
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"hello through the sidecar\n")
        got = b""
        while not got.endswith(b"\n"):
            b = s.recv(4096)
            if not b:
                break
            got += b
        sys.stdout.write(got.decode())
PY
check "TLS client → tsgate (image) → host backend, bytes echoed" \
	grep -qx 'HELLO THROUGH THE SIDECAR' "$tmp/out.txt"

# SIGTERM (the image's STOPSIGNAL) to tsgate itself, as a container
# runtime would send it: tsgate must drain, log its stop line and exit,
# and with it the buildah run around it.
ts=
for p in $(tree "$gw"); do
	if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = tsgate ]; then
		ts=$p
	fi
done
check "tsgate's process found under buildah run" test -n "$ts"
[ -z "$ts" ] || kill -TERM "$ts" 2>/dev/null || true
stopped=0
for _ in $(seq 1 100); do
	if ! kill -0 "$gw" 2>/dev/null && { [ -z "$ts" ] || ! kill -0 "$ts" 2>/dev/null; }; then
		stopped=1
		break
	fi
	sleep 0.1
done
check "tsgate stops on SIGTERM" test $stopped = 1
check "tsgate logs its stop" grep -q 'tsgate stopped' "$tmp/tsgate.log"

if [ $fail -ne 0 ]; then
	echo "--- tsgate log"
	cat "$tmp/tsgate.log"
	echo "--- client log"
	cat "$tmp/client.log"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
