#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile client certificates against an mTLS allow-list, end to end
(issue 13, defects 2 and 3).

The real daemon, a CA made with openssl, client certificates with hostile
names made by tt-cert (NUL and control bytes in SANs and CNs, several CNs,
"CN=" and commas inside other RDN values, wildcards at label boundaries,
IDN labels, very long names) presented by real clients (openssl s_client
and gnutls-cli). For each certificate: the route the daemon chose, the
reason it logged, and the PROXY v2 bytes the backend received (verify
result and SSL_CN sub-TLV).
"""

import os
import shutil
import struct
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

TT_CERT = os.environ.get("TT_CERT",
                         os.path.join(gh.BUILDDIR, "tests", "tt-cert"))

# The allow-list: first match wins, no catch-all route.
ROUTES = [
    ("ops", "{client_san: \"DNS:*.ops.example.com\"}"),
    ("apps", "{client_subject: \"CN=app-*,O=Example\"}"),
    ("multi", "{client_subject: \"CN=app-*,CN=root,O=Example\"}"),
    ("mail", "{client_san: \"email:*@ops.example.com\"}"),
    ("spiffe", "{client_san: \"URI:spiffe://ops/prod/*\"}"),
    ("ip", "{client_san: \"IP:10.0.0.*\"}"),
    ("ip2", "{client_san: \"IP:10.1.*\"}"),
]

GOOD_DNS = "DNS:alice.ops.example.com"
REJECTED = "no route: client certificate names rejected: "

# (name, tt-cert arguments, expected route or None, expected reason for
#  no route, expected PROXY v2 SSL_CN (bytes) for a routed one)
CASES = [
    ("good DNS SAN",
     ["--rdn", "O=Example", "--rdn", "CN=alice", "--san", GOOD_DNS],
     "ops", None, b"alice"),
    ("NUL in DNS SAN",
     ["--rdn", "O=Example", "--rdn", "CN=alice",
      "--san", "DNS:alice.ops.example.com\\x00.evil.com"],
     None, REJECTED + "DNS SAN holds a NUL byte", None),
    ("NUL in DNS SAN, a good SAN first",
     ["--rdn", "CN=alice", "--san", GOOD_DNS,
      "--san", "DNS:bob.ops.example.com\\x00.evil.com"],
     None, REJECTED + "DNS SAN holds a NUL byte", None),
    ("NUL in email SAN",
     ["--rdn", "CN=alice", "--san", GOOD_DNS,
      "--san", "email:alice@ops.example.com\\x00@evil.com"],
     None, REJECTED + "email SAN holds a NUL byte", None),
    ("NUL in URI SAN",
     ["--rdn", "CN=alice", "--san", GOOD_DNS,
      "--san", "URI:spiffe://ops/alice\\x00/evil"],
     None, REJECTED + "URI SAN holds a NUL byte", None),
    ("NUL in CN",
     ["--rdn", "O=Example", "--rdn", "CN=app-1\\x00.evil",
      "--san", GOOD_DNS],
     None, REJECTED + "the subject CN holds a NUL byte", None),
    ("newline in CN",
     ["--rdn", "O=Example", "--rdn", "CN=app-1\\x0aforged",
      "--san", GOOD_DNS],
     None, REJECTED + "the subject CN holds a control byte", None),
    ("NUL in O",
     ["--rdn", "O=Example\\x00evil", "--rdn", "CN=app-1"],
     None, REJECTED + "a subject attribute holds a NUL byte", None),
    ("5-byte IP SAN",
     ["--rdn", "CN=alice", "--san", GOOD_DNS,
      "--san", "IP:\\x7f\\x00\\x00\\x01\\x00"],
     None, REJECTED + "IP SAN is neither 4 nor 16 bytes long", None),
    ("UTF-8 (U-label) DNS SAN",
     ["--rdn", "CN=alice",
      "--san", "DNS:b\\xc3\\xbccher.ops.example.com"],
     None, REJECTED + "DNS SAN holds a non-ASCII byte", None),
    ("two labels under the wildcard",
     ["--rdn", "CN=alice", "--san", "DNS:a.b.ops.example.com"],
     None, "no route", None),
    ("no label under the wildcard",
     ["--rdn", "CN=alice", "--san", "DNS:ops.example.com"],
     None, "no route", None),
    ("wildcard client certificate",
     ["--rdn", "CN=alice", "--san", "DNS:*.ops.example.com"],
     None, "no route", None),
    ("upper-case DNS SAN",
     ["--rdn", "CN=alice", "--san", "DNS:ALICE.OPS.Example.COM"],
     "ops", None, b"alice"),
    ("IDN A-label",
     ["--rdn", "CN=alice", "--san", "DNS:xn--bcher-kva.ops.example.com"],
     "ops", None, b"alice"),
    ("63-byte label, 1000-byte CN",
     ["--rdn", "CN=" + "c" * 1000,
      "--san", "DNS:" + "x" * 63 + ".ops.example.com"],
     "ops", None, b"c" * 1000),
    ("wildcard in CN across an RDN",
     ["--rdn", "O=Example", "--rdn", "OU=Contractors", "--rdn",
      "CN=app-x"],
     None, "no route", None),
    ("escaped comma inside the CN",
     ["--rdn", "O=Example", "--rdn", "CN=app-x\\, OU=Contractors"],
     "apps", None, b"app-x, OU=Contractors"),
    ("CN= inside O",
     ["--rdn", "O=CN=app-1", "--rdn", "CN=root"],
     None, "no route", None),
    ("several CNs: the most specific is matched and handed on",
     ["--rdn", "O=Example", "--rdn", "CN=root", "--rdn", "CN=app-1"],
     "multi", None, b"app-1"),
    ("several CNs do not pass a one-CN pattern",
     ["--rdn", "O=Example", "--rdn", "CN=app-1", "--rdn", "CN=app-2"],
     None, "no route", None),
    ("email local part only",
     ["--rdn", "CN=m", "--san", "email:bob@evil.com@ops.example.com"],
     None, "no route", None),
    ("email allowed",
     ["--rdn", "CN=m", "--san", "email:bob@ops.example.com"],
     "mail", None, b"m"),
    ("URI: '*' is one path segment",
     ["--rdn", "CN=u", "--san", "URI:spiffe://ops/prod/web"],
     "spiffe", None, b"u"),
    ("URI: '*' does not cross a '/'",
     ["--rdn", "CN=u", "--san", "URI:spiffe://ops/prod/x/admin"],
     None, "no route", None),
    ("IP: '*' is one octet",
     ["--rdn", "CN=i", "--san", "IP:\\x0a\\x00\\x00\\x07"],
     "ip", None, b"i"),
    ("IP: '*' does not cross a '.'",
     ["--rdn", "CN=i", "--san", "IP:\\x0a\\x01\\x02\\x03"],
     None, "no route", None),
]


def parse_proxy_v2(rec):
    """(rest of the stream, {tlv type: value}, {ssl sub-tlv: value},
    ssl client byte, verify) of a PROXY v2 header over TCP4."""
    assert rec[:12] == b"\r\n\r\n\x00\r\nQUIT\n", rec[:16]
    assert rec[12:14] == b"\x21\x11", rec[12:14]
    total = struct.unpack(">H", rec[14:16])[0]
    body, rest = rec[16:16 + total], rec[16 + total:]
    tlvs, pos = {}, 12
    while pos < len(body):
        t, n = body[pos], struct.unpack(">H", body[pos + 1:pos + 3])[0]
        tlvs[t] = body[pos + 3:pos + 3 + n]
        pos += 3 + n
    assert pos == len(body)
    ssl_tlv = tlvs[0x20]
    subs, pos = {}, 5
    while pos < len(ssl_tlv):
        t, n = ssl_tlv[pos], struct.unpack(">H", ssl_tlv[pos + 1:pos + 3])[0]
        subs[t] = ssl_tlv[pos + 3:pos + 3 + n]
        pos += 3 + n
    assert pos == len(ssl_tlv)
    return (rest, tlvs, subs, ssl_tlv[0],
            struct.unpack(">I", ssl_tlv[1:5])[0])


class HostileCerts(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)
        self.port = gh.free_port()
        self.backends_by_route = {}
        out = ["log: {level: info, format: json}",
               "listeners:",
               "  - name: mtls",
               "    listen: \"tcp://127.0.0.1:%d\"" % self.port,
               "    accept: tls",
               "    tls:",
               "      cert: %s" % self.certs.server,
               "      key: %s" % self.certs.server_key,
               "      client_ca: %s" % self.certs.ca,
               "      verify_client: require",
               "    routes:"]
        for name, match in ROUTES:
            b = self.backend(mode="recorder")
            self.backends_by_route[name] = b
            out += ["      - name: %s" % name,
                    "        match: %s" % match,
                    "        identity: proxy-v2",
                    "        backend: \"%s\"" % b.address]
        self.g = self.gateway("\n".join(out) + "\n")
        self.serial_cert = 0

    def issue(self, args):
        self.serial_cert += 1
        crt = os.path.join(self.tmp, "hostile%d.crt" % self.serial_cert)
        key = os.path.join(self.tmp, "hostile%d.key" % self.serial_cert)
        subprocess.run([TT_CERT, self.certs.ca, self.certs.ca_key, crt, key]
                       + args, check=True, timeout=30)
        return crt, key

    def s_client(self, crt, key, data):
        return subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
             "-servername", "localhost", "-CAfile", self.certs.ca,
             "-cert", crt, "-key", key, "-verify_return_error",
             "-quiet", "-no_ign_eof"],
            input=data, capture_output=True, timeout=30)

    def gnutls_cli(self, crt, key, data):
        return subprocess.run(
            ["gnutls-cli", "--port", str(self.port), "--x509cafile",
             self.certs.ca, "--x509certfile", crt, "--x509keyfile", key,
             "--sni-hostname", "localhost", "--verify-hostname",
             "localhost", "127.0.0.1"],
            input=data, capture_output=True, timeout=30)

    def check_case(self, n, case, client):
        name, args, route, reason, cn = case
        crt, key = self.issue(args)
        counts = {r: len(b.records) for r, b in
                  self.backends_by_route.items()}
        data = b"hello %d\n" % n
        client(crt, key, data)
        line = self.g.wait_conn_lines(n)[n - 1]
        self.assertEqual(line.get("route"), route, line)
        if route is None:
            self.assertEqual(line["result"], "error", line)
            self.assertEqual(line["reason"], reason, line)
            if reason.startswith(REJECTED):
                # no name of such a certificate is logged as its own
                self.assertNotIn("identity", line)
                self.assertEqual(line["cert_name_error"],
                                 reason[len(REJECTED):], line)
            for r, b in self.backends_by_route.items():
                self.assertEqual(len(b.records), counts[r], r)
            return
        self.assertEqual(line["result"], "ok", line)
        self.assertNotIn("cert_name_error", line)
        b = self.backends_by_route[route]
        self.assertTrue(b.wait_records(counts[route] + 1),
                        "backend %s: %d records (%d before), %d accepted; "
                        "last conn line %r"
                        % (route, len(b.records), counts[route],
                           b.accepted, self.g.conn_lines()[-1:]))
        rest, _, subs, client_bits, verify = parse_proxy_v2(
            b.records[counts[route]])
        self.assertEqual(rest, data)
        self.assertEqual(client_bits, 0x07)
        self.assertEqual(verify, 0)
        self.assertEqual(subs.get(0x22), cn)

    def test_hostile_certificates_s_client(self):
        """Every case through openssl s_client."""
        for n, case in enumerate(CASES, start=1):
            with self.subTest(case=case[0]):
                self.check_case(n, case, self.s_client)

    def test_hostile_certificates_gnutls_cli(self):
        """The NUL-byte and several-CN cases through gnutls-cli."""
        if shutil.which("gnutls-cli") is None:
            self.fail("gnutls-cli is missing (scripts/deps installs "
                      "gnutls-bin)")
        picked = [c for c in CASES if c[0] in (
            "good DNS SAN", "NUL in DNS SAN", "NUL in CN",
            "several CNs: the most specific is matched and handed on",
            "two labels under the wildcard")]
        self.assertEqual(len(picked), 5)
        for n, case in enumerate(picked, start=1):
            with self.subTest(case=case[0]):
                self.check_case(n, case, self.gnutls_cli)

    def test_empty_dns_san(self):
        """An empty DNS SAN: GnuTLS will not even load such a certificate
        as its own, OpenSSL presents it, and the handshake fails (GnuTLS's
        verification refuses it before any name is looked at)."""
        crt, key = self.issue(["--rdn", "CN=alice", "--san", GOOD_DNS,
                               "--san", "DNS:"])
        self.s_client(crt, key, b"must not pass\n")
        line = self.g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error", line)
        self.assertIsNone(line.get("route"), line)
        self.assertTrue(line["reason"].startswith("tls handshake failed"),
                        line)
        self.assertIn("Subject Alternative name", line["reason"])
        for b in self.backends_by_route.values():
            self.assertEqual(b.accepted, 0)

    def test_hostile_sni(self):
        """The SNI is a DNS name too: one label per '*', and names with
        control bytes or spaces (GnuTLS refuses them in the handshake)
        never reach the route match or the log."""
        b = self.backend(mode="recorder")
        port = gh.free_port()
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: sni\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls: {cert: %s, key: %s}\n"
            "    routes:\n"
            "      - name: ops\n"
            "        match: {sni: \"*.ops.example.com\"}\n"
            "        backend: \"%s\"\n"
            % (port, self.certs.server, self.certs.server_key, b.address))
        cases = [("alice.ops.example.com", "ops", None),
                 ("ALICE.OPS.example.com", "ops", None),
                 ("a.b.ops.example.com", None, "no route"),
                 ("ops.example.com", None, "no route"),
                 ("a.ops.example.com\nforged line", None,
                  "disallowed SNI"),
                 ("a.ops.example.com\x01", None, "disallowed SNI"),
                 ("a b.ops.example.com", None, "disallowed SNI")]
        for n, (sni, route, reason) in enumerate(cases, start=1):
            with self.subTest(sni=sni):
                subprocess.run(
                    ["openssl", "s_client", "-connect",
                     "127.0.0.1:%d" % port, "-servername", sni,
                     "-quiet", "-no_ign_eof"],
                    input=b"x\n", capture_output=True, timeout=30)
                line = g.wait_conn_lines(n)[n - 1]
                self.assertEqual(line.get("route"), route, line)
                if reason is not None:
                    self.assertIn(reason, line["reason"], line)
                if "disallowed" in (reason or ""):
                    self.assertNotIn("sni", line)

if __name__ == "__main__":
    gh.require_binary()
    for prog in ("openssl", "gnutls-cli"):
        if shutil.which(prog) is None:
            # scripts/deps installs both: a CI machine without them is
            # broken, not a reason to skip
            print("%s is missing" % prog)
            raise SystemExit(1)
    if not os.access(TT_CERT, os.X_OK):
        print("tt-cert not found at %r" % TT_CERT)
        raise SystemExit(1)
    unittest.main(verbosity=2)
