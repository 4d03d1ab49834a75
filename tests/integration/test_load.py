#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Load test of the real tsgate daemon: N concurrent TLS tunnels (1,000 by
default) through one TLS listener to an echo backend, each moving SIZE
bytes (1 MiB by default) up and the same bytes back, every byte checked
end to end (SHA-256 of what was sent against what came back): zero lost,
zero corrupted, one "ok" log line per tunnel with the byte counts.

All tunnels complete their TLS handshake first and wait at a barrier, so
the transfers really run concurrently. The client and the echo backend
are Python asyncio (client: ssl over asyncio streams); the backend runs
in a child process so it does not share the client's core.

Scale: TSGATE_LOAD_CONNS and TSGATE_LOAD_BYTES override the defaults
(tests/integration/meson.build lowers them for sanitizer builds, where the
daemon is several times slower); TSGATE_LOAD_TIMEOUT bounds the whole run
(seconds, default 240).
"""

import asyncio
import hashlib
import os
import resource
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

CONNS = int(os.environ.get("TSGATE_LOAD_CONNS", "1000"))
SIZE = int(os.environ.get("TSGATE_LOAD_BYTES", str(1 << 20)))
TIMEOUT = float(os.environ.get("TSGATE_LOAD_TIMEOUT", "240"))
CHUNK = 65536


def raise_nofile(want):
    """Raise the soft fd limit towards want; returns what is granted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        want = hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft if soft != resource.RLIM_INFINITY else want
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def echo_server_main(path):
    """Child process: an asyncio echo server on a unix path."""
    async def serve(reader, writer):
        try:
            while True:
                d = await reader.read(CHUNK)
                if not d:
                    break
                writer.write(d)
                await writer.drain()
            writer.write_eof()
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def main():
        srv = await asyncio.start_unix_server(serve, path, backlog=4096)
        print("ready", flush=True)
        async with srv:
            await srv.serve_forever()

    raise_nofile(4096)
    asyncio.run(main())


def payload(block, i):
    """Connection i's bytes: a distinct window of a random block."""
    off = (i * 7919) % (len(block) - SIZE + 1)
    return block[off:off + SIZE]


async def one_tunnel(i, port, ctx, block, connect_sem, barrier, results):
    data = payload(block, i)
    async with connect_sem:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost",
            limit=1 << 20)
    await barrier.wait()

    async def send():
        for off in range(0, len(data), CHUNK):
            writer.write(data[off:off + CHUNK])
            await writer.drain()
        # TLS has no half-close in asyncio: the echo tells us when to stop

    async def recv():
        h = hashlib.sha256()
        n = 0
        while n < len(data):
            d = await reader.read(CHUNK)
            if not d:
                break
            h.update(d)
            n += len(d)
        return n, h.digest()

    st = asyncio.create_task(send())
    n, digest = await recv()
    await st
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
    results[i] = (n, digest == hashlib.sha256(data).digest())


class Barrier:
    """asyncio.Barrier is 3.11+; this one works on 3.9 too."""

    def __init__(self, n):
        self.n = n
        self.event = asyncio.Event()

    async def wait(self):
        self.n -= 1
        if self.n <= 0:
            self.event.set()
        await self.event.wait()


async def run_load(port, ctx, block):
    results = [None] * CONNS
    sem = asyncio.Semaphore(64)
    barrier = Barrier(CONNS)
    tasks = [asyncio.create_task(
        one_tunnel(i, port, ctx, block, sem, barrier, results))
        for i in range(CONNS)]
    done, pending = await asyncio.wait(tasks, timeout=TIMEOUT)
    for t in pending:
        t.cancel()
    errors = [t.exception() for t in done if t.exception() is not None]
    return results, errors, len(pending)


class Load(gh.GatewayTestCase):

    def test_concurrent_tls_tunnels_checksummed(self):
        global CONNS
        # the daemon (inheriting our limit) needs two fds per tunnel
        granted = raise_nofile(2 * CONNS + 200)
        if granted < 2 * CONNS + 200:
            CONNS = (granted - 200) // 2
            print("RLIMIT_NOFILE hard limit %d: only %d tunnels" % (
                granted, CONNS), file=sys.stderr)
            self.assertGreater(CONNS, 100)
        certs = gh.Certs(self.tmp)
        path = os.path.join(self.tmp, "echo.sock")
        echo = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                 "--echo-server", path],
                                stdout=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        try:
            self.assertEqual(echo.stdout.readline().strip(), b"ready")
            port = gh.free_port()
            g = self.gateway(
                "log: {level: info, format: json}\n"
                "limits: {max_connections: %d, handshake_timeout: 60s}\n"
                "listeners:\n"
                "  - name: load\n"
                "    listen: \"tcp://127.0.0.1:%d\"\n"
                "    accept: tls\n"
                "    tls: {cert: %s, key: %s}\n"
                "    routes:\n"
                "      - name: echo\n"
                "        backend: \"unix:%s\"\n"
                % (CONNS + 100, port, certs.server, certs.server_key, path))
            ctx = certs.client_context()
            block = os.urandom(SIZE + CONNS * 7919 % (1 << 20) + 1)
            t0 = time.monotonic()
            results, errors, pending = asyncio.run(
                run_load(port, ctx, block))
            elapsed = time.monotonic() - t0
            print("%d tunnels x %d bytes: %.1f s, %.1f MiB/s each way, "
                  "daemon CPU %.1f s" % (
                      CONNS, SIZE, elapsed,
                      CONNS * SIZE / elapsed / (1 << 20), g.cpu_seconds()),
                  file=sys.stderr)
            self.assertEqual(pending, 0, "tunnels still running")
            self.assertEqual(errors, [])
            short = [i for i, r in enumerate(results)
                     if r is None or r[0] != SIZE]
            bad = [i for i, r in enumerate(results)
                   if r is not None and not r[1]]
            self.assertEqual(short, [], "tunnels that lost bytes")
            self.assertEqual(bad, [], "tunnels with corrupted bytes")
            lines = g.wait_conn_lines(CONNS, timeout=60)
            self.assertEqual(len(lines), CONNS)
            for l in lines:
                self.assertEqual(l["bytes_in"], SIZE, l)
                self.assertEqual(l["bytes_out"], SIZE, l)
                # the client closes without close_notify after its echo
                # came back: "ok" or a client read error, never a
                # backend-side or framing failure
                if l["result"] != "ok":
                    self.assertEqual(l["reason"], "client read failed", l)
            self.assertIsNone(g.proc.poll())
            self.assertEqual(g.stop(), 0)
        finally:
            echo.kill()
            echo.wait(10)
            echo.stdout.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--echo-server":
        echo_server_main(sys.argv[2])
        raise SystemExit(0)
    gh.require_binary()
    unittest.main(verbosity=2)
