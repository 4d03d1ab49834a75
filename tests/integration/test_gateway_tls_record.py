#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Our own TLS 1.3 record layer (listeners[].tls.record_layer: tsgate)
through the real daemon, against real clients: openssl s_client for each
TLS 1.3 suite, with its KeyUpdate commands k (update not requested) and K
(requested) in the middle of a bulk transfer; our own KeyUpdate at a
lowered record limit (key_update_records) with s_client reading on;
gnutls-cli with a --priority per suite; curl fetching a file; Python's
ssl with TLS 1.2 (stays on GnuTLS) and resumption. Every transfer is
checked byte for byte.
"""

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

SUITES = [("TLS_AES_128_GCM_SHA256", "AES-128-GCM"),
          ("TLS_AES_256_GCM_SHA384", "AES-256-GCM"),
          ("TLS_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")]


def need(prog):
    path = subprocess.run(["sh", "-c", "command -v " + prog],
                          capture_output=True, text=True).stdout.strip()
    if not path:
        raise AssertionError(prog + " is missing (scripts/deps installs it)")


def stop(p):
    """End a client: its stdin closes, and it is killed if it lingers."""
    p.stdin.close()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class Reader:
    """Collects a process's stdout in a thread."""

    def __init__(self, stream):
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._run, args=(stream,),
                                  daemon=True)
        self.t.start()

    def _run(self, stream):
        while True:
            b = stream.read1(65536)
            if not b:
                return
            with self.lock:
                self.buf += b

    def has(self, data):
        with self.lock:
            return data in self.buf

    def text(self):
        with self.lock:
            return bytes(self.buf).decode(errors="replace")


class TlsRecordGateway(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        need("openssl")
        need("gnutls-cli")
        self.certs = gh.Certs(self.tmp)

    def start(self, backend, extra_tls=()):
        c = self.certs
        self.port = gh.free_port()
        text = ["log: {level: info, format: json}",
                "listeners:",
                "  - name: in",
                "    listen: \"tcp://127.0.0.1:%d\"" % self.port,
                "    accept: tls",
                "    tls:",
                "      cert: %s" % c.server,
                "      key: %s" % c.server_key,
                "      record_layer: tsgate"]
        text += ["      " + x for x in extra_tls]
        text += ["    routes:",
                 "      - name: r",
                 "        backend: \"%s\"" % backend.address]
        return self.gateway("\n".join(text) + "\n")

    def s_client(self, args):
        # no -ign_eof: it turns the command letters off
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port,
               "-servername", "localhost", "-CAfile", self.certs.ca,
               "-verify_return_error"] + args
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return p, Reader(p.stdout)

    def bulk_with_commands(self, suite, commands):
        """Lines echoed through tsgate, with s_client commands between
        batches; returns s_client's output."""
        p, out = self.s_client(["-tls1_3", "-ciphersuites", suite])
        try:
            self.assertTrue(gh.wait_until(lambda: out.has(b"Verify return"),
                                          20), out.text()[-2000:])
            n = 0
            updates = 0
            for cmd in [None] + commands:
                if cmd is not None:
                    p.stdin.write(cmd + b"\n")
                    p.stdin.flush()
                    # a write of its own: s_client looks at the first
                    # byte of what one read gives it
                    updates += 1
                    self.assertTrue(gh.wait_until(
                        lambda: out.text().count("KEYUPDATE") == updates,
                        10), out.text()[-2000:])
                batch = b"".join(b"L%06d %s\n" % (n + i, b"x" * 3000)
                                 for i in range(40))
                last = b"L%06d " % (n + 39)
                n += 40
                p.stdin.write(batch)
                p.stdin.flush()
                self.assertTrue(gh.wait_until(lambda: out.has(last), 20),
                                out.text()[-2000:])
            text = out.text()
            for i in range(n):
                self.assertIn("L%06d %s" % (i, "x" * 3000), text)
            return text
        finally:
            stop(p)

    def assert_records(self, g, want):
        """Who ran the records of each connection, from its log line."""
        lines = g.wait_conn_lines(len(want))
        self.assertEqual([x.get("tls_records") for x in lines], want)
        self.assertTrue(all(x.get("result") == "ok" for x in lines), lines)
        # the self-check never refused
        self.assertFalse(any("tls_records_refused" in x for x in lines))

    def test_openssl_each_suite_key_updates(self):
        """s_client's k and K between bulk batches, every suite."""
        b = self.backend(mode="echo")
        g = self.start(b)
        for suite, _ in SUITES:
            with self.subTest(suite=suite):
                text = self.bulk_with_commands(suite, [b"k", b"K", b"k"])
                self.assertIn("Cipher is " + suite, text)
                self.assertEqual(text.count("KEYUPDATE"), 3, text[-3000:])
        self.assert_records(g, ["tsgate"] * 3)

    def test_own_key_update_lowered_limit(self):
        """With key_update_records: 3 tsgate updates its key every three
        records; s_client reads on, byte for byte, while it updates its
        own key too."""
        b = self.backend(mode="echo")
        g = self.start(b, ["key_update_records: 3"])
        for suite, _ in SUITES:
            with self.subTest(suite=suite):
                self.bulk_with_commands(suite, [b"K"])
        self.assert_records(g, ["tsgate"] * 3)

    def test_gnutls_cli_each_suite(self):
        b = self.backend(mode="echo")
        g = self.start(b)
        data = b"".join(b"G%05d %s\n" % (i, b"y" * 1000) for i in range(300))
        for _, cipher in SUITES:
            with self.subTest(cipher=cipher):
                prio = ("NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+" +
                        cipher)
                p = subprocess.Popen(
                    ["gnutls-cli", "--x509cafile", self.certs.ca,
                     "--priority", prio, "-p", str(self.port), "localhost"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
                out = Reader(p.stdout)
                try:
                    self.assertTrue(gh.wait_until(
                        lambda: out.has(b"Handshake was completed"), 20),
                        out.text()[-2000:])
                    p.stdin.write(data)
                    p.stdin.flush()
                    self.assertTrue(gh.wait_until(
                        lambda: out.has(b"G00299 "), 20), out.text()[-2000:])
                finally:
                    stop(p)
                text = out.text()
                self.assertIn(cipher, text.replace("_", "-"))
                for i in range(300):
                    self.assertIn("G%05d %s" % (i, "y" * 1000), text)
        self.assert_records(g, ["tsgate"] * 3)

    def test_curl(self):
        """curl fetches 4 MiB over each suite; the sum matches."""
        need("curl")
        body = os.urandom(4 << 20)

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            class Addr:
                address = "tcp://127.0.0.1:%d" % srv.server_address[1]
            g = self.start(Addr)
            for suite, _ in SUITES:
                with self.subTest(suite=suite):
                    p = subprocess.run(
                        ["curl", "-sS", "-m", "30", "--tlsv1.3",
                         "--tls13-ciphers", suite, "--cacert",
                         self.certs.ca, "--resolve",
                         "localhost:%d:127.0.0.1" % self.port,
                         "https://localhost:%d/f" % self.port],
                        capture_output=True, timeout=60)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertEqual(hashlib.sha256(p.stdout).hexdigest(),
                                     hashlib.sha256(body).hexdigest())
            self.assert_records(g, ["tsgate"] * 3)
        finally:
            srv.shutdown()
            srv.server_close()

    def test_tls12_and_resumption(self):
        """TLS 1.2 stays on GnuTLS; a resumed TLS 1.3 session runs on our
        records like a full one (s_client -sess_out/-sess_in)."""
        b = self.backend(mode="line")
        g = self.start(b)
        sess = os.path.join(self.tmp, "s.pem")
        for args in (["-tls1_2"], ["-tls1_3", "-sess_out", sess],
                     ["-tls1_3", "-sess_in", sess]):
            with self.subTest(args=args):
                p = subprocess.run(
                    ["openssl", "s_client", "-connect",
                     "127.0.0.1:%d" % self.port, "-servername", "localhost",
                     "-CAfile", self.certs.ca, "-verify_return_error",
                     "-ign_eof"] + args, input=b"ping\n",
                    capture_output=True, timeout=30)
                text = p.stdout.decode(errors="replace")
                self.assertIn("\nping\n", text)
                if "-sess_in" in args:
                    self.assertIn("Reused,", text)
        self.assert_records(g, ["gnutls", "tsgate", "tsgate"])


if __name__ == "__main__":
    gh.require_binary()
    unittest.main()
