#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A connection that fails ends as a failure on both sides (the real
daemon; stunnel's "reset = yes" default): when the relay fails, tsgate
resets both connections (TCP RST, no close_notify) instead of closing
them in order, so a client never takes a reply cut short for a whole
one. What still ends in order: a clean end, and an idle timeout.

Each case reads its side to the end and asserts how it ended: "eof" (an
orderly close; for TLS a close_notify or a bare FIN) or "reset"
(ECONNRESET). Peers are Python's socket and ssl (OpenSSL) modules (a
TLS client that must see a reset reads its TCP socket itself: RawTls):
- the backend resets after half a reply: the plain client, and a TLS
  client, get the half and then a reset;
- a framed route refuses the client's PDU: the backend's connection is
  reset;
- a TLS client's stream ends without close_notify on a strict_end
  listener: the backend's connection is reset;
- client mode (`connect: tls`): the TLS server resets after half a reply,
  the plaintext client gets a reset;
- curl (HTTP/1.0, a body that ends with the connection) through a TLS
  listener: a backend that resets mid-body is an error for curl (56), not
  a complete download; the same backend ending in order is a download;
- controls: a failed client handshake still ends with its alert; a clean
  end and an idle timeout end in order on both sides.
"""

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

HALF = b"h" * 3000


def read_to_end(sock):
    """(bytes, "eof" | "reset"): everything until the connection ends,
    and how it ended."""
    sock.settimeout(gh.DEADLINE)
    chunks = []
    while True:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        except ssl.SSLEOFError:
            return b"".join(chunks), "eof"
        if not d:
            return b"".join(chunks), "eof"
        chunks.append(d)


class RawTls:
    """A TLS client (Python's OpenSSL through memory BIOs) over a TCP
    socket read directly: the socket's own end (EOF or ECONNRESET) is
    seen as it is (an SSLSocket reports a reset as an empty read)."""

    def __init__(self, ctx, raw):
        self.raw = raw
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname="localhost")
        raw.settimeout(gh.DEADLINE)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(self.out.read())
                d = raw.recv(65536)
                if not d:
                    raise AssertionError("end of stream in the handshake")
                self.inc.write(d)
        raw.sendall(self.out.read())

    def sendall(self, data):
        self.obj.write(data)
        self.raw.sendall(self.out.read())

    def read_to_end(self):
        """(plaintext, "eof" | "reset") until the TCP connection ends."""
        plain = []
        while True:
            try:
                d = self.raw.recv(65536)
            except ConnectionResetError:
                return b"".join(plain), "reset"
            if not d:
                return b"".join(plain), "eof"
            self.inc.write(d)
            while True:
                try:
                    plain.append(self.obj.read(65536))
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break


def abort(sock):
    """Close with a reset."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def half_then_reset(c):
    """Answer the first bytes with half a reply, then reset."""
    c.recv(100)
    c.sendall(HALF)
    abort(c)
    return None


def http10_reply(reset):
    """A backend script: an HTTP/1.0 reply whose body ends with the
    connection (no Content-Length), cut by a reset or ended in order."""
    def script(c):
        c.settimeout(gh.DEADLINE)
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                break
            req += d
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" +
                  HALF)
        if reset:
            abort(c)
        else:
            c.close()
    return script


def read_and_note_end(c):
    """Read until tsgate ends the connection; note how."""
    got, how = read_to_end(c)
    c.close()
    return how, got


class FailedRelaysReset(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)

    def scripted(self, script):
        """A TCP backend (a unix socket has no reset) running script."""
        return self.backend(kind="tcp", script=script)

    def daemon(self, accept, backend, route="", tls=""):
        listen = "tcp://127.0.0.1:%d" % gh.free_port()
        c = self.certs
        text = ("log: {level: info, format: json}\n"
                "listeners:\n"
                "  - name: in\n"
                "    listen: \"%s\"\n"
                "    accept: %s\n" % (listen, accept))
        if accept == "tls":
            text += ("    tls:\n      cert: %s\n      key: %s\n" %
                     (c.server, c.server_key) + tls)
        text += ("    routes:\n      - backend: \"%s\"\n" % backend + route)
        return listen, self.gateway(text)

    def tls_client(self, listen):
        raw = self.connect(listen)
        return self.certs.client_context().wrap_socket(
            raw, server_hostname="localhost")

    def wait_end(self, backend):
        """What the backend's script returned for the first connection."""
        self.assertTrue(backend.wait_records(1))
        return backend.records[0]

    def test_backend_reset_resets_the_plain_client(self):
        listen, g = self.daemon("plain",
                                self.scripted(half_then_reset).address)
        c = self.connect(listen)
        c.sendall(b"ask")
        got, how = read_to_end(c)
        c.close()
        self.assertEqual(how, "reset")
        self.assertEqual(got, HALF[:len(got)])
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error", line)
        self.assertEqual(line["reason"], "backend read failed", line)

    def test_backend_reset_resets_the_tls_client(self):
        listen, g = self.daemon("tls",
                                self.scripted(half_then_reset).address)
        raw = self.connect(listen)
        t = RawTls(self.certs.client_context(), raw)
        t.sendall(b"ask")
        got, how = t.read_to_end()
        raw.close()
        # no close_notify and no FIN: the client knows the reply is cut
        self.assertEqual(how, "reset")
        self.assertEqual(got, HALF[:len(got)])
        self.assertEqual(g.wait_conn_lines(1)[0]["result"], "error")

    def test_refused_pdu_resets_the_backend(self):
        b = self.scripted(read_and_note_end)
        listen, g = self.daemon("plain", b.address,
                                route="        framing: length32\n"
                                      "        max_pdu: 1KiB\n")
        c = self.connect(listen)
        c.sendall(struct.pack(">I", 3) + b"abc")
        c.sendall(struct.pack(">I", 1 << 20))  # over max_pdu
        _, client_end = read_to_end(c)
        c.close()
        how, got = self.wait_end(b)
        self.assertEqual(how, "reset")
        self.assertEqual(got, struct.pack(">I", 3) + b"abc")
        self.assertEqual(client_end, "reset")
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["reason"], "client PDU too large", line)

    def test_strict_end_truncation_resets_the_backend(self):
        b = self.scripted(read_and_note_end)
        listen, g = self.daemon("tls", b.address,
                                tls="      strict_end: true\n")
        s = self.tls_client(listen)
        s.sendall(b"partial")
        # the TCP connection ends without close_notify
        s.shutdown(socket.SHUT_RDWR)
        s.close()
        how, got = self.wait_end(b)
        self.assertEqual(how, "reset")
        self.assertEqual(got, b"partial")
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error", line)
        self.assertIn("TLS stream truncated", line["reason"])

    def test_client_mode_tls_server_reset_resets_the_client(self):
        # the TLS server (Python's ssl) answers half and resets
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        self.addCleanup(srv.close)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.server, self.certs.server_key)

        def serve():
            raw, _ = srv.accept()
            with ctx.wrap_socket(raw, server_side=True) as t:
                t.recv(100)
                t.sendall(HALF)
                abort(t)

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        listen, g = self.daemon(
            "plain", "tcp://127.0.0.1:%d" % srv.getsockname()[1],
            route="        connect: tls\n"
                  "        tls: {ca: %s, sni: localhost}\n" % self.certs.ca)
        c = self.connect(listen)
        c.sendall(b"ask")
        got, how = read_to_end(c)
        c.close()
        th.join(gh.DEADLINE)
        self.assertEqual(how, "reset")
        self.assertEqual(got, HALF[:len(got)])
        self.assertEqual(g.wait_conn_lines(1)[0]["result"], "error")

    def test_curl_sees_a_cut_reply_as_an_error(self):
        for reset, code in ((True, 56), (False, 0)):
            listen, g = self.daemon("tls",
                                    self.scripted(http10_reply(reset)).address)
            port = listen.rsplit(":", 1)[1]
            r = subprocess.run(
                ["curl", "-sS", "--http1.0", "--cacert", self.certs.ca,
                 "--resolve", "localhost:%s:127.0.0.1" % port,
                 "https://localhost:%s/" % port],
                capture_output=True, timeout=gh.DEADLINE)
            self.assertEqual(r.returncode, code, (reset, r.stderr))
            if reset:
                self.assertIn(b"reset", r.stderr)
            else:
                self.assertEqual(r.stdout, HALF)
            result = g.wait_conn_lines(1)[0]["result"]
            self.assertEqual(result, "error" if reset else "ok")

    def test_failed_client_handshake_ends_with_its_alert(self):
        # a set-up failure, not a relay one: no reset (which could drop
        # the alert unsent)
        listen, g = self.daemon(
            "tls", self.backend(kind="tcp").address,
            tls="      client_ca: %s\n      verify_client: require\n" %
                self.certs.ca)
        s = self.tls_client(listen)  # no client certificate
        with self.assertRaises(ssl.SSLError) as cm:
            s.sendall(b"x")
            s.recv(1)
        s.close()
        self.assertIn("CERTIFICATE_REQUIRED", str(cm.exception).upper())
        self.assertIn("handshake failed",
                      g.wait_conn_lines(1)[0]["reason"])

    def test_clean_end_and_idle_timeout_stay_orderly(self):
        # a whole exchange: both sides end in order
        echo = self.backend(mode="echo", kind="tcp")
        listen, g = self.daemon("tls", echo.address)
        s = self.tls_client(listen)
        s.sendall(b"whole")
        self.assertEqual(gh.recv_exact(s, 5), b"whole")
        s = s.unwrap()  # close_notify both ways
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(read_to_end(s), (b"", "eof"))
        s.close()
        self.assertEqual(g.wait_conn_lines(1)[0]["result"], "ok")
        # an idle timeout: orderly on both sides
        b = self.scripted(read_and_note_end)
        listen, g = self.daemon("plain", b.address,
                                route="        idle_timeout: 1s\n")
        c = self.connect(listen)
        c.sendall(b"then nothing")
        self.assertEqual(read_to_end(c), (b"", "eof"))
        c.close()
        self.assertEqual(self.wait_end(b), ("eof", b"then nothing"))
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["reason"], "idle timeout", line)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main()
