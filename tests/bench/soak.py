#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak test of the real tsgate daemon (not in CI: it runs for minutes).

Runs waves of mixed traffic against one daemon for DURATION seconds
(default 600) and samples the daemon's RSS and open fd count at the idle
point after every wave (all of the wave's connections logged as ended):

  - TLS tunnels to an echo backend, random sizes 1 KiB..512 KiB, checked
    byte for byte;
  - plain connections with length32 framing (random PDUs, echoed);
  - TLS clients that abort mid-transfer (no close_notify);
  - garbage instead of a TLS handshake, and silent clients dropped by
    handshake_timeout;
  - oversized PDUs (closed by the daemon);
  - a SIGHUP reload every 10 waves.

Pass: RSS growth from the first idle sample after the warm-up (60 s) to the
last one under 5 %, the idle fd count back to its baseline after every
wave, no data error, the daemon alive and exiting 0 on SIGTERM.

Usage: tests/bench/soak.py BUILDDIR [DURATION_SECONDS]
Prints one line per minute and a summary; exits 1 on failure.
"""

import asyncio
import hashlib
import os
import random
import signal
import struct
import sys
import tempfile
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "integration"))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


async def tls_echo(port, ctx, size, abort=False):
    data = os.urandom(size)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    if abort:
        writer.write(data[:size // 2])
        await writer.drain()
        await reader.read(1)
        writer.transport.abort()
        return True
    writer.write(data)
    await writer.drain()
    h = hashlib.sha256()
    n = 0
    while n < size:
        d = await reader.read(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    return n == size and h.digest() == hashlib.sha256(data).digest()


async def plain_pdus(port, count, oversized=False):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if oversized:
        # the daemon closes on the header: our write may meet a reset
        try:
            writer.write(struct.pack(">I", 1 << 20) + b"x" * 100)
            await writer.drain()
            got = await reader.read(10)
        except (ConnectionError, OSError):
            got = b""
        writer.close()
        return got == b""
    pdus = b"".join(struct.pack(">I", n) + os.urandom(n)
                    for n in (random.randint(0, 20000)
                              for _ in range(count)))
    writer.write(pdus)
    await writer.drain()
    writer.write_eof()
    got = await reader.read(-1)
    writer.close()
    return got == pdus


async def garbage(port, silent=False):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if not silent:
            writer.write(b"GET / HTTP/1.0\r\n\r\n" * 20)
            await writer.drain()
        await asyncio.wait_for(reader.read(-1), 10)
    except (ConnectionError, OSError):
        pass
    writer.close()
    return True


async def wave(tls_port, plain_port, ctx):
    jobs = []
    for _ in range(40):
        jobs.append(tls_echo(tls_port, ctx, random.randint(1024, 512 << 10)))
    for _ in range(5):
        jobs.append(tls_echo(tls_port, ctx, 256 << 10, abort=True))
    for _ in range(10):
        jobs.append(plain_pdus(plain_port, random.randint(1, 50)))
    for _ in range(2):
        jobs.append(plain_pdus(plain_port, 0, oversized=True))
    for _ in range(3):
        jobs.append(garbage(tls_port))
    for _ in range(2):
        jobs.append(garbage(tls_port, silent=True))
    res = await asyncio.gather(*jobs, return_exceptions=True)
    bad = [(j.__name__, r) for j, r in zip(jobs, res) if r is not True]
    return len(jobs), bad


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    os.environ["TSGATE_BUILDDIR"] = sys.argv[1]
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
    import gateway_harness as gh
    gh.BUILDDIR = sys.argv[1]
    gh.TSGATE = os.path.join(sys.argv[1], "gateway", "tsgate")

    tmp = tempfile.mkdtemp(prefix="tsgate-soak-")
    backend = None
    g = None
    try:
        certs = gh.Certs(tmp)
        backend = gh.Backend(tmp, mode="echo")
        tls_port, plain_port = gh.free_port(), gh.free_port()
        cfg = ("log: {level: info, format: json}\n"
               "limits: {handshake_timeout: 3s}\n"
               "listeners:\n"
               "  - name: tls\n"
               "    listen: \"tcp://127.0.0.1:%d\"\n"
               "    accept: tls\n"
               "    tls: {cert: %s, key: %s}\n"
               "    routes:\n"
               "      - backend: \"%s\"\n"
               "  - name: framed\n"
               "    listen: \"tcp://127.0.0.1:%d\"\n"
               "    accept: plain\n"
               "    routes:\n"
               "      - backend: \"%s\"\n"
               "        framing: length32\n"
               "        max_pdu: 64KiB\n"
               % (tls_port, certs.server, certs.server_key,
                  backend.address, plain_port, backend.address))
        g = gh.Gateway(tmp, cfg)
        pid = g.proc.pid
        ctx = certs.client_context()
        start = time.monotonic()
        samples = []  # (t, rss KiB, fds)
        fd0 = None
        total_conns = 0
        errors = []
        waves = 0
        last_report = start
        while time.monotonic() - start < duration:
            n, bad = asyncio.run(wave(tls_port, plain_port, ctx))
            waves += 1
            total_conns += n
            errors += bad
            # idle point: every connection of the wave logged as ended
            gh.wait_until(lambda: len(g.conn_lines()) >= total_conns, 30)
            time.sleep(0.2)
            if waves % 10 == 0:
                g.proc.send_signal(signal.SIGHUP)
                time.sleep(0.2)
            t = time.monotonic() - start
            rss, fds = rss_kib(pid), fd_count(pid)
            if fd0 is None:
                fd0 = fds
            samples.append((t, rss, fds))
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                print("t=%4.0fs waves=%d conns=%d rss=%d KiB fds=%d "
                      "errors=%d" % (t, waves, total_conns, rss, fds,
                                     len(errors)), flush=True)
        lines = g.conn_lines()
        warm = [s for s in samples if s[0] >= min(60.0, duration / 4)]
        base, last = warm[0], warm[-1]
        growth = 100.0 * (last[1] - base[1]) / base[1]
        peak = max(s[1] for s in warm)
        fd_values = sorted({s[2] for s in samples})
        ok_lines = sum(1 for l in lines if l.get("result") == "ok")
        alive = g.proc.poll() is None
        code = g.stop()
        g = None
        print("soak: %.0f s, %d waves, %d connections (%d logged ok, %d "
              "errors by design), data errors %d" % (
                  samples[-1][0], waves, total_conns, ok_lines,
                  len(lines) - ok_lines, len(errors)))
        print("soak: RSS %d KiB at %.0f s -> %d KiB at %.0f s (%+.2f %%), "
              "peak %d KiB" % (base[1], base[0], last[1], last[0], growth,
                               peak))
        print("soak: idle fd counts seen %s (baseline %d)" % (fd_values,
                                                               fd0))
        print("soak: daemon alive at the end %s, exit code on SIGTERM %s"
              % (alive, code))
        if errors:
            kinds = {}
            for job, e in errors:
                key = "%s: %r" % (job, e)
                kinds[key] = kinds.get(key, 0) + 1
            for key, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
                print("soak: error x%d %s" % (n, key))
        ok = (growth < 5.0 and fd_values == [fd0] and not errors and
              alive and code == 0)
        print("soak: %s" % ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        if g is not None:
            g.stop()
        if backend is not None:
            backend.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
