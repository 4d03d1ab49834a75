#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of keys and certificates on a PKCS#11 token: a real
SoftHSM2 token made per test (softhsm2-util, p11tool), tsgate naming the
key (and the certificate) by RFC 7512 URLs. Checked with third-party
clients and servers: openssl s_client sees the certificate whose key
never left the token, through several workers (the token's sessions
reopened after fork) and across a reload; in client mode the key on the
token signs tsgate's client certificate for `openssl s_server -Verify`.
Refusals name the URL, never the PIN: a wrong PIN, a missing object, a
key that is not the certificate's, a pin-value in a config readable by
others, a relative pin-source.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

TOKEN = "tsgate-test"


def tls_listener(port, cert, key, backend, extra=""):
    return ("log: {level: debug, format: json}\n" + extra +
            "listeners:\n"
            "  - name: hsm\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls:\n"
            "      cert: \"%s\"\n"
            "      key: \"%s\"\n"
            "    routes:\n"
            "      - name: echo\n"
            "        backend: \"%s\"\n" % (port, cert, key, backend))


def s_client_cert(port, ca):
    """The PEM certificate openssl s_client was shown (and its verdict)."""
    r = subprocess.run(["openssl", "s_client", "-connect",
                        "127.0.0.1:%d" % port, "-servername", "localhost",
                        "-CAfile", ca, "-verify_return_error", "-showcerts"],
                       input=b"", capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  out, re.S)
    return r.returncode, (m.group(0) if m else None), out


class Pkcs11Keys(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)
        self.token = gh.SoftToken(self.tmp, TOKEN)
        self.token.import_key(self.certs.server_key, "srv", "01")
        self.token.import_cert(self.certs.server, "srv-cert", "01")
        with open(self.certs.server) as f:
            self.server_pem = f.read().strip()

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def check_config(self, path):
        env = dict(os.environ)
        env.update(self.token.env)
        return subprocess.run([gh.TSGATE, "--check-config", "--config", path],
                              env=env, capture_output=True, timeout=60)

    def assert_serves(self, port, n=1):
        for _ in range(n):
            rc, pem, out = s_client_cert(port, self.certs.ca)
            self.assertEqual(rc, 0, out)
            self.assertEqual(pem, self.server_pem)
            self.assertIn("Verify return code: 0 (ok)", out)
            s = self.certs.client_context().wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=10),
                server_hostname="localhost")
            data = os.urandom(30000)
            self.assertEqual(gh.tls_roundtrip(s, data)[0], data)

    def test_key_on_token_with_workers_and_reload(self):
        """The key stays on the token; every worker signs with it (GnuTLS
        reopens the token after fork) and a reload opens it again."""
        echo = self.backend()
        port = gh.free_port()
        text = tls_listener(port, self.certs.server,
                            self.token.url("srv", "private", "source"),
                            echo.address, extra="workers: 2\n")
        g = self.gateway(text, name="hsm", env=self.token.env)
        # enough connections that both workers take some
        self.assert_serves(port, n=8)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b"live connections keep" in g.log_bytes()))
        self.assert_serves(port, n=4)
        g.stop()
        self.assertNotIn(self.token.pin.encode(), g.log_bytes())

    def test_cert_and_key_on_token(self):
        echo = self.backend()
        port = gh.free_port()
        text = tls_listener(port, self.token.url("srv-cert", "cert"),
                            self.token.url("srv", "private", self.token.pin),
                            echo.address)
        # a config that holds a PIN must be private (the key rule)
        old = os.umask(0o077)
        try:
            g = self.gateway(text, name="both", env=self.token.env)
        finally:
            os.umask(old)
        self.assert_serves(port)
        g.stop()
        self.assertNotIn(self.token.pin.encode(), g.log_bytes())

    def test_refusals_name_the_url_not_the_pin(self):
        port = gh.free_port()
        wrong = "".join(reversed(self.token.pin))
        cases = [
            ("wrong-pin", self.certs.server,
             self.token.url("srv", "private", wrong),
             "Error in provided PIN"),
            ("no-object", self.certs.server,
             self.token.url("nothing", "private", "source"),
             "cannot use private key"),
            ("mismatch", self.certs.alice,
             self.token.url("srv", "private", "source"),
             "does not match certificate"),
        ]
        for name, cert, key, want in cases:
            with self.subTest(name):
                path = self.write(name + ".yaml", tls_listener(
                    port, cert, key, "tcp://127.0.0.1:9"))
                r = self.check_config(path)
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 1, err)
                self.assertRegex(err, r"%s\.yaml:\d+:\d+: " % name)
                self.assertIn(want, err)
                self.assertIn("pkcs11:token=%s" % TOKEN, err)
                self.assertNotIn(self.token.pin, err)
                self.assertNotIn(wrong, err)
                # the daemon refuses to start the same way, nothing bound
                env = dict(os.environ)
                env.update(self.token.env)
                d = subprocess.run([gh.TSGATE, "--config", path], env=env,
                                   stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=60)
                self.assertEqual(d.returncode, 1, d)
                self.assertIn(want, d.stderr.decode())
                with self.assertRaises(OSError):
                    socket.create_connection(("127.0.0.1", port),
                                             timeout=2).close()

    def test_pin_secrets_follow_the_key_rule(self):
        # a PIN written into the URL makes the config file a secret
        key = self.token.url("srv", "private", self.token.pin)
        text = tls_listener(gh.free_port(), self.certs.server, key,
                            "tcp://127.0.0.1:9")
        path = self.write("open.yaml", text, mode=0o644)
        r = self.check_config(path)
        self.assertEqual(r.returncode, 1, r)
        self.assertRegex(r.stderr.decode(),
                         r"open\.yaml:\d+:\d+: 'pin-value': '.*open\.yaml' "
                         r"is accessible by others \(mode 0644\)")
        os.chmod(path, 0o600)
        self.assertEqual(self.check_config(path).returncode, 0)

        # a pin-source file readable by others is refused like a key
        os.chmod(self.token.pin_file, 0o644)
        path = self.write("source.yaml", tls_listener(
            gh.free_port(), self.certs.server,
            self.token.url("srv", "private", "source"), "tcp://127.0.0.1:9"))
        r = self.check_config(path)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("'pin-source': '%s' is accessible by others"
                      % self.token.pin_file, r.stderr.decode())
        os.chmod(self.token.pin_file, 0o600)

        # relative pin-source, spaces, no object: errors at the key
        for name, url, want in [
                ("relative", "pkcs11:token=t;object=k?pin-source=pin",
                 "pin-source must be an absolute file name"),
                ("space", "pkcs11:token=my token;object=k",
                 "no spaces or control characters"),
                ("empty", "pkcs11:", "names no object")]:
            with self.subTest(name):
                path = self.write(name + ".yaml", tls_listener(
                    gh.free_port(), self.certs.server, url,
                    "tcp://127.0.0.1:9"))
                r = self.check_config(path)
                self.assertEqual(r.returncode, 1, r)
                self.assertRegex(r.stderr.decode(),
                                 r"%s\.yaml:8:12: 'key': .*%s" % (name, want))

    def test_client_certificate_key_on_token(self):
        """Client mode: tsgate's client certificate is signed on the token;
        openssl s_server demands and verifies it."""
        self.token.import_key(self.certs.alice_key, "alice", "02")
        port = gh.free_port()
        server = subprocess.Popen(
            ["setsid", "openssl", "s_server", "-accept", str(port),
             "-cert", self.certs.server, "-key", self.certs.server_key,
             "-CAfile", self.certs.ca, "-Verify", "2",
             "-verify_return_error", "-rev"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        self.addCleanup(server.wait, 10)
        self.addCleanup(server.kill)
        self.assertTrue(gh.wait_until(lambda: gh.tcp_listening(port)))
        near = os.path.join(self.tmp, "near.sock")
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"unix:%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: out\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls\n"
            "        tls:\n"
            "          ca: %s\n"
            "          sni: localhost\n"
            "          cert: %s\n"
            "          key: \"%s\"\n"
            % (near, port, self.certs.ca, self.certs.alice,
               self.token.url("alice", "private", "source")),
            name="client", env=self.token.env)
        c = self.connect("unix:" + near)
        c.sendall(b"hello token\n")
        buf = bytearray()

        def reversed_line():  # -rev: s_server answers each line reversed
            c.settimeout(0.2)
            try:
                buf.extend(c.recv(4096))
            except socket.timeout:
                pass
            return b"nekot olleh" in buf

        self.assertTrue(gh.wait_until(reversed_line))
        c.close()
        server.kill()
        out = server.stdout.read().decode(errors="replace")
        self.assertIn("CN = alice", out)
        g.stop()
        self.assertNotIn(self.token.pin.encode(), g.log_bytes())


if __name__ == "__main__":
    unittest.main()
