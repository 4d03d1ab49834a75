#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of tsgate's plaintext data path: the real daemon on
YAML written here, real unix/TCP backends run by the test.

Covered: byte-exact transfers for plain listeners (TCP and unix) to unix
and TCP backends with every framing, half-close in both directions, 100
concurrent connections, oversized and garbage PDUs (closed and logged,
nothing forwarded, the daemon and other connections unaffected), no
route, backend refused, and the identity hand-off (PROXY v2, knc)
checked byte by byte.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


def listener_yaml(name, listen, routes, accept="plain"):
    out = ["  - name: %s" % name,
           "    listen: \"%s\"" % listen,
           "    accept: %s" % accept,
           "    routes:"]
    for r in routes:
        first = True
        for k, v in r.items():
            out.append(("      - " if first else "        ") +
                       "%s: %s" % (k, v))
            first = False
    return "\n".join(out) + "\n"


def config(*listeners, extra=""):
    return ("log: {level: info, format: json}\n" + extra +
            "listeners:\n" + "".join(listeners))


def length32(body):
    return struct.pack(">I", len(body)) + body


def nbt(body, typ=0):
    return struct.pack(">B", typ) + struct.pack(">I", len(body))[1:] + body


def ncacn(body, little=True, ptype=0):
    n = 16 + len(body)
    drep = b"\x10\x00\x00\x00" if little else b"\x00\x00\x00\x00"
    frag = struct.pack("<H" if little else ">H", n)
    return (bytes([5, 0, ptype, 3]) + drep + frag + b"\x00\x00" +
            b"\x01\x00\x00\x00" + body)


class PlainDataPath(gh.GatewayTestCase):

    def start_echo(self, backend_kind="unix", framing="raw",
                   listen_kind="tcp", max_pdu=None, identity=None,
                   mode="echo"):
        b = self.backend(mode=mode, kind=backend_kind)
        if listen_kind == "tcp":
            listen = "tcp://127.0.0.1:%d" % gh.free_port()
        else:
            listen = "unix:" + os.path.join(self.tmp, self.next_name("in") + ".sock")
        route = {"name": "r1", "backend": "\"%s\"" % b.address,
                 "framing": framing}
        if max_pdu:
            route["max_pdu"] = max_pdu
        if identity:
            route["identity"] = identity
        g = self.gateway(config(listener_yaml("in", listen, [route])))
        return b, g, listen

    def test_byte_exact_matrix(self):
        """listen tcp|unix x backend unix|tcp x every framing."""
        payloads = {
            "raw": os.urandom(300000),
            "length32": b"".join(length32(os.urandom(n))
                                 for n in (0, 1, 1000, 70000, 5)),
            "nbt": b"".join(nbt(os.urandom(n)) for n in (4, 65536, 3)) +
            nbt(b"", typ=0x85),
            "ncacn": ncacn(os.urandom(100)) +
            ncacn(os.urandom(4000), little=False) + ncacn(b""),
        }
        for listen_kind in ("tcp", "unix"):
            for backend_kind in ("unix", "tcp"):
                for framing, data in payloads.items():
                    with self.subTest(listen=listen_kind,
                                      backend=backend_kind,
                                      framing=framing):
                        self.reset()
                        b, g, listen = self.start_echo(
                            backend_kind, framing, listen_kind)
                        c = self.connect(listen)
                        got = gh.exchange(c, data)
                        c.close()
                        self.assertEqual(len(got), len(data))
                        self.assertEqual(got, data)
                        lines = g.wait_conn_lines(1)
                        self.assertEqual(lines[0]["result"], "ok")
                        self.assertEqual(lines[0]["bytes_in"],
                                         len(data))
                        self.assertEqual(lines[0]["bytes_out"],
                                         len(data))
                        self.assertEqual(lines[0]["route"], "r1")
                        self.assertEqual(lines[0]["listener"], "in")

    def test_half_close_other_direction_flows(self):
        """The client half-closes first; the backend answers afterwards."""
        b, g, listen = self.start_echo(mode="greet")
        c = self.connect(listen)
        self.assertEqual(gh.recv_exact(c, 19), b"hello from backend\n")
        c.sendall(b"request")
        c.shutdown(socket.SHUT_WR)
        # the backend echoes after our EOF reached it, then closes
        self.assertEqual(gh.recv_all(c), b"request")
        c.close()
        self.assertTrue(b.wait_records(1))
        self.assertEqual(b.records[0], b"request")
        self.assertEqual(g.wait_conn_lines(1)[0]["result"], "ok")

    def test_backend_half_closes_first(self):
        b, g, listen = self.start_echo(mode="line")
        c = self.connect(listen)
        c.sendall(b"one line\n")
        # the line backend answers and closes; our side stays open
        self.assertEqual(gh.recv_all(c), b"one line\n")
        # writing still works until we close (nothing reads it: fine)
        c.shutdown(socket.SHUT_WR)
        c.close()
        self.assertEqual(g.wait_conn_lines(1)[0]["result"], "ok")

    def test_100_concurrent(self):
        b, g, listen = self.start_echo(framing="length32")
        results = [None] * 100
        payloads = [b"".join(length32(os.urandom(n))
                             for n in (100 + i, 5000, i))
                    for i in range(100)]

        def one(i):
            try:
                c = self.connect(listen, timeout=30)
                results[i] = gh.exchange(c, payloads[i], timeout=30)
                c.close()
            except OSError as e:
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i in range(100):
            self.assertEqual(results[i], payloads[i], "connection %d" % i)
        lines = g.wait_conn_lines(100)
        self.assertEqual(len(lines), 100)
        self.assertTrue(all(l["result"] == "ok" for l in lines))

    def test_oversized_pdu_closes_only_that_connection(self):
        b, g, listen = self.start_echo(framing="length32", max_pdu="1KiB",
                                       mode="recorder")
        # a long-lived good connection first
        good = self.connect(listen)
        good.sendall(length32(b"before"))
        bad = self.connect(listen)
        bad.sendall(length32(b"ok pdu") + length32(b"x" * 2000))
        # the bad connection is closed by the daemon...
        self.assertEqual(gh.recv_all(bad), b"")
        bad.close()
        # ...and its backend saw the first PDU and nothing of the second
        self.assertTrue(b.wait_records(1))
        self.assertEqual(b.records[0], length32(b"ok pdu"))
        # the good one goes on
        good.sendall(length32(b"after"))
        good.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(good), b"")
        good.close()
        self.assertTrue(b.wait_records(2))
        self.assertEqual(b.records[1],
                         length32(b"before") + length32(b"after"))
        lines = g.wait_conn_lines(2)
        bad_line = [l for l in lines if l["result"] != "ok"]
        self.assertEqual(len(bad_line), 1)
        self.assertEqual(bad_line[0]["reason"], "client PDU too large")
        self.assertEqual(bad_line[0]["bytes_in"], 10)
        # the daemon is alive: a new connection works
        c = self.connect(listen)
        c.sendall(length32(b"still here"))
        c.shutdown(socket.SHUT_WR)
        gh.recv_all(c)
        c.close()
        self.assertTrue(b.wait_records(3))
        self.assertIsNone(g.proc.poll())

    def test_garbage_pdus(self):
        for framing in ("nbt", "ncacn"):
            with self.subTest(framing=framing):
                self.reset()
                b, g, listen = self.start_echo(framing=framing,
                                               mode="recorder")
                c = self.connect(listen)
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(gh.recv_all(c), b"")
                c.close()
                line = g.wait_conn_lines(1)[0]
                self.assertEqual(line["result"], "error")
                self.assertEqual(line["reason"],
                                 "client PDU malformed or truncated")
                self.assertTrue(b.wait_records(1))
                self.assertEqual(b.records[0], b"")
                self.assertIsNone(g.proc.poll())

    def test_backend_refused_is_logged(self):
        listen = "tcp://127.0.0.1:%d" % gh.free_port()
        dead_tcp = "tcp://127.0.0.1:%d" % gh.free_port()
        dead_unix = "unix:" + os.path.join(self.tmp, "nobody.sock")
        for dead in (dead_unix, dead_tcp):
            with self.subTest(backend=dead):
                self.reset()
                g = self.gateway(config(listener_yaml("in", listen, [
                    {"name": "dead", "backend": "\"%s\"" % dead}])))
                c = self.connect(listen)
                c.sendall(b"anyone?")
                self.assertEqual(gh.recv_all(c), b"")
                c.close()
                line = g.wait_conn_lines(1)[0]
                self.assertEqual(line["result"], "error")
                self.assertTrue(
                    line["reason"].startswith("backend refused"),
                    line)
                self.assertEqual(line["route"], "dead")

    def test_proxy_v2_handoff_tcp4(self):
        b, g, listen = self.start_echo(identity="proxy-v2",
                                       mode="recorder")
        c = self.connect(listen)
        cport = c.getsockname()[1]
        c.sendall(b"payload")
        c.shutdown(socket.SHUT_WR)
        gh.recv_all(c)
        c.close()
        self.assertTrue(b.wait_records(1))
        rec = b.records[0]
        # PROXY v2: signature, ver/cmd 0x21, TCP4 0x11, length 12
        self.assertEqual(rec[:12], b"\r\n\r\n\x00\r\nQUIT\n")
        self.assertEqual(rec[12], 0x21)
        self.assertEqual(rec[13], 0x11)
        self.assertEqual(struct.unpack(">H", rec[14:16])[0], 12)
        self.assertEqual(socket.inet_ntoa(rec[16:20]), "127.0.0.1")
        self.assertEqual(socket.inet_ntoa(rec[20:24]), "127.0.0.1")
        self.assertEqual(struct.unpack(">H", rec[24:26])[0], cport)
        self.assertEqual(struct.unpack(">H", rec[26:28])[0],
                         int(listen.rsplit(":", 1)[1]))
        # then the client's bytes, unchanged
        self.assertEqual(rec[28:], b"payload")
        # the log line names the client (kept as a sockaddr, not a string)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["peer"], "ipv4:127.0.0.1:%d" % cport)

    def test_proxy_v2_handoff_unix(self):
        b, g, listen = self.start_echo(identity="proxy-v2",
                                       mode="recorder", listen_kind="unix")
        c = self.connect(listen)
        c.sendall(b"x")
        c.shutdown(socket.SHUT_WR)
        gh.recv_all(c)
        c.close()
        self.assertTrue(b.wait_records(1))
        rec = b.records[0]
        # LOCAL with UNSPEC and no address block, as HAProxy sends for
        # a unix client: HAProxy refuses a PROXY command of any family
        # but TCP4/TCP6 (test_peers.py runs the real consumers)
        self.assertEqual(rec[:12], b"\r\n\r\n\x00\r\nQUIT\n")
        self.assertEqual(rec[12], 0x20)
        self.assertEqual(rec[13], 0x00)
        self.assertEqual(struct.unpack(">H", rec[14:16])[0], 0)
        self.assertEqual(rec[16:], b"x")

    def test_unix_peer_in_log_line(self):
        """A named unix client: an address too long to keep as a sockaddr
        in the connection is kept as its string, and logged the same."""
        b, g, listen = self.start_echo(listen_kind="unix")
        path = os.path.join(self.tmp, "named-client-with-a-long-name.sock")
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.bind(path)
        c.connect(listen[len("unix:"):])
        c.sendall(b"hello")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(c), b"hello")
        c.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["peer"], "unix:" + path)

    def test_ipv6_listener_proxy_v2(self):
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        b = self.backend(mode="recorder", kind="tcp")
        port = gh.free_port()
        listen = "tcp://[::1]:%d" % port
        g = self.gateway(config(listener_yaml("v6", listen, [
            {"name": "r", "backend": "\"%s\"" % b.address,
             "identity": "proxy-v2"}])))
        c = socket.create_connection(("::1", port), timeout=10)
        cport = c.getsockname()[1]
        c.sendall(b"six")
        c.shutdown(socket.SHUT_WR)
        gh.recv_all(c)
        c.close()
        self.assertTrue(b.wait_records(1))
        rec = b.records[0]
        self.assertEqual(rec[12:14], b"\x21\x21")  # PROXY, TCP over IPv6
        self.assertEqual(struct.unpack(">H", rec[14:16])[0], 36)
        loop6 = socket.inet_pton(socket.AF_INET6, "::1")
        self.assertEqual(rec[16:32], loop6)
        self.assertEqual(rec[32:48], loop6)
        self.assertEqual(struct.unpack(">HH", rec[48:52]), (cport, port))
        self.assertEqual(rec[52:], b"six")
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["peer"], "ipv6:::1:%d" % cport)

    def test_knc_handoff_plain(self):
        b, g, listen = self.start_echo(identity="knc", mode="recorder")
        c = self.connect(listen)
        cport = c.getsockname()[1]
        c.sendall(b"data after END")
        c.shutdown(socket.SHUT_WR)
        gh.recv_all(c)
        c.close()
        self.assertTrue(b.wait_records(1))
        head, sep, rest = b.records[0].partition(b"END\n")
        self.assertEqual(sep, b"END\n")
        self.assertEqual(rest, b"data after END")
        lines = head.decode().splitlines()
        self.assertEqual(lines[0], "REMOTE_IP:127.0.0.1")
        self.assertEqual(lines[1], "REMOTE_ADDR:127.0.0.1")
        self.assertEqual(lines[2], "REMOTE_PORT:%d" % cport)
        self.assertTrue(lines[3].startswith("VERSION:tsgate-"))
        self.assertEqual(len(lines), 4)

    def test_metrics_with_curl(self):
        if shutil.which("curl") is None:
            self.skipTest("no curl")
        b = self.backend()
        listen = "tcp://127.0.0.1:%d" % gh.free_port()
        mport = gh.free_port()
        g = self.gateway(config(
            listener_yaml("in", listen, [
                {"name": "echo", "backend": "\"%s\"" % b.address}]),
            extra="metrics: {listen: \"tcp://127.0.0.1:%d\"}\n" % mport))
        c = self.connect(listen)
        self.assertEqual(gh.exchange(c, b"12345"), b"12345")
        c.close()
        g.wait_conn_lines(1)
        dead = self.connect(listen)  # a second, still open connection
        dead.sendall(b"abc")
        self.assertEqual(gh.recv_exact(dead, 3), b"abc")

        def curl(path):
            return subprocess.run(
                ["curl", "-s", "-S", "--max-time", "%d" % gh.DEADLINE,
                 "-o", "-", "-w", "\n%{http_code}",
                 "http://127.0.0.1:%d%s" % (mport, path)],
                capture_output=True, timeout=gh.DEADLINE + 10).stdout.decode()

        text = curl("/metrics")
        self.assertTrue(text.endswith("\n200"), text[-200:])
        self.assertIn('tsgate_connections_total{listener="in"} 2', text)
        self.assertIn('tsgate_connections_active{listener="in"} 1', text)
        self.assertIn('tsgate_route_connections_total{listener="in",'
                      'route="echo"} 2', text)
        self.assertIn('tsgate_route_bytes_total{listener="in",route="echo",'
                      'direction="client_to_backend"} 8', text)
        self.assertIn("tsgate_ready 1", text)
        self.assertTrue(curl("/readyz").endswith("200"))
        dead.close()
        g.wait_conn_lines(2)
        text = curl("/metrics")
        self.assertIn('tsgate_connections_active{listener="in"} 0', text)

    def test_sigterm_drains_active_transfer(self):
        b, g, listen = self.start_echo()
        c = self.connect(listen)
        c.sendall(b"first half ")
        self.assertEqual(gh.recv_exact(c, 11), b"first half ")
        g.proc.send_signal(15)
        # new connections are refused at once...
        self.assertTrue(gh.wait_until(
            lambda: b"stop accepting" in g.log_bytes()))
        with self.assertRaises(OSError):
            self.connect(listen, timeout=2).recv(1)
            raise OSError("connected")
        # ...while the live one finishes
        c.sendall(b"second half")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(c), b"second half")
        c.close()
        g.proc.wait(gh.DEADLINE)
        self.assertEqual(g.proc.returncode, 0)
        self.assertEqual(g.conn_lines()[0]["result"], "ok")


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
