#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What balancing costs: tsgate's CPU per connection set-up with a route
to one backend and with a pool of four (round-robin, and
least-connections), measured in interleaved rounds (single, pool, ...)
so that load on the machine hits both alike.

Each connection: connect to a plain listener, send one byte, read the
backend's echo, close. The figure is the daemon's user+system CPU
(/proc/PID/stat) over N connections, in microseconds per connection;
the client and the backends (threads of this script) are not counted.

Usage: tests/bench/bench_pool.py BUILDDIR [N] [ROUNDS]
(scripts/bench runs it; BENCH_POOL=0 skips it there, BENCH_POOL_CONNS
and BENCH_RUNS set N and ROUNDS.)

BENCH_POOL_CALLGRIND=1 also counts the instructions the daemon runs per
connection under callgrind (the difference between a run of 2N and one of
N connections, so start-up cancels out): exact where CPU time on a busy
machine is not.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Echo:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                d = c.recv(16)
                if d:
                    c.sendall(d)
            except OSError:
                pass
            c.close()


def config(port, backends, balance):
    lines = ["log: {level: error}",
             "limits: {idle_timeout: 60s}",
             "listeners:",
             "  - name: bench",
             "    listen: \"tcp://127.0.0.1:%d\"" % port,
             "    accept: plain",
             "    tcp_keepalive: false",
             "    routes:",
             "      - name: r",
             "        tcp_keepalive: false",
             "        balance: %s" % balance,
             "        backend:"]
    lines += ["          - \"tcp://127.0.0.1:%d\"" % b.port for b in backends]
    return "\n".join(lines) + "\n"


def run_round(tsgate, tmp, port, backends, balance, n, wrapper=()):
    path = os.path.join(tmp, "pool.yaml")
    with open(path, "w") as f:
        f.write(config(port, backends, balance))
    p = subprocess.Popen(list(wrapper) + [tsgate, "--config", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        start = cpu_seconds(p.pid)
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", port), 5)
            c.sendall(b"x")
            if c.recv(1) != b"x":
                raise RuntimeError("no echo through tsgate")
            c.close()
        return (cpu_seconds(p.pid) - start) * 1e6 / n
    finally:
        p.terminate()
        p.wait(10)


def callgrind_ir(tsgate, tmp, backends, balance, n):
    """Instructions the daemon ran for n connections (start-up included)."""
    out = os.path.join(tmp, "callgrind.out")
    run_round(tsgate, tmp, free_port(), backends, balance, n,
              wrapper=["valgrind", "--tool=callgrind",
                       "--callgrind-out-file=" + out])
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + out)


def main():
    builddir = sys.argv[1] if len(sys.argv) > 1 else "build-bench"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    tsgate = os.path.join(builddir, "gateway", "tsgate")
    backends = [Echo() for _ in range(4)]
    kinds = [("single", backends[:1], "round-robin"),
             ("pool of 4, round-robin", backends, "round-robin"),
             ("pool of 4, least-connections", backends,
              "least-connections")]
    results = {k[0]: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="tsgate-bench-pool-") as tmp:
        for r in range(rounds):
            for name, bs, balance in kinds:
                us = run_round(tsgate, tmp, free_port(), bs, balance, n)
                results[name].append(us)
            print("round %d: %s" % (r + 1, ", ".join(
                "%s %.1f" % (k, results[k][-1]) for k in results)),
                flush=True)
    print()
    print("| connection set-up, tsgate CPU µs per connection "
          "(%d connections x %d rounds) | median | min-max | "
          "ratio to single (median of rounds) |" % (n, rounds))
    print("|---|---|---|---|")
    single = results["single"]
    for name in results:
        xs = results[name]
        ratios = [x / s for x, s in zip(xs, single)]
        print("| %s | %.1f | %.1f-%.1f | %.3f |" % (
            name, statistics.median(xs), min(xs), max(xs),
            statistics.median(ratios)))
    if os.environ.get("BENCH_POOL_CALLGRIND") == "1":
        m = min(n, 500)
        print()
        print("| connection set-up under callgrind (%d connections) | "
              "instructions per connection | ratio to single |" % m)
        print("|---|---|---|")
        base = None
        with tempfile.TemporaryDirectory(prefix="tsgate-bench-pool-") as tmp:
            for name, bs, balance in kinds:
                ir = (callgrind_ir(tsgate, tmp, bs, balance, 2 * m) -
                      callgrind_ir(tsgate, tmp, bs, balance, m)) / m
                base = base or ir
                print("| %s | %.0f | %.3f |" % (name, ir, ir / base),
                      flush=True)


if __name__ == "__main__":
    main()
