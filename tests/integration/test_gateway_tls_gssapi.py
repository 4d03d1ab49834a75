#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tls-gssapi (issue 19, item 3): Kerberos inside TLS, bound to the TLS
session by its tls-exporter (RFC 9266), then the data as plain TLS
records. Against a throw-away MIT KDC (build/tests/tt-kdc): a plain
client -> tsgate (connect: tls-gssapi) -> tsgate (accept: tls-gssapi) ->
backend, byte-exact both ways; routing by principal and by principal and
client certificate together; a TLS-terminating relay in between (with a
certificate the client trusts) refused on channel bindings with nothing
reaching the backend; TLS 1.2 refused; a wrong service principal and an
expired ticket refused; hostile token frames inside TLS closing only
their own connection.
"""

import hashlib
import json
import os
import shutil
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


def yaml_routes(routes):
    out = []
    for r in routes:
        first = True
        for k, v in r.items():
            out.append(("      - " if first else "        ") +
                       "%s: %s" % (k, v))
            first = False
    return out


class TlsRelay:
    """Terminates TLS with a certificate the client trusts and opens a
    TLS connection of its own to the far gateway: the man in the middle
    that channel bindings are there to catch. Copies bytes both ways."""

    def __init__(self, certs, key, crt, far_port):
        self.far_port = far_port
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(crt, key)
        self.client_ctx = ssl.create_default_context(cafile=certs.ca)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.relayed_to_far = 0
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    @staticmethod
    def _send(sock, data):
        while data:
            try:
                data = data[sock.send(data):]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                select.select([sock], [sock], [], 30)

    def _relay(self, down, up):
        """One thread for both directions: an SSL socket is never read
        and written by two threads at once (OpenSSL's objects are not
        safe for that: records came out corrupt under load)."""
        other = {down: up, up: down}
        for s in other:
            s.setblocking(False)
        try:
            while True:
                readable, _, _ = select.select(list(other), [], [], 30)
                if not readable:
                    return
                for a in readable:
                    while True:
                        try:
                            d = a.recv(65536)
                        except (ssl.SSLWantReadError,
                                ssl.SSLWantWriteError):
                            break
                        if not d:
                            return
                        if a is down:
                            self.relayed_to_far += len(d)
                        self._send(other[a], d)
                        if a.pending() == 0:
                            break
        except (OSError, ssl.SSLError):
            pass
        finally:
            for s in other:
                try:
                    s.close()
                except OSError:
                    pass

    def _serve(self, c):
        try:
            c.settimeout(30)
            down = self.server_ctx.wrap_socket(c, server_side=True)
            raw = socket.create_connection(("127.0.0.1", self.far_port),
                                           timeout=30)
            up = self.client_ctx.wrap_socket(raw,
                                             server_hostname="localhost")
        except (OSError, ssl.SSLError):
            c.close()
            return
        self._relay(down, up)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TlsGssapiGateway(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.kdc = gh.Kdc(self.tmp)
        if not self.kdc.available():
            self.kdc.stop()
            self.fail("no KDC: scripts/deps installs krb5-kdc")
        self.env = self.kdc.env
        self.certs = gh.Certs(self.tmp)
        self.port = gh.free_port()

    def tearDown(self):
        super().tearDown()
        self.kdc.stop()

    def far_gateway(self, routes, verify_client="none", principal=None,
                    extra_tls="", metrics_port=None):
        out = ["log: {level: debug, format: json}"]
        if metrics_port:
            out.append("metrics: {listen: \"tcp://127.0.0.1:%d\"}"
                       % metrics_port)
        out += ["listeners:",
               "  - name: tg-in",
               "    listen: \"tcp://127.0.0.1:%d\"" % self.port,
               "    accept: tls-gssapi",
               "    tls: {cert: %s, key: %s, client_ca: %s, "
               "verify_client: %s%s}"
               % (self.certs.server, self.certs.server_key, self.certs.ca,
                  verify_client, extra_tls),
               "    gssapi: {keytab: %s, principal: \"%s\"}"
               % (self.env["TT_KDC_SERVICE_KEYTAB"],
                  principal or "host/localhost"),
               "    routes:"] + yaml_routes(routes)
        return self.gateway("\n".join(out) + "\n", name="far", env=self.env)

    def near_gateway(self, ccache, name="near", port=None, cert=None,
                     target="host@localhost", extra_tls="",
                     metrics_port=None):
        path = os.path.join(self.tmp, name + ".sock")
        tls = "ca: %s, verify_name: localhost" % self.certs.ca
        if cert is not None:
            tls += ", cert: %s, key: %s" % cert
        g = self.gateway(
            "log: {level: debug, format: json}\n" +
            ("metrics: {listen: \"tcp://127.0.0.1:%d\"}\n" % metrics_port
             if metrics_port else "") +
            "listeners:\n"
            "  - name: %s\n"
            "    listen: \"unix:%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: to-far\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls-gssapi\n"
            "        tls: {%s%s}\n"
            "        gssapi: {target: \"%s\", ccache: \"%s\"}\n"
            % (name, path, port or self.port, tls, extra_tls, target,
               ccache), name=name, env=self.env)
        return g, "unix:" + path

    def metrics(self, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                    timeout=10) as r:
            return r.read().decode()

    def roundtrip(self, path, data):
        c = self.connect(path, timeout=60)
        got = gh.exchange(c, data, timeout=60)
        c.close()
        return got

    def test_byte_exact_both_ways_and_principal_routing(self):
        alice_b = self.backend(mode="recorder", echo=True)
        far = self.far_gateway([
            {"name": "alice", "match": "{principal: \"alice@TSGATE.TEST\"}",
             "identity": "knc", "backend": "\"%s\"" % alice_b.address},
        ])
        _, path_a = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                      "near-alice")
        _, path_b = self.near_gateway(self.env["TT_KDC_BOB_CCACHE"],
                                      "near-bob")
        data = os.urandom(4 * 1024 * 1024)
        got = self.roundtrip(path_a, data)
        self.assertTrue(alice_b.wait_records(1))
        rec = alice_b.records[0]
        head, sep, rest = rec.partition(b"END\n")
        self.assertEqual(sep, b"END\n")
        kv = dict(l.split(":", 1) for l in head.decode().splitlines())
        self.assertEqual(kv["CREDS"], "alice@TSGATE.TEST")
        self.assertEqual(kv["MECH"], "krb5")
        # what the client sent reached the backend, and the backend's
        # echo (hand-off header first) came back, byte for byte
        self.assertEqual(hashlib.sha256(rest).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        self.assertEqual(hashlib.sha256(got).hexdigest(),
                         hashlib.sha256(rec).hexdigest())

        # bob authenticates, but no route takes his principal
        self.assertEqual(self.roundtrip(path_b, b"bob's bytes"), b"")
        # alice again: her TLS session resumed (tickets), a new exchange
        # bound to the new connection's exporter
        self.assertTrue(self.roundtrip(path_a, b"again").endswith(b"again"))
        lines = far.wait_conn_lines(3)
        again = [l for l in lines if l.get("resumed") == "yes"]
        self.assertEqual(len(again), 1, lines)
        self.assertEqual(again[0]["result"], "ok", again)
        self.assertEqual(again[0]["identity"], "alice@TSGATE.TEST")
        by_id = {l.get("identity"): l for l in lines
                 if l.get("resumed") != "yes"}
        ok = by_id["alice@TSGATE.TEST"]
        self.assertEqual(ok["result"], "ok", lines)
        self.assertEqual(ok["route"], "alice")
        self.assertEqual(ok["bytes_in"], len(data))
        self.assertEqual(ok.get("tls_version"), "TLS1.3", ok)
        self.assertEqual(ok.get("gss_mech"), "krb5", ok)
        bad = by_id["bob@TSGATE.TEST"]
        self.assertEqual(bad["reason"], "no route", lines)
        self.assertEqual(alice_b.accepted, 2)

    def test_client_certificate_and_principal_together(self):
        far_m, near_m = gh.free_port(), gh.free_port()
        both = self.backend(mode="recorder", echo=True)
        far = self.far_gateway([
            {"name": "alice-both",
             "match": "{principal: \"alice@TSGATE.TEST\", "
                      "client_san: \"DNS:alice.corp.test\"}",
             "identity": "proxy-v2", "backend": "\"%s\"" % both.address},
        ], verify_client="optional", metrics_port=far_m)
        _, good = self.near_gateway(
            self.env["TT_KDC_ALICE_CCACHE"], "near-good",
            cert=(self.certs.alice, self.certs.alice_key),
            metrics_port=near_m)
        # the right principal with another certificate, the right
        # certificate with another principal, no certificate at all
        _, wrong_cert = self.near_gateway(
            self.env["TT_KDC_ALICE_CCACHE"], "near-mallory",
            cert=(self.certs.mallory, self.certs.mallory_key))
        _, wrong_krb = self.near_gateway(
            self.env["TT_KDC_BOB_CCACHE"], "near-bob",
            cert=(self.certs.alice, self.certs.alice_key))
        _, no_cert = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                       "near-nocert")
        data = os.urandom(100000)
        got = self.roundtrip(good, data)
        self.assertTrue(both.wait_records(1))
        rec = both.records[0]
        self.assertEqual(got, rec)
        self.assertTrue(rec.endswith(data))
        # PROXY v2 carries both: the SSL TLV (client cert verified) and
        # the principal
        self.assertEqual(rec[:12], b"\r\n\r\n\x00\r\nQUIT\n")
        total = struct.unpack(">H", rec[14:16])[0]
        header = rec[16:16 + total]
        self.assertIn(b"alice@TSGATE.TEST", header)
        self.assertIn(b"TLSv1.3", header)
        self.assertEqual(rec[16 + total:], data)
        for path in (wrong_cert, wrong_krb, no_cert):
            self.assertEqual(self.roundtrip(path, b"x" * 100), b"")
        lines = far.wait_conn_lines(4)
        self.assertEqual(sorted(l["result"] for l in lines),
                         ["error", "error", "error", "ok"], lines)
        for l in lines:
            if l["result"] == "error":
                self.assertEqual(l["reason"], "no route", l)
        self.assertEqual(both.accepted, 1)
        # the handshake histogram has its own kind; the near side's
        # client certificate is watched for expiry like connect: tls's
        text = self.metrics(far_m)
        self.assertRegex(text, r'tsgate_handshake_duration_seconds_count'
                         r'\{listener="tg-in",kind="tls-gssapi"\} 4')
        text = self.metrics(near_m)
        self.assertRegex(text, r'tsgate_certificate_expiry_timestamp_seconds'
                         r'\{[^}]*route="to-far",kind="client"')

    def test_tls_terminating_relay_is_refused(self):
        """A relay with a certificate the client trusts: TLS works on both
        legs, the Kerberos ticket is alice's own, but the two TLS sessions
        have different exporters, so the acceptor's channel bindings do
        not match the authenticator's and nothing reaches the backend."""
        b = self.backend(mode="recorder", echo=True)
        far = self.far_gateway([{"name": "any",
                                 "backend": "\"%s\"" % b.address}])
        rkey, rcrt = self.certs.issue("relay", "/CN=localhost",
                                      "DNS:localhost,IP:127.0.0.1")
        relay = TlsRelay(self.certs, rkey, rcrt, self.port)
        self.addCleanup(relay.close)
        near, path = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                       port=relay.port)
        self.assertEqual(self.roundtrip(path, b"secret " * 1000), b"")
        fline = far.wait_conn_lines(1)[0]
        self.assertEqual(fline["result"], "error", fline)
        self.assertTrue(fline["reason"].startswith(
            "tls-gssapi handshake failed"), fline)
        self.assertIn("hannel binding", fline["reason"], fline)
        self.assertGreater(relay.relayed_to_far, 0)
        nline = near.wait_conn_lines(1)[0]
        self.assertEqual(nline["result"], "error", nline)
        self.assertEqual(b.accepted, 0)
        # the same gateway, the same ticket, no relay: accepted
        _, direct = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                      "near-direct")
        self.assertEqual(self.roundtrip(direct, b"hello"), b"hello")

    def test_tls12_refused(self):
        """TLS 1.2 is refused before any token: its exporter is not
        RFC 9266's, and tls-server-end-point binds only the certificate."""
        b = self.backend()
        far = self.far_gateway([{"name": "any",
                                 "backend": "\"%s\"" % b.address}])
        near, path = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                       extra_tls=", max_version: TLS1.2")
        self.assertEqual(self.roundtrip(path, b"hello"), b"")
        for g in (far, near):
            line = g.wait_conn_lines(1)[0]
            self.assertEqual(line["result"], "error", line)
            self.assertIn("needs TLS 1.3", line["reason"], line)
        self.assertEqual(b.accepted, 0)

    def test_wrong_service_principal_refused(self):
        """The near side asks for a service the far keytab has no key
        for (a real principal of the realm): the far acceptor refuses."""
        env = dict(os.environ)
        env.update(self.env)
        p = subprocess.run(["kadmin.local", "-q", "addprinc -randkey "
                            "imap/localhost"], env=env,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        b = self.backend()
        far = self.far_gateway([{"name": "any",
                                 "backend": "\"%s\"" % b.address}],
                               principal="")
        near, path = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                       target="imap@localhost")
        self.assertEqual(self.roundtrip(path, b"hello"), b"")
        line = far.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error", line)
        self.assertTrue(line["reason"].startswith(
            "tls-gssapi handshake failed"), line)
        self.assertEqual(b.accepted, 0)

    def test_expired_ticket_refused(self):
        env = dict(os.environ)
        env.update(self.env)
        cc = "FILE:" + os.path.join(self.tmp, "short.cc")
        p = subprocess.run(["kinit", "-l", "3s", "-k", "-t",
                            self.env["TT_KDC_ALICE_KEYTAB"], "-c", cc,
                            "alice@TSGATE.TEST"], env=env,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        b = self.backend()
        far = self.far_gateway([{"name": "any",
                                 "backend": "\"%s\"" % b.address}])
        near, path = self.near_gateway(cc)
        # the ticket's lifetime passes on purpose
        gh.run_for(4.5)
        self.assertEqual(self.roundtrip(path, b"hello"), b"")
        line = near.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error", line)
        self.assertIn("xpired", line["reason"], line)
        self.assertEqual(b.accepted, 0)
        # the far side logs once it sees the near one give up
        self.assertEqual(far.wait_conn_lines(1)[0]["result"], "error")

    def hostile(self, payload, half_close=True):
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.assertEqual(s.version(), "TLSv1.3")
        s.sendall(payload)
        try:
            if half_close:
                # a TLS close_notify after the bytes: a truncated token;
                # the gateway's answer is to close the connection
                s.unwrap()
                return b""
            return gh.recv_all(s, 10)
        except ssl.SSLEOFError:
            return b""
        finally:
            s.close()

    def forged_record(self):
        """After a good handshake, a TLS record that no key sealed, written
        straight onto the client's socket under its TLS session."""
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        try:
            with socket.socket(fileno=os.dup(s.fileno())) as dup:
                dup.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
            return gh.recv_all(s, 10)
        except (ssl.SSLError, OSError):
            return b""
        finally:
            s.close()

    def test_hostile_token_frames_close_only_their_connection(self):
        b = self.backend()
        far = self.far_gateway([{"name": "any",
                                 "backend": "\"%s\"" % b.address}])
        _, path = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"])
        # an established tunnel stays up while the hostile ones come
        good = self.connect(path, timeout=30)
        good.sendall(b"before\n")
        self.assertEqual(gh.recv_exact(good, 7), b"before\n")
        cases = [
            ("oversized length", b"\xff\xff\xff\xff" + b"x" * 64, False),
            ("length 0", b"\x00\x00\x00\x00", False),
            ("truncated token", b"\x00\x00\x01\x00" + b"x" * 10, True),
            ("garbage token", b"\x00\x00\x00\x20" + os.urandom(32), False),
            ("not krb5", b"\x00\x00\x00\x10\x60\x0e\x06\x06\x2b\x06\x01"
             b"\x05\x05\x02" + b"\x00" * 6, False),
        ]
        for name, payload, half in cases:
            with self.subTest(name):
                self.assertEqual(self.hostile(payload, half), b"")
        # not a token but a record: the reason says what TLS refused
        self.assertEqual(self.forged_record(), b"")
        lines = far.wait_conn_lines(len(cases) + 1)
        for l in lines:
            self.assertEqual(l["result"], "error", l)
            self.assertTrue(l["reason"].startswith(
                "tls-gssapi handshake failed"), l)
        reasons = " | ".join(l["reason"] for l in lines)
        for why in ("outside 1..", "truncated token", "not krb5",
                    "(TLS: bad TLS record from peer (sent alert Bad record "
                    "MAC))"):
            self.assertIn(why, reasons)
        good.sendall(b"after\n")
        self.assertEqual(gh.recv_exact(good, 6), b"after\n")
        good.close()
        self.assertEqual(b.accepted, 1)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
