#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The fault matrix of issue 9 against the real tsgate daemon.

Every case runs while a witness -- a TLS stream through the same daemon to
an echo backend -- keeps moving random bytes, checked byte for byte. Each
case asserts that:

  - the faulty connection fails, with its reason in the daemon's
    one-line-per-connection log (parsed from the JSON log);
  - nothing of a rejected or partial unit reaches the backend;
  - the witness is unaffected (byte-exact, still moving after the fault,
    logged "ok" with the right byte counts);
  - the daemon lives, and exits 0 on SIGTERM at the end (tearDown).

Cases: garbage instead of a handshake (TLS, GSSAPI), a client stalling
mid-handshake, disconnecting mid-handshake and mid-PDU, oversized PDU
lengths (length32, nbt, ncacn; and over TLS), a 4 GiB GSSAPI frame length,
replayed and reordered GSSAPI tokens (on the same connection, and a real
client's captured frames replayed on a new one), a certificate from
another CA, an expired client certificate, an unknown service principal
and a principal without a route, a backend that refuses, one that closes
mid-PDU, one that stops reading (the daemon's RSS stays bounded while the
client pushes), fd exhaustion (RLIMIT_NOFILE lowered with prlimit: accept
errors survived, service resumes) and a reload with a broken config.
"""

import contextlib
import errno
import os
import random
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

KNC_PEER = os.path.join(gh.BUILDDIR, "tests", "integration", "knc-peer")
HAVE_KDC = shutil.which("krb5kdc") is not None or os.path.exists(
    "/usr/sbin/krb5kdc")
KADMIN_LOCAL = "/usr/sbin/kadmin.local"


def length32(body):
    return struct.pack(">I", len(body)) + body


def nbt(body, typ=0):
    return struct.pack(">B", typ) + struct.pack(">I", len(body))[1:] + body


def ncacn(body):
    n = 16 + len(body)
    return (bytes([5, 0, 0, 3]) + b"\x10\x00\x00\x00" +
            struct.pack("<H", n) + b"\x00\x00" + b"\x01\x00\x00\x00" + body)


def client_hello(ctx):
    """The first flight of a real TLS client (Python's OpenSSL)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def asan_build():
    """True when the daemon is built with AddressSanitizer."""
    with open(gh.TSGATE, "rb") as f:
        return b"libasan.so" in f.read()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Witness(threading.Thread):
    """A TLS stream through the daemon to an echo backend that keeps
    moving random bytes (a few MiB/s at most, with a bounded amount in
    flight) and checks the echo byte for byte."""

    def __init__(self, port, ctx):
        super().__init__(daemon=True)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.setblocking(False)
        self.stopping = threading.Event()
        self.sent = bytearray()
        self.got = bytearray()
        self.error = None
        self.clean = False
        self.pool = os.urandom(1 << 16)
        self.start()

    def run(self):
        pending = None
        deadline = None
        try:
            while True:
                if self.stopping.is_set() and pending is None:
                    if deadline is None:
                        deadline = time.monotonic() + 30
                    if len(self.got) >= len(self.sent):
                        break
                    if time.monotonic() > deadline:
                        self.error = "echo incomplete"
                        return
                progress = False
                if pending is None and not self.stopping.is_set() and \
                        len(self.sent) - len(self.got) < (256 << 10):
                    off = random.randrange(0, len(self.pool) - 8192)
                    pending = self.pool[off:off + random.randint(1, 8192)]
                if pending is not None:
                    try:
                        n = self.sock.send(pending)
                        self.sent += pending[:n]
                        pending = pending[n:] or None
                        progress = True
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError,
                            BlockingIOError):
                        pass
                try:
                    d = self.sock.recv(65536)
                    if not d:
                        self.error = "unexpected end of stream"
                        return
                    self.got += d
                    progress = True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError,
                        BlockingIOError):
                    pass
                if progress:
                    # paced on purpose: a few MiB/s at most
                    time.sleep(0.002)
                else:
                    select.select([self.sock], [], [], 0.01)
            self.sock.settimeout(10)
            self.sock.unwrap()
            self.clean = True
        except (OSError, ValueError) as e:
            self.error = repr(e)
        finally:
            self.sock.close()

    def wait_bytes(self, n, timeout=None):
        target = len(self.got) + n
        return gh.wait_until(lambda: len(self.got) >= target or
                             not self.is_alive(), timeout)

    def finish(self):
        self.stopping.set()
        self.join(40)
        return not self.is_alive()


class FaultMatrix(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.kdc = None
        self.env = {}
        self.certs = gh.Certs(self.tmp)
        self.echo = self.backend(mode="echo")
        self.recorder = self.backend(mode="recorder", echo=True)
        self.dead = "unix:" + os.path.join(self.tmp, "nobody.sock")
        self.ports = {}
        self.clients = []

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            if self.kdc is not None:
                self.kdc.stop()

    def start_kdc(self):
        if not HAVE_KDC:
            self.skipTest("krb5kdc is not installed")
        self.kdc = gh.Kdc(self.tmp)
        if not self.kdc.available():
            self.skipTest("no KDC")
        self.env = self.kdc.env

    def listener(self, name, accept, backend, extra=(), route=()):
        port = gh.free_port()
        self.ports[name] = port
        out = ["  - name: %s" % name,
               "    listen: \"tcp://127.0.0.1:%d\"" % port,
               "    accept: %s" % accept]
        out += ["    " + e for e in extra]
        out += ["    routes:",
                "      - name: %s-route" % name,
                "        backend: \"%s\"" % backend]
        out += ["        " + r for r in route]
        return out

    def tls_block(self, extra=()):
        c = self.certs
        return (["tls:", "  cert: %s" % c.server, "  key: %s" % c.server_key]
                + ["  " + e for e in extra])

    def start(self, listeners, limits="handshake_timeout: 2s"):
        """The daemon with a "witness" TLS listener plus the case's own."""
        out = ["log: {level: info, format: json}",
               "limits: {%s}" % limits,
               "listeners:"]
        out += self.listener("witness", "tls", self.echo.address,
                             self.tls_block())
        for l in listeners:
            out += l
        self.config_text = "\n".join(out) + "\n"
        env = dict(self.env)
        if asan_build():
            # freed memory sits in ASan's quarantine (256 MiB by default)
            # and would count as growth in the backpressure case
            env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                   ":quarantine_size_mb=0"
                                   ":thread_local_quarantine_size_kb=0")
        self.g = self.gateway(self.config_text, env=env)
        return self.g

    @contextlib.contextmanager
    def witnessed(self):
        w = Witness(self.ports["witness"], self.certs.client_context())
        try:
            self.assertTrue(w.wait_bytes(64 << 10), w.error)
            yield w
            # still flowing after the fault
            self.assertTrue(w.wait_bytes(64 << 10), w.error)
            self.assertIsNone(self.g.proc.poll(), "the daemon died")
        finally:
            self.assertTrue(w.finish())
        self.assertIsNone(w.error)
        self.assertTrue(w.clean, "no close_notify from the daemon")
        self.assertEqual(len(w.got), len(w.sent))
        self.assertEqual(w.got, w.sent)
        line = self.wait_line("witness")
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["bytes_in"], len(w.sent))
        self.assertEqual(line["bytes_out"], len(w.sent))

    def wait_line(self, listener, n=1, timeout=None):
        def mine():
            return [l for l in self.g.conn_lines()
                    if l["listener"] == listener]
        gh.wait_until(lambda: len(mine()) >= n, timeout)
        got = mine()
        self.assertGreaterEqual(len(got), n, "no log line for %s:\n%s" % (
            listener, self.g.log_bytes().decode(errors="replace")[-3000:]))
        return got[n - 1]

    def assert_failed(self, listener, prefix, n=1):
        line = self.wait_line(listener, n)
        self.assertEqual(line["result"], "error", line)
        self.assertTrue(line["reason"].startswith(prefix), line)
        return line

    def plain(self, name, timeout=10):
        return socket.create_connection(("127.0.0.1", self.ports[name]),
                                        timeout=timeout)

    def tls(self, name, cert=None, key=None):
        ctx = self.certs.client_context(cert, key)
        return ctx.wrap_socket(self.plain(name), server_hostname="localhost")

    # -- handshakes --------------------------------------------------------

    def test_tls_garbage_stall_and_disconnect_mid_handshake(self):
        self.start([self.listener("tls", "tls", self.recorder.address,
                                  self.tls_block())])
        hello = client_hello(self.certs.client_context())
        self.assertGreater(len(hello), 100)
        with self.witnessed():
            # garbage: an HTTP request instead of a ClientHello
            c = self.plain("tls")
            c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertNotIn(b"HTTP", gh.recv_all(c))
            c.close()
            self.assert_failed("tls", "tls handshake failed", 1)
            # half a ClientHello, then silence: the handshake timeout
            c = self.plain("tls")
            c.sendall(hello[:len(hello) // 2])
            t = time.monotonic()
            self.assertEqual(gh.recv_all(c, 10), b"")
            if gh.timing_asserts_enabled():
                self.assertLess(time.monotonic() - t, 8)
            c.close()
            self.assert_failed("tls", "handshake timeout", 2)
            # half a ClientHello, then the client goes away
            c = self.plain("tls")
            c.sendall(hello[:len(hello) // 2])
            c.close()
            self.assert_failed("tls", "tls handshake failed", 3)
        self.assertEqual(self.recorder.accepted, 0)

    def test_certificate_from_wrong_ca_and_expired(self):
        c = self.certs
        self.start([self.listener(
            "mtls", "tls", self.recorder.address,
            self.tls_block(["client_ca: %s" % c.ca,
                            "verify_client: require"]))])
        # an expired client certificate from the right CA (certtool, as
        # openssl x509 cannot set a validity period in the past)
        expired_crt = os.path.join(self.tmp, "expired.crt")
        expired_key = os.path.join(self.tmp, "expired.key")
        tmpl = os.path.join(self.tmp, "expired.tmpl")
        with open(tmpl, "w") as f:
            f.write("cn = \"expired alice\"\n"
                    "activation_date = \"2020-01-01 00:00:00\"\n"
                    "expiration_date = \"2020-01-31 00:00:00\"\n"
                    "tls_www_client\nsigning_key\n")
        c._run(["genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-out", expired_key])
        subprocess.run(["certtool", "--generate-certificate",
                        "--load-privkey", expired_key,
                        "--load-ca-certificate", c.ca,
                        "--load-ca-privkey", c.ca_key,
                        "--template", tmpl, "--outfile", expired_crt],
                       check=True, timeout=30, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        stranger_key, stranger = c.stranger()
        with self.witnessed():
            for n, (crt, k) in enumerate([(stranger, stranger_key),
                                          (expired_crt, expired_key)], 1):
                s = None
                got = b""
                try:
                    s = self.tls("mtls", crt, k)
                    s.sendall(b"must not pass")
                    got = gh.recv_all(s)
                except (ssl.SSLError, OSError):
                    pass
                finally:
                    if s is not None:
                        s.close()
                self.assertEqual(got, b"")
                line = self.assert_failed("mtls", "tls handshake failed", n)
                self.assertIn(("issuer is unknown", "expired")[n - 1],
                              line["reason"])
            # the right certificate still passes
            s = self.tls("mtls", c.alice, c.alice_key)
            got, _ = gh.tls_roundtrip(s, b"alice")
            self.assertEqual(got, b"alice")
        self.assertEqual(self.wait_line("mtls", 3)["result"], "ok")
        self.assertTrue(self.recorder.wait_records(1))
        self.assertEqual(self.recorder.records, [b"alice"])

    # -- PDUs --------------------------------------------------------------

    def test_oversized_pdu_lengths(self):
        route = ["framing: %s", "max_pdu: 1KiB"]
        framings = {"length32": length32, "nbt": nbt, "ncacn": ncacn}
        ls = [self.listener(f, "plain", self.recorder.address,
                            route=[r % f if "%" in r else r
                                   for r in route])
              for f in framings]
        ls.append(self.listener(
            "tls-length32", "tls", self.recorder.address, self.tls_block(),
            route=["framing: length32", "max_pdu: 64KiB"]))
        self.start(ls)
        with self.witnessed():
            n = 0
            for f, make in framings.items():
                c = self.plain(f)
                good = make(b"good")
                big = make(b"x" * 2000)
                c.sendall(good)
                self.assertEqual(gh.recv_exact(c, len(good)), good)
                # the header alone announces too much: never forwarded
                c.sendall(big[:16])
                self.assertEqual(gh.recv_all(c), b"")
                c.close()
                n += 1
                self.assertTrue(self.recorder.wait_records(n))
                self.assertEqual(self.recorder.records[-1], good)
                self.assert_failed(f, "client PDU too large")
            # over TLS: a 4 GiB length32 header
            s = self.tls("tls-length32")
            s.sendall(length32(b"ok"))
            self.assertEqual(gh.recv_exact(s, 6), length32(b"ok"))
            s.sendall(b"\xff\xff\xff\xff")
            self.assertEqual(gh.recv_all(s), b"")
            s.close()
            self.assertTrue(self.recorder.wait_records(n + 1))
            self.assertEqual(self.recorder.records[-1], length32(b"ok"))
            self.assert_failed("tls-length32", "client PDU too large")

    def test_client_disconnects_mid_pdu(self):
        self.start([
            self.listener("length32", "plain", self.recorder.address,
                          route=["framing: length32"]),
            self.listener("tls-length32", "tls", self.recorder.address,
                          self.tls_block(), route=["framing: length32"])])
        with self.witnessed():
            # plain: half a PDU, then the client's FIN. Cut-through: the
            # half went on (the backend sees the PDU cut short, then the
            # end of its connection); the echo of it may race the end.
            half = length32(b"y" * 1000)[:500]
            c = self.plain("length32")
            c.sendall(length32(b"whole"))
            self.assertEqual(gh.recv_exact(c, 9), length32(b"whole"))
            c.sendall(half)
            c.shutdown(socket.SHUT_WR)
            echoed = gh.recv_all(c)
            self.assertEqual(echoed, half[:len(echoed)])
            c.close()
            line = self.assert_failed("length32",
                                      "client PDU malformed or truncated")
            self.assertEqual(line["bytes_in"], 9 + 500)
            self.assertEqual(line["pdus_in"], 1)
            self.assertTrue(self.recorder.wait_records(1))
            self.assertEqual(self.recorder.records[0],
                             length32(b"whole") + half)
            # TLS: half a PDU, then the TCP connection vanishes (RST,
            # no close_notify)
            s = self.tls("tls-length32")
            s.sendall(length32(b"whole"))
            self.assertEqual(gh.recv_exact(s, 9), length32(b"whole"))
            half = length32(b"z" * 1000)[:500]
            s.sendall(half)
            # the half PDU is with the daemon (acknowledged) before the
            # reset (whether the daemon reads it before the reset is the
            # kernel's race: it forwards it when it does)
            self.assertTrue(gh.wait_sent(s))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()
            line = self.wait_line("tls-length32")
            self.assertEqual(line["result"], "error", line)
            self.assertIn(line["reason"], ("client read failed",
                                           "client PDU malformed or "
                                           "truncated"))
            self.assertIn(line["bytes_in"], (9, 9 + 500))
            self.assertTrue(self.recorder.wait_records(2))
            self.assertEqual(self.recorder.records[1],
                             length32(b"whole") + half[:line["bytes_in"] - 9])

    # -- backends ----------------------------------------------------------

    def test_backend_refuses(self):
        self.start([self.listener("refused", "tls", self.dead,
                                  self.tls_block())])
        with self.witnessed():
            for n in (1, 2, 3):
                s = self.tls("refused")
                s.sendall(b"anyone?")
                self.assertEqual(gh.recv_all(s), b"")
                s.close()
                self.assert_failed("refused", "backend refused", n)

    def test_backend_closes_mid_pdu(self):
        # a backend that answers the first PDU with half a PDU and leaves
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(self.tmp, "half.sock")
        lsock.bind(path)
        lsock.listen(4)

        def serve():
            c, _ = lsock.accept()
            gh.recv_exact(c, 8)
            c.sendall(length32(b"full") + length32(b"q" * 1000)[:300])
            c.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            self.start([self.listener("half", "plain", "unix:" + path,
                                      route=["framing: length32"])])
            with self.witnessed():
                c = self.plain("half")
                c.sendall(length32(b"ask?"))
                # cut-through: the whole PDU and the 300 bytes of the
                # next come through, then the connection ends
                self.assertEqual(gh.recv_all(c), length32(b"full") +
                                 length32(b"q" * 1000)[:300])
                c.close()
                line = self.assert_failed(
                    "half", "backend PDU malformed or truncated")
                self.assertEqual(line["bytes_out"], 8 + 300)
                self.assertEqual(line["pdus_out"], 1)
        finally:
            t.join(5)
            lsock.close()

    def test_backend_stops_reading_memory_bounded(self):
        # a backend that accepts and never reads
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(self.tmp, "stuck.sock")
        lsock.bind(path)
        lsock.listen(4)
        held = []

        def accept():
            with contextlib.suppress(OSError):
                while True:
                    held.append(lsock.accept()[0])

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        self.start([
            self.listener("stuck", "plain", "unix:" + path),
            self.listener("tls-stuck", "tls", "unix:" + path,
                          self.tls_block())])
        pid = self.g.proc.pid
        try:
            with self.witnessed():
                for n, name in enumerate(("stuck", "tls-stuck"), 1):
                    self.push_into_stuck_backend(pid, name)
                    # the stuck backend goes away: that connection ends,
                    # logged
                    self.assertTrue(gh.wait_until(lambda: len(held) == n))
                    held[-1].close()
                    self.assert_failed(name, "backend ")
        finally:
            for h in held + self.clients:
                h.close()
            lsock.shutdown(socket.SHUT_RDWR)
            lsock.close()
            t.join(5)

    def push_into_stuck_backend(self, pid, name):
        """The client pushes up to 200 MiB into a connection whose backend
        never reads: the daemon's RSS stays within 4 MiB of where it was,
        and backpressure stops the client long before 200 MiB."""
        total = 200 << 20
        chunk = os.urandom(1 << 16)
        c = self.tls(name) if name.startswith("tls") else self.plain(name)
        before = rss_kib(pid)
        peak = [before]
        sent = [0]

        def push():
            # blocks once the daemon stops taking bytes; 3 s without
            # progress ends it
            c.settimeout(3)
            with contextlib.suppress(OSError):
                while sent[0] < total:
                    c.sendall(chunk)
                    sent[0] += len(chunk)

        t = threading.Thread(target=push, daemon=True)
        t.start()
        while t.is_alive():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)  # sampling RSS while the client pushes
        peak = peak[0]
        print("backend stops reading (%s): client pushed %d KiB, daemon "
              "RSS %d -> peak %d KiB" % (name, sent[0] >> 10, before, peak),
              file=sys.stderr)
        self.assertLess(sent[0], 64 << 20, "no backpressure")
        if gh.timing_asserts_enabled():
            self.assertLess(peak - before, 4096, "daemon RSS grew")
        self.clients.append(c)

    def test_client_stops_reading_memory_bounded(self):
        """The other direction: a backend floods up to 200 MiB towards a
        client that never reads; the daemon's RSS stays bounded."""
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(self.tmp, "flood.sock")
        lsock.bind(path)
        lsock.listen(4)
        pushed = []

        def flood():
            chunk = os.urandom(1 << 16)
            with contextlib.suppress(OSError):
                while True:
                    c, _ = lsock.accept()
                    n = 0
                    c.settimeout(3)
                    with contextlib.suppress(OSError):
                        while n < (200 << 20):
                            c.sendall(chunk)
                            n += len(chunk)
                    pushed.append(n)
                    c.close()

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        self.start([
            self.listener("flood", "plain", "unix:" + path),
            self.listener("tls-flood", "tls", "unix:" + path,
                          self.tls_block())])
        pid = self.g.proc.pid
        try:
            with self.witnessed():
                for n, name in enumerate(("flood", "tls-flood"), 1):
                    before = rss_kib(pid)
                    peak = before
                    c = (self.tls(name) if name.startswith("tls")
                         else self.plain(name))
                    self.clients.append(c)
                    end = time.monotonic() + 30
                    while len(pushed) < n and time.monotonic() < end:
                        peak = max(peak, rss_kib(pid))
                        time.sleep(0.02)  # sampling RSS
                    self.assertEqual(len(pushed), n, "flood never blocked")
                    print("client stops reading (%s): backend pushed %d "
                          "KiB, daemon RSS %d -> peak %d KiB" % (
                              name, pushed[-1] >> 10, before, peak),
                          file=sys.stderr)
                    self.assertLess(pushed[-1], 64 << 20, "no backpressure")
                    if gh.timing_asserts_enabled():
                        self.assertLess(peak - before, 4096,
                                        "daemon RSS grew")
                    # the client goes away with unread data: logged
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                    c.close()
                    line = self.wait_line(name)
                    self.assertEqual(line["result"], "error", line)
                    self.assertTrue(line["reason"].startswith("client "),
                                    line)
        finally:
            lsock.shutdown(socket.SHUT_RDWR)
            lsock.close()
            t.join(5)

    # -- fd exhaustion and reload ------------------------------------------

    def test_fd_exhaustion_survived(self):
        if shutil.which("prlimit") is None:
            self.skipTest("prlimit (util-linux) missing")
        self.start([self.listener("in", "plain", self.echo.address)])
        pid = self.g.proc.pid
        with self.witnessed():
            # leave room for a handful of connections only
            room = len(os.listdir("/proc/%d/fd" % pid)) + 6
            subprocess.run(["prlimit", "--pid", str(pid),
                            "--nofile=%d:%d" % (room, room)], check=True,
                           timeout=10)
            held = []
            try:
                for _ in range(8):
                    c = self.plain("in")
                    c.sendall(b"x")
                    held.append(c)
                self.assertTrue(gh.wait_until(
                    lambda: b"accepting paused" in self.g.log_bytes()),
                    self.g.log_bytes()[-2000:])
                self.assertIsNone(self.g.proc.poll())
            finally:
                for c in held:
                    c.close()
            # room again: a new connection is served
            c = self.plain("in", timeout=20)
            self.assertEqual(gh.exchange(c, b"back"), b"back")
            c.close()
        # every connection that was accepted ended with a log line; the
        # ones caught without an fd for their backend say so
        lines = [l for l in self.g.conn_lines() if l["listener"] == "in"]
        self.assertTrue(lines)
        print("fd exhaustion: %s" % sorted(
            set(l.get("reason", "ok") for l in lines)), file=sys.stderr)
        for l in lines:
            if l["result"] != "ok":
                # caught without an fd for the backend, or reset by our
                # close with the echo unread
                self.assertTrue(l["reason"].startswith("backend") or
                                l["reason"] == "client read failed", l)

    def test_reload_with_broken_config(self):
        self.start([self.listener("tls", "tls", self.echo.address,
                                  self.tls_block())])
        good = self.config_text
        broken = [
            # a certificate file that does not exist
            good.replace(self.certs.server, self.certs.server + ".gone"),
            # a key that is not a key
            good.replace(self.certs.server_key, self.certs.ca),
            # YAML that does not parse
            good + "listeners: [\n",
        ]
        with self.witnessed():
            def reloads():
                return [l for l in self.g.lines()
                        if l.get("event") == "reload"]

            for n, text in enumerate(broken, 1):
                with open(self.g.config, "w") as f:
                    f.write(text)
                before = len(reloads())
                self.g.proc.send_signal(signal.SIGHUP)
                # one or more lines (file:line:col errors first), the
                # last says the running configuration stays
                self.assertTrue(gh.wait_until(
                    lambda: any("running configuration stays" in
                                l.get("msg", "")
                                for l in reloads()[before:])),
                    reloads()[before:])
                events = reloads()[before:]
                self.assertTrue(all(e["level"] != "info" for e in events),
                                events)
                self.assertRegex(" ".join(e["msg"] for e in events),
                                 r"%s:\d+:\d+: " %
                                 os.path.basename(self.g.config))
                # the old configuration keeps serving
                s = self.tls("tls")
                got, _ = gh.tls_roundtrip(s, b"still serving %d" % n)
                self.assertEqual(got, b"still serving %d" % n)
        lines = [l for l in self.g.conn_lines() if l["listener"] == "tls"]
        self.assertEqual(len(lines), 3)

    # -- GSSAPI ------------------------------------------------------------

    def start_gss(self, extra_listeners=()):
        self.start_kdc()
        if not os.access(KNC_PEER, os.X_OK):
            self.skipTest("knc-peer not built")
        # only alice has a route
        ls = [self.listener(
            "gss", "gssapi", self.recorder.address,
            ["gssapi: {keytab: %s, principal: \"host/localhost\"}"
             % self.env["TT_KDC_SERVICE_KEYTAB"]],
            route=["match: {principal: \"alice@TSGATE.TEST\"}"])]
        self.start(ls + list(extra_listeners))

    def knc(self, args, ccache="ALICE", sock=None):
        env = dict(os.environ)
        env.update(self.env)
        env["KRB5CCNAME"] = self.env["TT_KDC_%s_CCACHE" % ccache]
        own = sock is None
        if own:
            sock = self.plain("gss", timeout=30)
            sock.setblocking(True)
        try:
            return subprocess.run([KNC_PEER, "connect"] + args, stdin=sock,
                                  env=env, capture_output=True, timeout=60)
        finally:
            if own:
                sock.close()

    def test_gssapi_garbage_and_disconnect_mid_handshake(self):
        self.start_gss()
        hello = client_hello(self.certs.client_context())
        with self.witnessed():
            # a TLS client on the GSSAPI port
            c = self.plain("gss")
            c.sendall(hello)
            self.assertEqual(gh.recv_all(c), b"")
            c.close()
            self.assert_failed("gss", "gssapi handshake failed", 1)
            # a 4 GiB token length in the handshake
            p = self.knc(["host@localhost", "0", "hs-len4g"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assert_failed("gss", "gssapi handshake failed", 2)
            # a token announced, half sent, then the client leaves
            c = self.plain("gss")
            c.sendall(b"\x00\x00\x02\x00" + os.urandom(256))
            c.close()
            self.assert_failed("gss", "gssapi handshake failed", 3)
            # the same, but the client stays and says nothing more
            c = self.plain("gss")
            c.sendall(b"\x00\x00\x02\x00" + os.urandom(256))
            t = time.monotonic()
            self.assertEqual(gh.recv_all(c, 10), b"")
            if gh.timing_asserts_enabled():
                self.assertLess(time.monotonic() - t, 8)
            c.close()
            self.assert_failed("gss", "handshake timeout", 4)
            # the real client still gets through
            p = self.knc(["host@localhost", "100000"])
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.wait_line("gss", 5)["result"], "ok")

    def test_gssapi_bad_frames_after_handshake(self):
        """4 GiB frame length, replayed, reordered and truncated wrap
        tokens of a real context (knc-peer's misbehaving modes): the
        connection fails, no byte of a bad token reaches the backend."""
        self.start_gss()
        # on a raw route no framer judges PDUs: the tunnel's refusal is
        # a read failure, with the GSSAPI stream's own reason appended
        cases = [("len4g", b"", "client read failed: ", errno.EMSGSIZE),
                 ("replay", b"AAAAA", "client read failed: ",
                  errno.EPROTO),
                 ("reorder", b"", "client read failed: ",
                  errno.EPROTO),
                 ("truncated", b"", "client read failed",
                  errno.ECONNABORTED)]
        with self.witnessed():
            for n, (mode, forwarded, reason, err) in enumerate(cases, 1):
                p = self.knc(["host@localhost", "0", mode])
                self.assertEqual(p.returncode, 0, p.stderr)
                line = self.assert_failed("gss", reason, n)
                self.assertEqual(line["error"], os.strerror(err), line)
                self.assertEqual(line["identity"], "alice@TSGATE.TEST")
                self.assertEqual(line["bytes_in"], len(forwarded), line)
                self.assertTrue(self.recorder.wait_records(n))
                self.assertEqual(self.recorder.records[-1], forwarded,
                                 mode)

    def test_gssapi_bad_frames_on_framed_route(self):
        """On a framed route the tunnel's own refusal (a 4 GiB GSSAPI
        frame length: EMSGSIZE; a wrap token out of order: EPROTO) is
        still a read failure with the GSSAPI reason, not the framer's
        'PDU too large' or 'malformed' verdict."""
        self.start_kdc()
        if not os.access(KNC_PEER, os.X_OK):
            self.skipTest("knc-peer not built")
        self.start([self.listener(
            "gss-framed", "gssapi", self.recorder.address,
            ["gssapi: {keytab: %s, principal: \"host/localhost\"}"
             % self.env["TT_KDC_SERVICE_KEYTAB"]],
            route=["framing: length32"])])
        cases = [("len4g", errno.EMSGSIZE, "frame length 4294967295"),
                 ("reorder", errno.EPROTO, "unwrap")]
        with self.witnessed():
            for n, (mode, err, why) in enumerate(cases, 1):
                sock = self.plain("gss-framed", timeout=30)
                sock.setblocking(True)
                try:
                    p = self.knc(["host@localhost", "0", mode], sock=sock)
                finally:
                    sock.close()
                self.assertEqual(p.returncode, 0, p.stderr)
                line = self.assert_failed("gss-framed",
                                          "client read failed: ", n)
                self.assertIn(why, line["reason"], line)
                self.assertEqual(line["error"], os.strerror(err), line)
                self.assertEqual(line["bytes_in"], 0, line)
                # the backend connection saw no byte
                self.assertTrue(self.recorder.wait_records(n))
                self.assertEqual(self.recorder.records[-1], b"", mode)

    def test_gssapi_captured_client_replayed_on_new_connection(self):
        self.start_gss()
        with self.witnessed():
            # a real client through a recording proxy
            ours, theirs = socket.socketpair()
            up = self.plain("gss", timeout=30)
            captured = bytearray()

            def pump():
                socks = [ours, up]
                while socks:
                    r, _, _ = select.select(socks, [], [], 30)
                    if not r:
                        return
                    for s in r:
                        other = up if s is ours else ours
                        d = s.recv(65536)
                        if not d:
                            socks.remove(s)
                            with contextlib.suppress(OSError):
                                other.shutdown(socket.SHUT_WR)
                            continue
                        if s is ours:
                            captured.extend(d)
                        other.sendall(d)

            t = threading.Thread(target=pump, daemon=True)
            t.start()
            p = self.knc(["host@localhost", "50000"], sock=theirs)
            theirs.close()
            t.join(30)
            ours.close()
            up.close()
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(self.wait_line("gss", 1)["result"], "ok")
            self.assertTrue(self.recorder.wait_records(1))
            self.assertEqual(len(self.recorder.records[0]), 50000)
            # the same bytes, whole, on a new connection: refused
            c = self.plain("gss")
            got = gh.exchange(c, bytes(captured))
            c.close()
            # MIT's replay cache (KRB5RCACHEDIR of the test KDC) knows
            # the authenticator
            line = self.assert_failed("gss", "gssapi handshake failed", 2)
            self.assertIn("replay", line["reason"])
            self.assertEqual(line["bytes_in"], 0, line)
            # no backend saw a byte of the replay (a negative: time
            # passes on purpose, and a byte seen ends the wait early)
            gh.run_for(0.2, lambda: any(self.recorder.records[1:]))
            self.assertEqual(self.recorder.records[1:], [b""] *
                             (len(self.recorder.records) - 1))
            self.assertLessEqual(len(got), 4 + 200)  # no data frames

    def test_gssapi_unknown_and_unrouted_principal(self):
        self.start_gss()
        if not os.access(KADMIN_LOCAL, os.X_OK):
            self.skipTest("kadmin.local missing")
        env = dict(os.environ)
        env.update(self.env)
        # a service the KDC knows but the daemon has no key for
        p = subprocess.run([KADMIN_LOCAL, "-q",
                            "addprinc -randkey other/localhost"],
                           env=env, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with self.witnessed():
            p = self.knc(["other@localhost", "1000"])
            self.assertNotEqual(p.returncode, 0)
            self.assert_failed("gss", "gssapi handshake failed", 1)
            # bob authenticates, but only alice has a route
            p = self.knc(["host@localhost", "1000"], ccache="BOB")
            self.assertNotEqual(p.returncode, 0)
            line = self.assert_failed("gss", "no route", 2)
            self.assertEqual(line["identity"], "bob@TSGATE.TEST")
        self.assertEqual(self.recorder.accepted, 0)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
