#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of tsgate with TLS: the real daemon terminating and
originating TLS, driven by Python's ssl, openssl s_client and gnutls-cli,
with certificates made by openssl for the test.

Covered: byte-exact transfers with close_notify both ways, SNI routing,
an mTLS allow-list (client_san / client_subject), handshake failures and
no-route cases in the log, the PROXY v2 SSL TLVs of a TLS client, client
mode through two gateways (plain -> tsgate(connect tls) -> tsgate(accept
tls) -> backend), and the standard TLS clients.
"""

import os
import shutil
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


class TlsGateway(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)
        self.port = gh.free_port()
        self.listen = "tcp://127.0.0.1:%d" % self.port

    def tls_listener(self, routes, verify_client=None, alpn=None,
                     name="tls-in", extra_tls=()):
        c = self.certs
        out = ["log: {level: info, format: json}",
               "listeners:",
               "  - name: %s" % name,
               "    listen: \"%s\"" % self.listen,
               "    accept: tls",
               "    tls:",
               "      cert: %s" % c.server,
               "      key: %s" % c.server_key]
        if verify_client:
            out += ["      client_ca: %s" % c.ca,
                    "      verify_client: %s" % verify_client]
        if alpn:
            out.append("      alpn: [%s]" % ", ".join(alpn))
        out += ["      " + line for line in extra_tls]
        out.append("    routes:")
        for r in routes:
            first = True
            for k, v in r.items():
                out.append(("      - " if first else "        ") +
                           "%s: %s" % (k, v))
                first = False
        return self.gateway("\n".join(out) + "\n")

    def tls_connect(self, server_hostname="localhost", cert=None, key=None,
                    alpn=None, check_hostname=True):
        ctx = self.certs.client_context(cert, key, alpn)
        ctx.check_hostname = check_hostname
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname=server_hostname)

    def test_tls_byte_exact_close_notify(self):
        b = self.backend()
        g = self.tls_listener([{"name": "echo",
                                "backend": "\"%s\"" % b.address}])
        data = os.urandom(1024 * 1024 + 7)
        s = self.tls_connect()
        got, clean = gh.tls_roundtrip(s, data)
        self.assertEqual(got, data)
        # our close_notify reached the backend as EOF, and the backend's
        # end came back to us as tsgate's close_notify
        self.assertTrue(clean)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["bytes_in"], len(data))
        self.assertEqual(line["bytes_out"], len(data))
        self.assertIn(line["tls_version"], ("TLS1.2", "TLS1.3"))
        self.assertTrue(line["tls_cipher"])
        self.assertEqual(line["sni"], "localhost")

    def test_framing_matrix_over_tls(self):
        """accept tls x every framing x unix/TCP backend, and the same
        through client mode (plain -> connect tls -> accept tls)."""
        pdus = {
            "raw": os.urandom(100000),
            "length32": b"".join(struct.pack(">I", n) + os.urandom(n)
                                 for n in (0, 10, 40000)),
            "nbt": b"".join(b"\x00" + struct.pack(">I", n)[1:] +
                            os.urandom(n) for n in (1, 70000)),
            "ncacn": b"".join(bytes([5, 0, 0, 3, 0x10, 0, 0, 0]) +
                              struct.pack("<H", 16 + n) + b"\0\0" +
                              b"\1\0\0\0" + os.urandom(n)
                              for n in (0, 5000)),
        }
        for framing, data in pdus.items():
            for kind in ("unix", "tcp"):
                with self.subTest(framing=framing, backend=kind):
                    self.reset()
                    self.port = gh.free_port()
                    self.listen = "tcp://127.0.0.1:%d" % self.port
                    b = self.backend(kind=kind)
                    far = self.tls_listener([
                        {"name": "f", "framing": framing,
                         "backend": "\"%s\"" % b.address}])
                    s = self.tls_connect()
                    got, clean = gh.tls_roundtrip(s, data)
                    self.assertEqual(got, data)
                    self.assertTrue(clean)
                    # client mode in front, framed on both gateways
                    near_sock = os.path.join(
                        self.tmp, self.next_name("near") + ".sock")
                    self.gateway(
                        "log: {level: info, format: json}\n"
                        "listeners:\n"
                        "  - name: near\n"
                        "    listen: \"unix:%s\"\n"
                        "    accept: plain\n"
                        "    routes:\n"
                        "      - backend: \"tcp://127.0.0.1:%d\"\n"
                        "        connect: tls\n"
                        "        framing: %s\n"
                        "        tls: {ca: %s, sni: localhost}\n"
                        % (near_sock, self.port, framing, self.certs.ca))
                    c = self.connect("unix:" + near_sock)
                    self.assertEqual(gh.exchange(c, data), data)
                    c.close()
                    lines = far.wait_conn_lines(2)
                    self.assertTrue(all(l["result"] == "ok"
                                        for l in lines), lines)

    def test_sni_routing(self):
        a = self.backend(mode="greet", banner=b"backend A\n")
        b = self.backend(mode="greet", banner=b"backend B\n")
        g = self.tls_listener([
            {"name": "to-a", "match": "{sni: a.test}",
             "backend": "\"%s\"" % a.address},
            {"name": "to-b", "match": "{sni: \"*.test\"}",
             "backend": "\"%s\"" % b.address},
        ])
        for sni, banner in (("a.test", b"backend A\n"),
                            ("b.test", b"backend B\n"),
                            ("A.TEST", b"backend A\n")):
            s = self.tls_connect(sni)
            self.assertEqual(gh.recv_exact(s, len(banner)), banner, sni)
            s.close()
        # no route for this name: the connection is closed, and logged
        s = self.tls_connect("localhost")
        self.assertEqual(gh.recv_all(s), b"")
        s.close()
        lines = g.wait_conn_lines(4)
        routes = [l.get("route") for l in lines]
        self.assertEqual(routes.count("to-a"), 2)
        self.assertEqual(routes.count("to-b"), 1)
        noroute = [l for l in lines if l["result"] != "ok"]
        self.assertEqual(len(noroute), 1)
        self.assertEqual(noroute[0]["reason"], "no route")
        self.assertEqual(noroute[0]["sni"], "localhost")

    def test_mtls_allow_list(self):
        b = self.backend(mode="greet", banner=b"welcome\n")
        g = self.tls_listener([
            # client_subject is matched RDN by RDN: the whole DN
            {"name": "corp", "match":
             "{client_san: \"DNS:*.corp.test\", "
             "client_subject: \"CN=alice,O=Example\"}",
             "backend": "\"%s\"" % b.address},
        ], verify_client="require")
        c = self.certs
        # alice is on the list
        s = self.tls_connect(cert=c.alice, key=c.alice_key)
        self.assertEqual(gh.recv_exact(s, 8), b"welcome\n")
        s.close()
        # mallory has a valid certificate, but no matching SAN
        s = self.tls_connect(cert=c.mallory, key=c.mallory_key)
        self.assertEqual(gh.recv_all(s), b"")
        s.close()
        # no certificate at all: the handshake itself fails (with TLS 1.3
        # the client learns it at its first read)
        s = None
        try:
            with self.assertRaises((ssl.SSLError, OSError)):
                s = self.tls_connect()
                s.sendall(b"x")
                if not s.recv(1):
                    raise OSError("closed")
        finally:
            if s is not None:
                s.close()
        lines = g.wait_conn_lines(3)
        by_result = sorted((l["result"], l.get("reason", "")) for l in lines)
        self.assertEqual(by_result[2], ("ok", ""))
        reasons = [r for _, r in by_result[:2]]
        self.assertIn("no route", reasons)
        self.assertTrue(any(r.startswith("tls handshake failed")
                            for r in reasons), reasons)
        ok = [l for l in lines if l["result"] == "ok"][0]
        self.assertIn("CN=alice", ok["identity"])
        self.assertEqual(b.accepted, 1)

    def test_proxy_v2_ssl_tlvs(self):
        b = self.backend(mode="recorder")
        self.tls_listener([{"name": "pp", "identity": "proxy-v2",
                            "backend": "\"%s\"" % b.address}],
                          verify_client="require", alpn=["h2", "http/1.1"])
        c = self.certs
        s = self.tls_connect("a.test", cert=c.alice, key=c.alice_key,
                             alpn=["http/1.1"])
        cport = s.getsockname()[1]
        s.sendall(b"GET")
        s.close()
        self.assertTrue(b.wait_records(1))
        rec = b.records[0]
        self.assertEqual(rec[:12], b"\r\n\r\n\x00\r\nQUIT\n")
        self.assertEqual(rec[12:14], b"\x21\x11")
        total = struct.unpack(">H", rec[14:16])[0]
        body, rest = rec[16:16 + total], rec[16 + total:]
        self.assertEqual(rest, b"GET")
        self.assertEqual(struct.unpack(">H", body[8:10])[0], cport)
        self.assertEqual(struct.unpack(">H", body[10:12])[0], self.port)
        tlvs = {}
        pos = 12
        while pos < len(body):
            t, n = body[pos], struct.unpack(">H", body[pos + 1:pos + 3])[0]
            tlvs[t] = body[pos + 3:pos + 3 + n]
            pos += 3 + n
        self.assertEqual(pos, len(body))
        self.assertEqual(tlvs[0x01], b"http/1.1")  # ALPN
        self.assertEqual(tlvs[0x02], b"a.test")    # AUTHORITY
        ssl_tlv = tlvs[0x20]
        self.assertEqual(ssl_tlv[0], 0x07)  # SSL, CERT_CONN, CERT_SESS
        self.assertEqual(ssl_tlv[1:5], b"\x00\x00\x00\x00")  # verified
        subs = {}
        pos = 5
        while pos < len(ssl_tlv):
            t = ssl_tlv[pos]
            n = struct.unpack(">H", ssl_tlv[pos + 1:pos + 3])[0]
            subs[t] = ssl_tlv[pos + 3:pos + 3 + n]
            pos += 3 + n
        self.assertIn(subs[0x21], (b"TLSv1.2", b"TLSv1.3"))  # VERSION
        self.assertEqual(subs[0x22], b"alice")               # CN
        self.assertTrue(subs[0x23])                          # CIPHER

    def test_verify_optional_reports_result(self):
        b = self.backend(mode="recorder")
        self.tls_listener([{"name": "pp", "identity": "proxy-v2",
                            "backend": "\"%s\"" % b.address}],
                          verify_client="optional")
        skey, scrt = self.certs.stranger()
        c = self.certs
        for cert, key in ((c.alice, c.alice_key), (scrt, skey),
                          (None, None)):
            s = self.tls_connect(cert=cert, key=key)
            s.sendall(b".")
            s.close()
        self.assertTrue(b.wait_records(3))
        verdicts = []
        for rec in b.records:
            total = struct.unpack(">H", rec[14:16])[0]
            body = rec[16 + 12:16 + total]
            pos = 0
            while body[pos] != 0x20:
                pos += 3 + struct.unpack(">H", body[pos + 1:pos + 3])[0]
            ssl_tlv = body[pos + 3:]
            verdicts.append((ssl_tlv[0],
                             struct.unpack(">I", ssl_tlv[1:5])[0]))
        # alice: certificate, verified; stranger: certificate, failed;
        # none: SSL only, "not verified"
        self.assertEqual(sorted(verdicts), [(0x01, 1), (0x07, 0),
                                            (0x07, 1)])

    def test_unverified_certificate_matches_no_name(self):
        """verify_client: optional lets a certificate from an unknown CA
        through the handshake, but its names are nobody's: a route on
        client_subject must not match it."""
        admin = self.backend(mode="greet", banner=b"admin\n")
        rest = self.backend(mode="greet", banner=b"rest\n")
        g = self.tls_listener([
            {"name": "admin", "match": "{client_subject: \"CN=stranger\"}",
             "backend": "\"%s\"" % admin.address},
            {"name": "rest", "backend": "\"%s\"" % rest.address},
        ], verify_client="optional")
        skey, scrt = self.certs.stranger()
        s = self.tls_connect(cert=scrt, key=skey)
        self.assertEqual(gh.recv_exact(s, 5), b"rest\n")
        s.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["route"], "rest")
        self.assertNotIn("identity", line)
        self.assertEqual(admin.accepted, 0)

    def test_min_version(self):
        b = self.backend()
        g = self.tls_listener([{"name": "echo",
                                "backend": "\"%s\"" % b.address}],
                              extra_tls=["min_version: TLS1.3"])
        ctx = self.certs.client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        with self.assertRaises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="localhost")
        raw.close()
        s = self.tls_connect()
        self.assertEqual(s.version(), "TLSv1.3")
        got, clean = gh.tls_roundtrip(s, b"13")
        self.assertEqual(got, b"13")
        lines = g.wait_conn_lines(2)
        self.assertEqual(sorted(l["result"] for l in lines),
                         ["error", "ok"])

    def test_client_mode_two_gateways(self):
        b = self.backend()
        # the far gateway terminates TLS
        self.tls_listener([{"name": "echo",
                            "backend": "\"%s\"" % b.address}],
                          name="far")
        # the near one takes plaintext on a unix socket and originates TLS
        near_sock = os.path.join(self.tmp, "near.sock")
        near = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"unix:%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: out\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls\n"
            "        tls: {ca: %s, sni: localhost}\n"
            % (near_sock, self.port, self.certs.ca))
        data = os.urandom(700000)
        c = self.connect("unix:" + near_sock)
        got = gh.exchange(c, data)
        c.close()
        self.assertEqual(got, data)
        line = near.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["bytes_in"], len(data))
        far = self.gateways[0].wait_conn_lines(1)[0]
        self.assertEqual(far["result"], "ok", far)
        self.assertEqual(far["sni"], "localhost")

    def test_client_mode_rejects_wrong_server(self):
        b = self.backend()
        self.tls_listener([{"name": "echo",
                            "backend": "\"%s\"" % b.address}],
                          name="far")
        near_sock = os.path.join(self.tmp, "near.sock")
        # the server's certificate does not name this host
        near = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"unix:%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: out\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls\n"
            "        tls: {ca: %s, sni: wrong.example}\n"
            % (near_sock, self.port, self.certs.ca))
        c = self.connect("unix:" + near_sock)
        c.sendall(b"secret")
        self.assertEqual(gh.recv_all(c), b"")
        c.close()
        line = near.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error")
        self.assertTrue(line["reason"].startswith("backend connect failed"),
                        line)
        self.assertEqual(b.accepted, 0)

    def test_openssl_s_client(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl")
        b = self.backend(mode="line")
        g = self.tls_listener([{"name": "line",
                                "backend": "\"%s\"" % b.address}])
        p = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
             "-servername", "localhost", "-CAfile", self.certs.ca,
             "-verify_return_error", "-quiet"],
            input=b"ping from s_client\n", capture_output=True, timeout=20)
        self.assertIn(b"ping from s_client\n", p.stdout, p.stderr)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["sni"], "localhost")
        # the backend thread records after its shutdown: tsgate may log
        # the connection first
        self.assertTrue(b.wait_records(1))
        self.assertEqual(b.records[0], b"ping from s_client\n")

    def test_tls_half_close_reply_after_eof(self):
        """gnutls-cli sends close_notify at the end of its stdin
        (gnutls_bye SHUT_WR) and keeps reading: the backend sees EOF and
        only then answers, through tsgate, over the half-closed TLS."""
        if shutil.which("gnutls-cli") is None:
            self.skipTest("no gnutls-cli")
        b = self.backend(mode="count")
        g = self.tls_listener([{"name": "count",
                                "backend": "\"%s\"" % b.address}])
        data = b"z" * 100000
        p = subprocess.run(
            ["gnutls-cli", "--port", str(self.port), "--x509cafile",
             self.certs.ca, "--sni-hostname", "localhost",
             "--verify-hostname", "localhost", "127.0.0.1"],
            input=data, capture_output=True, timeout=20)
        self.assertIn(b"got 100000 bytes\n", p.stdout, p.stderr)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["bytes_in"], 100000)

    def test_end_without_close_notify(self):
        """A client whose TLS stream ends with a bare FIN (no
        close_notify: a crash, or a FIN injected on the path) is logged
        as such (tls_truncated: client); with strict_end the connection
        is an error instead of a clean end. A close_notify is neither."""
        cases = [(False, False), (False, True), (True, False), (True, True)]
        for strict, clean in cases:
            with self.subTest(strict=strict, clean=clean):
                b = self.backend(mode="recorder")
                self.port = gh.free_port()
                self.listen = "tcp://127.0.0.1:%d" % self.port
                g = self.tls_listener(
                    [{"name": "rec", "backend": "\"%s\"" % b.address}],
                    extra_tls=["strict_end: %s" %
                               ("true" if strict else "false")])
                data = os.urandom(50000)
                s = self.tls_connect()
                s.sendall(data)
                if clean:
                    s.unwrap()  # close_notify
                else:
                    # SSLSocket.shutdown drops the TLS layer: a bare FIN
                    s.shutdown(socket.SHUT_WR)
                line = g.wait_conn_lines(1)[0]
                s.close()
                self.assertTrue(b.wait_records(1))
                self.assertEqual(b.records[0], data)
                if clean:
                    self.assertEqual(line["result"], "ok", line)
                    self.assertNotIn("tls_truncated", line)
                elif strict:
                    self.assertEqual(line["result"], "error", line)
                    self.assertEqual(
                        line["reason"], "client read failed: TLS stream "
                        "truncated: peer closed without close_notify", line)
                    self.assertEqual(line["tls_truncated"], "client", line)
                else:
                    self.assertEqual(line["result"], "ok", line)
                    self.assertEqual(line["tls_truncated"], "client", line)
                g.stop()

    def test_client_leaves_while_written(self):
        """A TLS client that hangs up while the gateway still has an
        answer for it. With a bare FIN (no close_notify) GnuTLS
        invalidates the session, and the answer the backend gives after
        the end cannot go: logged as `client write failed`, errno
        ECONNRESET, the truncation and GnuTLS's words in the reason (it
        was `Protocol error`, GnuTLS's INVALID_SESSION unmapped). With a
        reset, the plain stream's ECONNRESET, as before."""
        for how in ("fin", "reset"):
            with self.subTest(how=how):
                # the answer comes only after the client's end
                b = self.backend(mode="count")
                self.port = gh.free_port()
                self.listen = "tcp://127.0.0.1:%d" % self.port
                g = self.tls_listener(
                    [{"name": "count", "backend": "\"%s\"" % b.address}])
                s = self.tls_connect()
                s.sendall(b"x" * 1000)
                if how == "fin":
                    # SSLSocket.shutdown drops the TLS layer: a bare FIN
                    s.shutdown(socket.SHUT_WR)
                else:
                    # SO_LINGER 0: the close is a reset
                    self.assertTrue(gh.wait_until(lambda: b.accepted))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                    socket.socket.close(s)
                line = g.wait_conn_lines(1)[0]
                s.close()
                self.assertEqual(line["result"], "error", line)
                self.assertNotEqual(line["error"], "Protocol error", line)
                self.assertEqual(line["error"], "Connection reset by peer",
                                 line)
                if how == "fin":
                    self.assertEqual(
                        line["reason"], "client write failed: TLS stream "
                        "truncated: peer closed without close_notify "
                        "(GnuTLS: The specified session has been "
                        "invalidated for some reason.)", line)
                    self.assertEqual(line["tls_truncated"], "client", line)
                else:
                    self.assertIn(line["reason"], ("client read failed",
                                                   "client write failed"),
                                  line)
                g.stop()

    def test_client_mode_backend_end_without_close_notify(self):
        """connect: tls to a server that ends its reply with a bare FIN:
        logged as tls_truncated: backend; with the route's strict_end the
        connection is an error. Python's ssl is the TLS server here."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.server, self.certs.server_key)
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        self.addCleanup(lsock.close)
        reply = os.urandom(30000)

        def serve_one():
            raw, _ = lsock.accept()
            with ctx.wrap_socket(raw, server_side=True) as t:
                t.sendall(reply)
                # drops the TLS layer: a bare FIN, no close_notify
                t.shutdown(socket.SHUT_WR)
                t.settimeout(10)
                try:
                    while t.recv(65536):
                        pass
                except OSError:
                    pass

        for strict in (False, True):
            with self.subTest(strict=strict):
                th = threading.Thread(target=serve_one, daemon=True)
                th.start()
                path = os.path.join(self.tmp, "near%d.sock" % strict)
                near = self.gateway(
                    "log: {level: info, format: json}\n"
                    "listeners:\n"
                    "  - name: near\n"
                    "    listen: \"unix:%s\"\n"
                    "    accept: plain\n"
                    "    routes:\n"
                    "      - name: out\n"
                    "        backend: \"tcp://127.0.0.1:%d\"\n"
                    "        connect: tls\n"
                    "        tls: {ca: %s, sni: localhost, strict_end: %s}\n"
                    % (path, lsock.getsockname()[1], self.certs.ca,
                       "true" if strict else "false"))
                c = self.connect("unix:" + path)
                got = b""
                c.settimeout(20)
                try:
                    while True:
                        d = c.recv(65536)
                        if not d:
                            break
                        got += d
                except OSError:
                    pass
                c.close()
                line = near.wait_conn_lines(1)[0]
                th.join(20)
                self.assertEqual(line["tls_truncated"], "backend", line)
                if strict:
                    self.assertEqual(line["result"], "error", line)
                    self.assertEqual(
                        line["reason"], "backend read failed: TLS stream "
                        "truncated: peer closed without close_notify", line)
                else:
                    self.assertEqual(got, reply)
                    self.assertEqual(line["result"], "ok", line)
                near.stop()

    def test_tls_below_1_2_refused_by_default(self):
        """A client that offers only TLS 1.0 or 1.1 gets a protocol_version
        alert from a listener with the default priority, the failure is
        logged, and nothing reaches the backend."""
        if shutil.which("gnutls-cli") is None:
            self.skipTest("no gnutls-cli")
        b = self.backend(mode="line")
        g = self.tls_listener([{"name": "line",
                                "backend": "\"%s\"" % b.address}])
        for n, vers in enumerate(["TLS1.0", "TLS1.1"], start=1):
            p = subprocess.run(
                ["gnutls-cli", "--port", str(self.port), "--x509cafile",
                 self.certs.ca, "--sni-hostname", "localhost",
                 "--priority", "NORMAL:-VERS-ALL:+VERS-" + vers,
                 "127.0.0.1"],
                input=b"must not pass\n", capture_output=True, timeout=20)
            self.assertNotEqual(p.returncode, 0, vers)
            self.assertIn(b"protocol version", p.stdout + p.stderr, vers)
            line = g.wait_conn_lines(n)[n - 1]
            self.assertEqual(line["result"], "error", line)
            self.assertIn("unsupported version", line["reason"], line)
        self.assertEqual(b.accepted, 0)
        self.assertEqual(b.records, [])

    def test_gnutls_cli(self):
        if shutil.which("gnutls-cli") is None:
            self.skipTest("no gnutls-cli")
        b = self.backend(mode="line")
        g = self.tls_listener([{"name": "line",
                                "backend": "\"%s\"" % b.address}])
        p = subprocess.run(
            ["gnutls-cli", "--port", str(self.port), "--x509cafile",
             self.certs.ca, "--sni-hostname", "localhost",
             "--verify-hostname", "localhost", "127.0.0.1"],
            input=b"ping from gnutls-cli\n", capture_output=True,
            timeout=20)
        self.assertIn(b"ping from gnutls-cli\n", p.stdout, p.stderr)
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["sni"], "localhost")
        self.assertTrue(b.wait_records(1))
        self.assertEqual(b.records[0], b"ping from gnutls-cli\n")


if __name__ == "__main__":
    gh.require_binary()
    if shutil.which("openssl") is None:
        print("openssl is needed to make the test certificates: skipping")
        raise SystemExit(gh.SKIP)
    unittest.main(verbosity=2)
