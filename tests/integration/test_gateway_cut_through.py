#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of cut-through forwarding on framed routes (issue
16): the real daemon forwards a PDU as it arrives, so a backend sees the
start of a PDU whose end the client has not sent yet, and the daemon's
peak RSS does not grow with the PDU size while several connections have
8 MiB PDUs in flight both ways.
"""

import os
import socket
import struct
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

MIB = 1024 * 1024


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


class CountingBackend:
    """Counts what each connection sends it; answers every connection
    with `answer` at once (blocking on backpressure in its own thread)."""

    def __init__(self, path, answer=b""):
        self.answer = answer
        self.counts = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.address = "unix:" + path
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                i = len(self.counts)
                self.counts.append(0)
                self.conns.append(c)
            answer = threading.Thread(target=self._answer, args=(c,),
                                      daemon=True)
            answer.start()
            threading.Thread(target=self._read, args=(c, i, answer),
                             daemon=True).start()

    def _read(self, c, i, answer):
        try:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                with self.lock:
                    self.counts[i] += len(d)
            # the end of our direction only after the whole answer
            answer.join(60)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _answer(self, c):
        try:
            c.sendall(self.answer)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def config(listen, backend, framing, max_pdu, extra_route="", top=""):
    return ("log: {level: info, format: json}\n" + top +
            "listeners:\n"
            "  - name: in\n"
            "    listen: \"%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: r1\n"
            "        backend: \"%s\"\n"
            "        framing: %s\n"
            "        max_pdu: %s\n" % (listen, backend, framing, max_pdu) +
            extra_route)


class CutThrough(gh.GatewayTestCase):

    def counting_backend(self, answer=b""):
        b = CountingBackend(os.path.join(self.tmp, self.next_name("cb") +
                                         ".sock"), answer)
        self.addCleanup(b.close)
        return b

    def test_8mib_pdus_several_connections_rss_bounded(self):
        """Four connections, each with an 8 MiB length32 PDU in flight
        both ways at once: the backend has 6 MiB of each client PDU
        before the client sent the rest, and the daemon's peak RSS grows
        by far less than a PDU per connection (store-and-forward: 8 MiB
        per direction and connection)."""
        n, body = 4, 8 * MIB
        down = struct.pack(">I", body) + os.urandom(body)
        up = struct.pack(">I", body) + os.urandom(body)
        first = 4 + 6 * MIB
        b = self.counting_backend(answer=down)
        listen = "tcp://127.0.0.1:%d" % gh.free_port()
        g = self.gateway(config(listen, b.address, "length32", "16MiB"))
        # warm up: one small PDU each way through a connection
        c = self.connect(listen)
        c.sendall(struct.pack(">I", 3) + b"abc")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(c, timeout=30), down)
        c.close()
        g.wait_conn_lines(1)
        base = vm_hwm_kib(g.proc.pid)

        conns = [self.connect(listen, timeout=60) for _ in range(n)]
        for c in conns:
            c.sendall(up[:first])
        # the start of every client PDU is with the backend already
        self.assertTrue(gh.wait_until(
            lambda: len(b.counts) == n + 1 and
            all(x >= first for x in b.counts[1:]), 30),
            "backend got %r of %d bytes each" % (b.counts, first))
        grown = vm_hwm_kib(g.proc.pid) - base
        for c in conns:
            c.sendall(up[first:])
            c.shutdown(socket.SHUT_WR)
            got = gh.recv_all(c, timeout=60)
            self.assertEqual(len(got), len(down))
            self.assertEqual(got, down)
            c.close()
        lines = g.wait_conn_lines(n + 1, timeout=30)
        for line in lines[1:]:
            self.assertEqual(line["result"], "ok", line)
            self.assertEqual(line["bytes_in"], len(up))
            self.assertEqual(line["bytes_out"], len(down))
            self.assertEqual(line["pdus_in"], 1)
            self.assertEqual(line["pdus_out"], 1)
        if gh.asan_build():
            # ASan's quarantine keeps freed chunks: RSS says nothing
            return
        # one 64 KiB chunk per direction and connection is 512 KiB here
        self.assertLess(grown, 4 * 1024,
                        "peak RSS grew by %d KiB for %d connections" %
                        (grown, n))

    def test_nbt_and_ncacn_forwarded_as_they_arrive(self):
        """The first part of an NBT message and of an ncacn fragment
        reaches the backend before the client sends the rest."""
        cases = {
            "nbt": (b"\x00" + struct.pack(">I", 3 * MIB)[1:] +
                    os.urandom(3 * MIB), "16MiB"),
            "ncacn": (bytes([5, 0, 0, 3, 0x10, 0, 0, 0]) +
                      struct.pack("<H", 60000) + b"\x00\x00" +
                      b"\x01\x00\x00\x00" + os.urandom(60000 - 16),
                      "64KiB"),
        }
        for framing, (pdu, max_pdu) in cases.items():
            with self.subTest(framing=framing):
                self.reset()
                b = self.counting_backend()
                listen = "tcp://127.0.0.1:%d" % gh.free_port()
                g = self.gateway(config(listen, b.address, framing,
                                        max_pdu))
                c = self.connect(listen)
                half = len(pdu) // 2
                c.sendall(pdu[:half])
                self.assertTrue(gh.wait_until(
                    lambda: b.counts and b.counts[0] == half),
                    "backend got %r of %d" % (b.counts, half))
                c.sendall(pdu[half:])
                c.shutdown(socket.SHUT_WR)
                self.assertEqual(gh.recv_all(c), b"")
                c.close()
                line = g.wait_conn_lines(1)[0]
                self.assertEqual(line["result"], "ok", line)
                self.assertEqual(line["bytes_in"], len(pdu))
                self.assertEqual(line["pdus_in"], 1)
                self.assertEqual(b.counts[0], len(pdu))

    def test_proxy_v2_then_pdus_and_idle_timeout_mid_pdu(self):
        """The PROXY v2 header still goes first, then the PDUs as they
        arrive; a client that stalls inside a PDU is ended by the idle
        timeout as before, after the part it sent went on."""
        b = self.backend(mode="recorder")
        listen = "tcp://127.0.0.1:%d" % gh.free_port()
        g = self.gateway(config(listen, b.address, "length32", "1MiB",
                                extra_route="        identity: proxy-v2\n",
                                top="limits: {idle_timeout: 1s}\n"))
        whole = struct.pack(">I", 5) + b"hello"
        part = struct.pack(">I", 1000) + b"p" * 300
        c = self.connect(listen)
        c.sendall(whole + part)
        line = g.wait_conn_lines(1)[0]
        c.close()
        self.assertEqual(line["result"], "error", line)
        self.assertEqual(line["reason"], "idle timeout", line)
        self.assertEqual(line["bytes_in"], len(whole + part))
        self.assertEqual(line["pdus_in"], 1)
        self.assertTrue(b.wait_records(1))
        rec = b.records[0]
        self.assertEqual(rec[:12], b"\r\n\r\n\x00\r\nQUIT\n")
        self.assertEqual(rec[28:], whole + part)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main()
