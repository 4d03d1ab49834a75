#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Framed against raw routes (issue 16): the daemon's CPU for the same
bytes through a raw route and through `length32` routes with 8 MiB and
64 KiB PDUs, and the daemon's peak RSS per connection with 8 MiB PDUs in
flight.

    bench_framed.py BUILDDIR [BASE_BUILDDIR]

Plain TCP in and out (no TLS: the relay's own cost is what differs), one
daemon with three listeners, the C sink of bench_gateway_client as the
backend, a Python client that sends prebuilt buffers. The CPU figure is
the daemon's on-CPU time from /proc/PID/schedstat (nanoseconds; clock
ticks are 10 ms, too coarse for a few hundred ms). The three kinds run in
rounds, each round in a rotated order, and each round gives a ratio to
its own raw run: the median and the spread of those ratios are reported.
With BASE_BUILDDIR (another build, e.g. of the commit before), its daemon
runs in the same rounds, so before and after share the machine's state.

Environment (all optional):
  BENCH_FRAMED_BYTES   bytes per run (default 536870912 = 512 MiB)
  BENCH_FRAMED_ROUNDS  rounds (default 5)
  BENCH_FRAMED_CONNS   connections of the RSS figure (default 8)
  BENCH_FRAMED_JSON    write the raw results there too
Benchmarks are never part of meson test / scripts/test.
"""

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

BUILDDIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-bench")
BASEDIR = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
CLIENT = os.path.join(BUILDDIR, "tests", "bench", "bench_gateway_client")
BYTES = int(os.environ.get("BENCH_FRAMED_BYTES", str(512 << 20)))
ROUNDS = int(os.environ.get("BENCH_FRAMED_ROUNDS", "5"))
CONNS = int(os.environ.get("BENCH_FRAMED_CONNS", "8"))
MIB = 1 << 20
BLOCK = 8 * MIB  # what the client sends per sendall: whole PDUs


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def block_of(pdu):
    """BLOCK bytes of length32 PDUs of `pdu` bytes each (header
    included); raw routes get the same bytes."""
    body = os.urandom(pdu - 4)
    one = struct.pack(">I", pdu - 4) + body
    return one * (BLOCK // pdu)


def on_cpu_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, builddir, workdir, tag, sink_port):
        self.exe = os.path.join(builddir, "gateway", "tsgate")
        self.ports = {k: free_port() for k in ("raw", "l32")}
        cfg = os.path.join(workdir, "framed-%s.yaml" % tag)
        with open(cfg, "w") as f:
            f.write("log: {level: error}\nlisteners:\n")
            for name, port in self.ports.items():
                f.write("  - name: %s\n"
                        "    listen: \"tcp://127.0.0.1:%d\"\n"
                        "    accept: plain\n"
                        "    routes:\n"
                        "      - backend: \"tcp://127.0.0.1:%d\"\n"
                        % (name, port, sink_port))
                if name == "l32":
                    f.write("        framing: length32\n"
                            "        max_pdu: 16MiB\n")
        self.logf = open(os.path.join(workdir, "framed-%s.log" % tag), "ab")
        self.proc = subprocess.Popen([self.exe, "--config", cfg],
                                     stdout=self.logf,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        for port in self.ports.values():
            if not wait_port(port):
                self.stop()
                raise RuntimeError("tsgate (%s) did not listen" % tag)

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.logf.close()


def transfer(port, block, nbytes):
    """Send nbytes (whole blocks) through one connection; wait for the
    end to come back (the sink closes at our end)."""
    c = socket.create_connection(("127.0.0.1", port))
    view = memoryview(block)
    sent = 0
    while sent < nbytes:
        c.sendall(view)
        sent += len(block)
    c.shutdown(socket.SHUT_WR)
    c.settimeout(60)
    while c.recv(4096):
        pass
    c.close()


def cpu_run(daemon, kind, blocks):
    port = daemon.ports["raw" if kind == "raw" else "l32"]
    c0 = on_cpu_ns(daemon.proc.pid)
    t0 = time.monotonic()
    transfer(port, blocks[kind], BYTES)
    wall = time.monotonic() - t0
    c1 = on_cpu_ns(daemon.proc.pid)
    return (c1 - c0) / 1e9 / (BYTES / (1 << 30)), wall


def rss_per_conn(daemon, block8):
    """CONNS connections, each with all but the last byte of an 8 MiB
    PDU sent at once, then the last bytes: (peak RSS growth in KiB) /
    CONNS."""
    port = daemon.ports["l32"]
    # a fresh daemon (the CPU rounds' heap would hide the growth), warmed
    # up by one small PDU
    transfer(port, struct.pack(">I", 4) + b"warm", 8)
    base = vm_hwm_kib(daemon.proc.pid)
    conns = [socket.create_connection(("127.0.0.1", port))
             for _ in range(CONNS)]
    half = len(block8) - 1  # all but the last byte: every PDU in flight
    threads = [threading.Thread(target=c.sendall, args=(block8[:half],))
               for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.sendall(block8[half:])
        c.shutdown(socket.SHUT_WR)
    for c in conns:
        c.settimeout(60)
        while c.recv(4096):
            pass
        c.close()
    return (vm_hwm_kib(daemon.proc.pid) - base) / CONNS


def spread(xs):
    return "%.2f (%.2f-%.2f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    builds = {"new": BUILDDIR}
    if BASEDIR:
        builds["base"] = BASEDIR
    for b in builds.values():
        if not os.access(os.path.join(b, "gateway", "tsgate"), os.X_OK):
            log("bench_framed: no tsgate in %s" % b)
            return 1
    if not os.access(CLIENT, os.X_OK):
        log("bench_framed: %s not built" % CLIENT)
        return 1
    workdir = tempfile.mkdtemp(prefix="tsgate-bench-framed-")
    sink_port = free_port()
    sink = subprocess.Popen([CLIENT, "sink", str(sink_port)],
                            stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    blocks = {"raw": block_of(8 * MIB), "8MiB": block_of(8 * MIB),
              "64KiB": block_of(64 * 1024)}
    kinds = ["raw", "8MiB", "64KiB"]
    res = {tag: {k: [] for k in kinds} for tag in builds}
    rss = {}
    daemons = {}
    try:
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("sink did not start")
        for tag, b in builds.items():
            daemons[tag] = Daemon(b, workdir, tag, sink_port)
        order = [(tag, k) for tag in builds for k in kinds]
        for r in range(ROUNDS):
            shift = r % len(order)
            for tag, kind in order[shift:] + order[:shift]:
                cpu, wall = cpu_run(daemons[tag], kind, blocks)
                res[tag][kind].append(cpu)
                log("round %d %s %-5s %.3f CPU s/GiB, %.0f MB/s" %
                    (r, tag, kind, cpu, BYTES / wall / 1e6))
        for tag, b in builds.items():
            daemons[tag].stop()
            daemons[tag] = Daemon(b, workdir, tag + "-rss", sink_port)
            rss[tag] = rss_per_conn(daemons[tag], blocks["8MiB"])
    finally:
        for d in daemons.values():
            d.stop()
        sink.terminate()
        sink.wait(5)

    print("\nframed vs raw, %d MiB per run, %d rounds (daemon CPU s/GiB; "
          "ratio to the same round's raw run: median (min-max))" %
          (BYTES >> 20, ROUNDS))
    for tag in builds:
        raw = res[tag]["raw"]
        print("%-5s raw %.3f" % (tag, statistics.median(raw)))
        for kind in ("8MiB", "64KiB"):
            ratios = [f / r for f, r in zip(res[tag][kind], raw)]
            print("%-5s length32 %-5s %.3f  ratio %s" %
                  (tag, kind, statistics.median(res[tag][kind]),
                   spread(ratios)))
        print("%-5s peak RSS per connection, %d connections with 8 MiB "
              "PDUs: %.0f KiB" % (tag, CONNS, rss[tag]))
    if os.environ.get("BENCH_FRAMED_JSON"):
        with open(os.environ["BENCH_FRAMED_JSON"], "w") as f:
            json.dump({"cpu_s_per_gib": res, "rss_kib_per_conn": rss}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
