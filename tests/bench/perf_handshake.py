#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where a TLS server's CPU time goes per handshake, for tsgate and the
peers side by side (issue 15): sampled by perf, in microseconds.

    tests/bench/perf_handshake.py [BUILDDIR] [N] [VERSIONS] [SERVERS]

For each TLS version (default "1.3 1.2"), kind (full, resumed) and server
(default "tsgate haproxy hitch stunnel") it starts the server in the
benchmark's "resume" mode (bench_servers.py: tickets on, an echo
backend), makes 20 handshakes to warm it, then N (default 2000) with
bench_gateway_client resume (handshake, one byte echoed, close) while
`perf record -g` samples the server's processes. The CPU time per
handshake (utime + stime from /proc) is split by the samples' shares:

- user space by what runs: public-key arithmetic (X25519 and the ECDSA
  signature: hogweed and GMP for GnuTLS, the EC and bignum code of
  libcrypto), hashes and MACs, ciphers, the rest of the crypto library,
  the TLS library, libc, and the server's own code (for tsgate: talloc,
  tevent, tsocket, the tunnels and the daemon);
- the kernel by the system call it was in (from the sample's kernel
  stack), "no system call" for interrupts and soft interrupts taken
  while the server ran.

callgrind_resume.py counts instructions, exactly, but only of tsgate and
not of the kernel; an instruction is no unit of time (callgrind counts a
`rep stosb` memset once per byte). This script measures time, so its
figures move with the machine's load: run it on a quiet machine and read
the split, not the third digit. It needs perf (Debian linux-perf) and
permission to sample other processes (root, or perf_event_paranoid <= 1).
"""

import collections
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_servers import (PKI, Peers, cpu_seconds, free_port,  # noqa: E402
                           is_tsgate, wait_port)

WARMUP = 20

# User-space groups, first match wins: (label, object regex). OpenSSL's
# libcrypto names its exported functions only (its assembly and internal
# functions show as addresses), so it is one group; GnuTLS's crypto is
# split in three.
CRYPTO = "crypto library, all of it"
USER_GROUPS = [
    ("crypto: X25519 and ECDSA (GnuTLS: hogweed, GMP)", r"libhogweed|libgmp"),
    ("crypto: hashes, ciphers (GnuTLS: nettle)", r"libnettle"),
    ("crypto: OpenSSL libcrypto (all of it)", r"libcrypto"),
    ("TLS library (GnuTLS + libtasn1, libssl)", r"libgnutls|libssl|libtasn1"),
    ("libc (malloc, memcpy, memset, wrappers)", r"libc\.so|ld-linux|vdso"),
    ("the server's own code and its event loop", r""),
]
NO_SYSCALL = "no system call (interrupts, softirq)"
SYSCALL_ENTRY = ("entry_SYSCALL_64_after_hwframe", "do_syscall_64",
                 "x64_sys_call")
SYSCALL_PREFIX = re.compile(r"^(?:__x64_sys_|__do_sys_|__sys_|ksys_)")


def parse_samples(path):
    """perf script output: a Counter of (space, group) per sample."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for block in out.split("\n\n"):
        frames = [ln.split(None, 1) for ln in block.strip().splitlines()]
        frames = [f[1] for f in frames if len(f) == 2]
        if frames:
            counts[classify(frames)] += 1
    return counts


def classify(frames):
    """(space, group) of one sample from its stack, leaf first."""
    leaf = frames[0]
    if "[kernel.kallsyms]" in leaf:
        # the system call: the first kernel frame under its entry (read
        # and write enter as ksys_read/ksys_write, the rest as
        # __x64_sys_NAME)
        kernel = [fr.split(" (")[0].strip() for fr in frames
                  if "[kernel.kallsyms]" in fr]
        if "do_syscall_64" not in kernel:
            return ("kernel", NO_SYSCALL)
        below = [f for f in reversed(kernel) if f not in SYSCALL_ENTRY]
        name = below[0] if below else "do_syscall_64"
        return ("kernel", SYSCALL_PREFIX.sub("", name))
    dso = leaf.rpartition(" (")[2]
    for label, dso_re in USER_GROUPS:
        if re.search(dso_re, dso):
            return ("user", label)
    raise AssertionError("no group for %r" % leaf)


# (version, kind): the server's mode (bench_servers.py) and the client's
# kind. "plain" is the full-handshake figure of bench_gateway.py (TLS 1.3
# only, no tickets); "full" and "resumed" the resumption figure's (tickets
# on: a full handshake also sends them).
CASES = {("1.3", "plain"): ("plain", "full"),
         ("1.3", "full"): ("resume", "full"),
         ("1.3", "resumed"): ("resume", "resumed"),
         ("1.2", "full"): ("resume", "full"),
         ("1.2", "resumed"): ("resume", "resumed")}


def samples(data, pids, work):
    """perf record -g of pids into data while work() runs. perf starts
    with sampling off and is told to begin through a fifo, which it
    acknowledges: a short run is not over before perf has attached."""
    d = os.path.dirname(data)
    ctl, ack = os.path.join(d, "perf.ctl"), os.path.join(d, "perf.ack")
    for f in (ctl, ack):
        if os.path.exists(f):
            os.unlink(f)
        os.mkfifo(f)
    rec = subprocess.Popen(["perf", "record", "-q", "-g", "-D", "-1",
                            "--control", "fifo:%s,%s" % (ctl, ack),
                            "-o", data, "-p", ",".join(map(str, pids))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with open(ctl, "w") as c, open(ack) as a:
            c.write("enable\n")
            c.flush()
            if not a.readline().startswith("ack"):
                raise RuntimeError("perf record did not start sampling")
            work()
    finally:
        rec.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=120)
    if rec.returncode not in (0, -signal.SIGINT):
        raise RuntimeError("perf record: %s" % err.decode()[-2000:])


def profile(peers, name, version, kind, n, client, echo_port, tmp):
    """CPU µs per handshake (a run of n without perf, which costs the
    sampled process time of its own), and the samples of a second run."""
    mode, client_kind = CASES[(version, kind)]
    server = peers.start(name, mode, echo_port)
    data = os.path.join(tmp, "perf-%s-%s-%s.data" % (name, version, kind))
    argv = [client, "resume", str(server.port)]

    def handshakes(count):
        subprocess.run(argv + [str(count), version, client_kind],
                       check=True, capture_output=True, timeout=1200)

    try:
        handshakes(WARMUP)
        pids = server.pids()
        before = cpu_seconds(pids)
        handshakes(n)
        cpu = cpu_seconds(pids) - before
        samples(data, pids, lambda: handshakes(n))
    finally:
        server.stop()
    return cpu / n * 1e6, parse_samples(data)


def print_table(results, cols, version, kind):
    print("\n### TLS %s %s: CPU µs per handshake\n" % (version, kind))
    print("| | %s |\n|---|%s" % (" | ".join(cols), "---|" * len(cols)))
    shares = {}
    for s in cols:
        us, counts = results[(s, version, kind)]
        total = sum(counts.values()) or 1
        shares[s] = {k: us * v / total for k, v in counts.items()}

    def row(label, vals):
        print("| %s | %s |" % (label, " | ".join("%.0f" % v for v in vals)))

    def part(pred):
        return [sum(v for k, v in shares[s].items() if pred(k))
                for s in cols]

    row("**all**", [results[(s, version, kind)][0] for s in cols])
    for space in ("user", "kernel"):
        row("**%s**" % space, part(lambda k: k[0] == space))
        if space == "user":
            row(CRYPTO, part(lambda k: k[1].startswith("crypto")))
        keys = sorted({k for s in cols for k in shares[s] if k[0] == space},
                      key=lambda k: -max(shares[s].get(k, 0) for s in cols))
        for k in keys:
            vals = [shares[s].get(k, 0) for s in cols]
            if max(vals) >= 1:
                row(k[1] if space == "user" else "kernel: " + k[1], vals)


def main():
    builddir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    versions = (sys.argv[3] if len(sys.argv) > 3 else "1.3 1.2").split()
    servers = (sys.argv[4] if len(sys.argv) > 4 else
               "tsgate haproxy hitch stunnel").split()
    tsgate = os.path.join(builddir, "gateway", "tsgate")
    client = os.path.join(builddir, "tests", "bench", "bench_gateway_client")
    cases = [c for c in CASES if c[0] in versions]
    results = {}
    with tempfile.TemporaryDirectory(prefix="tsgate-perf-hs-") as tmp:
        peers = Peers({s: tsgate for s in servers if is_tsgate(s)},
                      PKI(tmp), tmp)
        echo_port = free_port()
        echo = subprocess.Popen([client, "echo", str(echo_port)],
                                stdout=subprocess.DEVNULL)
        try:
            if not wait_port(echo_port):
                raise RuntimeError("echo backend did not listen")
            for version, kind in cases:
                for s in servers:
                    results[(s, version, kind)] = profile(
                        peers, s, version, kind, n, client, echo_port, tmp)
        finally:
            echo.terminate()
            echo.wait()
    print("%d handshakes (handshake, one byte echoed, close) of each kind "
          "per server, twice: the CPU time (/proc) of the first run, split "
          "by the shares of perf record -g samples of the second. TLS 1.3 "
          "plain: the full-handshake figure's servers (TLS 1.3 only, no "
          "tickets); the other kinds: resumption on (a full handshake "
          "also sends tickets)." % n)
    for version, kind in cases:
        print_table(results, servers, version, kind)


if __name__ == "__main__":
    main()
