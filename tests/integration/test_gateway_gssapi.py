#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of tsgate with Kerberos: the real daemon accepting
and originating GSSAPI (knc-compatible) streams against a throw-away MIT
KDC (build/tests/tt-kdc), driven by an independent knc peer
(build/tests/integration/knc-peer) and by a second tsgate in client mode.

Covered: principal routing, the knc and PROXY v2 identity hand-off of a
Kerberos client, client mode plain -> tsgate(connect gssapi) ->
tsgate(accept gssapi) -> backend byte-exact, and a client without a
matching route.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

KNC_PEER = os.path.join(gh.BUILDDIR, "tests", "integration", "knc-peer")


def parse_tlvs(body):
    tlvs, pos = {}, 0
    while pos < len(body):
        t = body[pos]
        n = struct.unpack(">H", body[pos + 1:pos + 3])[0]
        tlvs[t] = body[pos + 3:pos + 3 + n]
        pos += 3 + n
    return tlvs, pos


class GssapiGateway(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.kdc = gh.Kdc(self.tmp)
        if not self.kdc.available():
            self.kdc.stop()
            self.skipTest("no KDC (krb5-kdc not installed?)")
        self.env = self.kdc.env
        self.port = gh.free_port()

    def tearDown(self):
        super().tearDown()
        self.kdc.stop()

    def far_gateway(self, routes):
        out = ["log: {level: info, format: json}",
               "listeners:",
               "  - name: krb-in",
               "    listen: \"tcp://127.0.0.1:%d\"" % self.port,
               "    accept: gssapi",
               "    gssapi: {keytab: %s, principal: \"host/localhost\"}"
               % self.env["TT_KDC_SERVICE_KEYTAB"],
               "    routes:"]
        for r in routes:
            first = True
            for k, v in r.items():
                out.append(("      - " if first else "        ") +
                           "%s: %s" % (k, v))
                first = False
        return self.gateway("\n".join(out) + "\n", name="far", env=self.env)

    def near_gateway(self, ccache, name="near", framing="raw"):
        path = os.path.join(self.tmp, name + ".sock")
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: %s\n"
            "    listen: \"unix:%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: to-far\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: gssapi\n"
            "        framing: %s\n"
            "        gssapi: {target: \"host@localhost\", ccache: \"%s\"}\n"
            % (name, path, self.port, framing, ccache), name=name,
            env=self.env)
        return g, "unix:" + path

    def test_client_mode_knc_handoff_and_principal_routing(self):
        alice_b = self.backend(mode="recorder", echo=True)
        bob_b = self.backend(mode="recorder", echo=True)
        far = self.far_gateway([
            {"name": "alice", "match": "{principal: \"alice@*\"}",
             "identity": "knc", "backend": "\"%s\"" % alice_b.address},
            {"name": "bob", "match": "{principal: \"bob@TSGATE.TEST\"}",
             "identity": "proxy-v2", "backend": "\"%s\"" % bob_b.address},
        ])
        near_a, path_a = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                           "near-alice")
        near_b, path_b = self.near_gateway(self.env["TT_KDC_BOB_CCACHE"],
                                           "near-bob")

        data = os.urandom(300000)
        c = self.connect(path_a)
        got = gh.exchange(c, data, timeout=30)
        c.close()
        self.assertTrue(alice_b.wait_records(1))
        # the echo backend sends back the hand-off header too
        self.assertEqual(got, alice_b.records[0])
        head, sep, rest = alice_b.records[0].partition(b"END\n")
        self.assertEqual(sep, b"END\n")
        self.assertEqual(rest, data)
        lines = head.decode().splitlines()
        keys = [l.split(":", 1)[0] for l in lines]
        self.assertEqual(keys, ["MECH", "CREDS", "EXPORT_NAME", "REMOTE_IP",
                                "REMOTE_ADDR", "REMOTE_PORT", "VERSION"])
        kv = dict(l.split(":", 1) for l in lines)
        self.assertEqual(kv["MECH"], "krb5")
        self.assertEqual(kv["CREDS"], "alice@TSGATE.TEST")
        # RFC 2743 exported name: 04 01, OID length, krb5 OID ... in hex
        self.assertTrue(kv["EXPORT_NAME"].startswith(
            "0401000B06092A864886F712010202"), kv["EXPORT_NAME"])
        self.assertIn(bytes.hex(b"alice@TSGATE.TEST").upper(),
                      kv["EXPORT_NAME"])
        self.assertEqual(kv["REMOTE_IP"], "127.0.0.1")

        c = self.connect(path_b)
        got = gh.exchange(c, b"bob's bytes", timeout=30)
        c.close()
        self.assertTrue(bob_b.wait_records(1))
        rec = bob_b.records[0]
        self.assertEqual(got, rec)
        self.assertEqual(rec[:12], b"\r\n\r\n\x00\r\nQUIT\n")
        self.assertEqual(rec[12:14], b"\x21\x11")
        total = struct.unpack(">H", rec[14:16])[0]
        tlvs, end = parse_tlvs(rec[16 + 12:16 + total])
        self.assertEqual(end, total - 12)
        self.assertEqual(tlvs[0xE0], b"bob@TSGATE.TEST")
        self.assertEqual(tlvs[0xE2], b"krb5")
        self.assertNotIn(0x20, tlvs)  # no TLS here
        self.assertEqual(rec[16 + total:], b"bob's bytes")

        flines = far.wait_conn_lines(2)
        by_route = {l["route"]: l for l in flines}
        self.assertEqual(by_route["alice"]["identity"], "alice@TSGATE.TEST")
        self.assertEqual(by_route["alice"]["gss_mech"], "krb5")
        self.assertEqual(by_route["bob"]["identity"], "bob@TSGATE.TEST")
        self.assertTrue(all(l["result"] == "ok" for l in flines), flines)
        self.assertEqual(near_a.wait_conn_lines(1)[0]["result"], "ok")

    def test_knc_peer_client_and_no_route(self):
        if not os.access(KNC_PEER, os.X_OK):
            self.skipTest("knc-peer not built")
        b = self.backend()
        far = self.far_gateway([
            {"name": "alice-only", "match": "{principal: \"alice@*\"}",
             "backend": "\"%s\"" % b.address},
        ])
        env = dict(os.environ)
        env.update(self.env)
        # an independent knc 1.x client: data, authenticated close, echo
        env["KRB5CCNAME"] = self.env["TT_KDC_ALICE_CCACHE"]
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setblocking(True)  # knc-peer does blocking I/O on it
        p = subprocess.run([KNC_PEER, "connect", "host@localhost", "200000"],
                           stdin=s, env=env, capture_output=True, timeout=60)
        s.close()
        self.assertEqual(p.returncode, 0, p.stderr + far.log_bytes())
        # bob authenticates fine but has no route
        env["KRB5CCNAME"] = self.env["TT_KDC_BOB_CCACHE"]
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setblocking(True)
        p = subprocess.run([KNC_PEER, "connect", "host@localhost", "1000"],
                           stdin=s, env=env, capture_output=True, timeout=60)
        s.close()
        self.assertNotEqual(p.returncode, 0)
        lines = far.wait_conn_lines(2)
        ok = [l for l in lines if l["result"] == "ok"]
        bad = [l for l in lines if l["result"] != "ok"]
        self.assertEqual(len(ok), 1)
        self.assertEqual(ok[0]["bytes_in"], 200000)
        self.assertEqual(ok[0]["bytes_out"], 200000)
        self.assertEqual(len(bad), 1)
        self.assertEqual(bad[0]["reason"], "no route")
        self.assertEqual(bad[0]["identity"], "bob@TSGATE.TEST")

    def test_user_pattern_refuses_admin_instance(self):
        """`principal: "*@REALM"` means one-component (user) principals:
        alice/admin, a real principal of the same realm with a real
        ticket, must not take that route (a '*' crossing '/' let it)."""
        if not os.access(KNC_PEER, os.X_OK):
            self.skipTest("knc-peer not built")
        for tool in ("kadmin.local", "kinit"):
            self.assertIsNotNone(shutil.which(tool), tool + " missing")
        env = dict(os.environ)
        env.update(self.env)
        keytab = os.path.join(self.tmp, "alice-admin.keytab")
        ccache = "FILE:" + os.path.join(self.tmp, "alice-admin.cc")
        for q in ("addprinc -randkey alice/admin",
                  "ktadd -k %s alice/admin" % keytab):
            p = subprocess.run(["kadmin.local", "-q", q], env=env,
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(["kinit", "-k", "-t", keytab, "-c", ccache,
                            "alice/admin@TSGATE.TEST"], env=env,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        users = self.backend(mode="recorder", echo=True)
        admins = self.backend(mode="recorder", echo=True)
        far = self.far_gateway([
            {"name": "users", "match": "{principal: \"*@TSGATE.TEST\"}",
             "backend": "\"%s\"" % users.address},
            {"name": "admins",
             "match": "{principal: \"*/admin@TSGATE.TEST\"}",
             "backend": "\"%s\"" % admins.address},
        ])

        def knc(cc):
            env["KRB5CCNAME"] = cc
            s = socket.create_connection(("127.0.0.1", self.port),
                                         timeout=10)
            s.setblocking(True)
            p = subprocess.run([KNC_PEER, "connect", "host@localhost",
                                "1000"], stdin=s, env=env,
                               capture_output=True, timeout=60)
            s.close()
            return p

        self.assertEqual(knc(ccache).returncode, 0, far.log_bytes())
        self.assertEqual(knc(self.env["TT_KDC_ALICE_CCACHE"]).returncode, 0,
                         far.log_bytes())
        lines = far.wait_conn_lines(2)
        by_id = {l["identity"]: l for l in lines}
        self.assertEqual(by_id["alice/admin@TSGATE.TEST"]["route"],
                         "admins", lines)
        self.assertEqual(by_id["alice@TSGATE.TEST"]["route"], "users",
                         lines)
        self.assertTrue(all(l["result"] == "ok" for l in lines), lines)

    def test_framed_client_mode(self):
        b = self.backend(kind="tcp")
        self.far_gateway([{"name": "any", "framing": "length32",
                           "max_pdu": "64KiB",
                           "backend": "\"%s\"" % b.address}])
        near, path = self.near_gateway(self.env["TT_KDC_ALICE_CCACHE"],
                                       framing="length32")
        data = b"".join(struct.pack(">I", n) + os.urandom(n)
                        for n in (0, 1, 65532, 300))
        c = self.connect(path)
        self.assertEqual(gh.exchange(c, data, timeout=30), data)
        c.close()
        line = near.wait_conn_lines(1)[0]
        self.assertEqual(line["pdus_in"], 4)
        self.assertEqual(line["result"], "ok")

    def test_handshake_timeout(self):
        b = self.backend()
        out = ["log: {level: info, format: json}",
               "limits: {handshake_timeout: 300ms}",
               "listeners:",
               "  - name: krb-in",
               "    listen: \"tcp://127.0.0.1:%d\"" % self.port,
               "    accept: gssapi",
               "    gssapi: {keytab: %s, principal: \"host/localhost\"}"
               % self.env["TT_KDC_SERVICE_KEYTAB"],
               "    routes:",
               "      - backend: \"%s\"" % b.address]
        g = self.gateway("\n".join(out) + "\n", env=self.env)
        c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        c.sendall(b"\x00\x00\x01\x00")  # a token announced, never sent
        self.assertEqual(gh.recv_all(c), b"")
        c.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["reason"], "handshake timeout")

    def test_garbage_instead_of_gssapi(self):
        b = self.backend()
        far = self.far_gateway([{"name": "any",
                                 "backend": "\"%s\"" % b.address}])
        c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        c.sendall(b"\xff\xff\xff\xffnot a token")
        self.assertEqual(gh.recv_all(c), b"")
        c.close()
        line = far.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error")
        self.assertTrue(line["reason"].startswith("gssapi handshake failed"),
                        line)
        self.assertEqual(b.accepted, 0)


if __name__ == "__main__":
    gh.require_binary()
    if shutil.which("krb5kdc") is None and not os.path.exists(
            "/usr/sbin/krb5kdc"):
        print("krb5kdc is not installed: skipping")
        raise SystemExit(gh.SKIP)
    unittest.main(verbosity=2)
