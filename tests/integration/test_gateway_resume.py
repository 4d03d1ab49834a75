#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TLS session resumption through the real daemon, against real clients:
openssl s_client (-sess_out/-sess_in, -reconnect, -early_data), gnutls-cli
--resume, Python's ssl, and tsgate's own client mode. Also the first reply
after the handshake for a client that leaves Nagle on.

Covered: TLS 1.3 and 1.2 tickets; several workers (a ticket resumes on
whichever worker accepts the connection); two instances sharing one
ticket_keys_file (and not with different files); session_resumption:
false; tsgate client mode resuming against a tsgate listener (counted in
tsgate_tls_handshakes_total), falling back silently when the far end
restarted, and not resuming with session_resumption: false on the route;
the client identity of an mTLS session after resumption (PROXY v2 TLVs); a
ticket of one listener, or of one SNI certificate entry, never resuming on
another; hostile tickets; early data refused; ticket lifetimes; reloads
that keep or swap the keys; key files that are broken, and keys never in
the log or /metrics.
"""

import base64
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


def need(prog):
    path = subprocess.run(["sh", "-c", "command -v " + prog],
                          capture_output=True, text=True).stdout.strip()
    if not path:
        raise AssertionError(prog + " is missing (scripts/deps installs it)")


class ResumeGateway(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        need("openssl")
        need("gnutls-cli")
        self.certs = gh.Certs(self.tmp)

    def listener_yaml(self, name, port, backend, extra_tls=(),
                      route_extra=(), verify_client=None):
        c = self.certs
        out = ["  - name: %s" % name,
               "    listen: \"tcp://127.0.0.1:%d\"" % port,
               "    accept: tls",
               "    tls:",
               "      cert: %s" % c.server,
               "      key: %s" % c.server_key]
        if verify_client:
            out += ["      client_ca: %s" % c.ca,
                    "      verify_client: %s" % verify_client]
        out += ["      " + x for x in extra_tls]
        out += ["    routes:",
                "      - name: r",
                "        backend: \"%s\"" % backend]
        out += ["        " + x for x in route_extra]
        return out

    def start(self, listeners, workers=1, metrics_port=None, name=None):
        text = ["log: {level: info, format: json}"]
        if workers > 1:
            text.append("workers: %d" % workers)
        if metrics_port:
            text.append("metrics: {listen: \"tcp://127.0.0.1:%d\"}"
                        % metrics_port)
        text.append("listeners:")
        for lines in listeners:
            text += lines
        return self.gateway("\n".join(text) + "\n", name=name)

    def simple(self, extra_tls=(), workers=1, metrics_port=None):
        self.port = gh.free_port()
        # one line back, then the backend closes: s_client -ign_eof ends
        b = self.backend(mode="line")
        g = self.start([self.listener_yaml("in", self.port, b.address,
                                           extra_tls)],
                       workers=workers, metrics_port=metrics_port)
        return g, b

    # -- openssl s_client --------------------------------------------------

    def s_client(self, port, args, data=b"ping\n", timeout=20):
        if "-servername" not in args:
            args = ["-servername", "localhost"] + args
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
               "-CAfile", self.certs.ca, "-verify_return_error",
               "-ign_eof"] + args
        p = subprocess.run(cmd, input=data, capture_output=True,
                           timeout=timeout)
        return p.stdout.decode(errors="replace") + \
            p.stderr.decode(errors="replace")

    def sess_pair(self, port, version, key_sess=None):
        """A full handshake saving its session, then one offering it:
        returns (first output, second output)."""
        sess = key_sess or os.path.join(self.tmp,
                                        self.next_name("sess") + ".pem")
        first = self.s_client(port, [version, "-sess_out", sess])
        self.assertIn("ping", first)
        second = self.s_client(port, [version, "-sess_in", sess])
        self.assertIn("ping", second)
        return first, second, sess

    def test_openssl_sess_out_in(self):
        g, _ = self.simple()
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                first, second, _ = self.sess_pair(self.port, version)
                self.assertIn("New,", first)
                self.assertIn("Reused,", second, second[-2000:])
        lines = g.wait_conn_lines(4)
        self.assertEqual([x.get("resumed") for x in lines],
                         ["no", "yes", "no", "yes"])

    def test_openssl_reconnect(self):
        self.simple()
        # OpenSSL 3.0's -reconnect reconnects before a TLS 1.3 ticket can
        # arrive (it resumes nothing against any server): TLS 1.2 only;
        # TLS 1.3 is covered by -sess_out/-sess_in and gnutls-cli
        for version in ("-tls1_2",):
            with self.subTest(version=version):
                out = self.s_client(self.port, [version, "-reconnect"])
                # the first connection is new, the five reconnections
                # resume
                self.assertEqual(out.count("Reused,"), 5, out[-3000:])

    def test_gnutls_cli_resume(self):
        self.simple()
        for prio in ("NORMAL:-VERS-ALL:+VERS-TLS1.3",
                     "NORMAL:-VERS-ALL:+VERS-TLS1.2"):
            with self.subTest(priority=prio):
                p = subprocess.run(
                    ["gnutls-cli", "--x509cafile", self.certs.ca,
                     "--priority", prio, "--resume", "-p", str(self.port),
                     "localhost"],
                    input=b"", capture_output=True, timeout=30)
                out = p.stdout.decode(errors="replace")
                self.assertIn("This is a resumed session", out, out[-2000:])

    def test_resumption_off(self):
        g, _ = self.simple(extra_tls=["session_resumption: false"])
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                sess = os.path.join(self.tmp, self.next_name("s") + ".pem")
                first = self.s_client(self.port, [version, "-sess_out", sess])
                self.assertIn("ping", first)
                self.assertNotIn("session ticket:", first)
                if os.path.exists(sess):  # TLS 1.2: a session, no ticket
                    out = self.s_client(self.port, [version, "-sess_in",
                                                    sess])
                    self.assertIn("ping", out)
                    self.assertNotIn("Reused,", out)
        out = self.s_client(self.port, ["-tls1_2", "-reconnect"])
        self.assertEqual(out.count("Reused,"), 0)
        self.assertEqual(out.count("New,"), 6)
        self.assertTrue(all(x.get("resumed") == "no"
                            for x in g.conn_lines()))

    def test_session_lifetime(self):
        """The ticket lifetime: 4 h by default (keys rotate every 12 h),
        session_lifetime sets it, and an older ticket makes a full
        handshake."""
        self.simple()
        out = self.s_client(self.port, ["-tls1_3"])
        self.assertIn("lifetime hint: 14400 (seconds)", out)
        self.reset()
        g, _ = self.simple(extra_tls=["session_lifetime: 2s"])
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                first, second, sess = self.sess_pair(self.port, version)
                self.assertIn("lifetime hint: 2 (seconds)", first)
                self.assertIn("Reused,", second)
                # polled: resumed until the ticket is 2 s old, then never
                self.assertTrue(gh.wait_until(
                    lambda: "Reused," not in self.s_client(
                        self.port, [version, "-sess_in", sess]),
                    timeout=gh.DEADLINE, step=0.5))
        for bad, want in (("0s", "must be between 1s and 168h"),
                          ("200h", "must be between 1s and 168h")):
            cfg = os.path.join(self.tmp, self.next_name("c") + ".yaml")
            with open(cfg, "w") as f:
                f.write("listeners:\n" + "\n".join(self.listener_yaml(
                    "in", gh.free_port(), "unix:/nonexistent",
                    ["session_lifetime: %s" % bad])) + "\n")
            p = subprocess.run([gh.TSGATE, "--check-config", "--config",
                                cfg], capture_output=True, text=True,
                               timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("'session_lifetime': " + want, p.stderr)

    def test_workers_share_keys(self):
        """Four workers: every reconnection resumes, whichever worker the
        kernel hands it to."""
        g, _ = self.simple(workers=4)
        sess = os.path.join(self.tmp, "w.pem")
        out = self.s_client(self.port, ["-tls1_3", "-sess_out", sess])
        self.assertIn("New,", out)
        for _ in range(40):
            out = self.s_client(self.port, ["-tls1_3", "-sess_in", sess])
            self.assertIn("Reused,", out)
        lines = g.wait_conn_lines(41)
        workers = {x.get("worker") for x in lines}
        self.assertGreater(len(workers), 1, "one worker took everything")
        self.assertEqual(sum(x.get("resumed") == "yes" for x in lines), 40)

    # -- key files ---------------------------------------------------------

    def keyfile(self, name, nkeys=3, size=80):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            for _ in range(nkeys):
                f.write(base64.b64encode(os.urandom(size)).decode() + "\n")
        os.chmod(path, 0o600)
        return path

    def test_two_instances_share_key_file(self):
        shared = self.keyfile("shared.keys")
        other = self.keyfile("other.keys", size=48)
        b = self.backend(mode="line")
        ports = [gh.free_port() for _ in range(3)]
        for port, f in zip(ports, (shared, shared, other)):
            self.start([self.listener_yaml(
                "in", port, b.address, ["ticket_keys_file: %s" % f])])
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                sess = os.path.join(self.tmp, self.next_name("s") + ".pem")
                out = self.s_client(ports[0], [version, "-sess_out", sess])
                self.assertIn("New,", out)
                out = self.s_client(ports[1], [version, "-sess_in", sess])
                self.assertIn("Reused,", out)
                out = self.s_client(ports[2], [version, "-sess_in", sess])
                self.assertNotIn("Reused,", out)
                self.assertIn("ping", out)

    def test_key_file_errors_and_secrecy(self):
        good = self.keyfile("good.keys")
        with open(good) as f:
            key_text = f.read().split()
        mport = gh.free_port()
        self.port = gh.free_port()
        b = self.backend(mode="line")
        g = self.start([self.listener_yaml(
            "in", self.port, b.address, ["ticket_keys_file: %s" % good])],
            metrics_port=mport)
        self.sess_pair(self.port, "-tls1_3")
        metrics = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % mport, timeout=10).read()
        log = g.log_bytes().decode(errors="replace")
        for k in key_text:
            self.assertNotIn(k, log)
            self.assertNotIn(k, metrics.decode())
            self.assertNotIn(k[:20], log)
        for body, want in ((key_text[0] + "\nnot base64!\n", ":2: not base64"),
                           (base64.b64encode(b"x" * 32).decode() + "\n",
                            ":1: a key must be 48 or 80 bytes"),
                           ("# only a comment\n", ": holds no key")):
            with self.subTest(want=want):
                bad = os.path.join(self.tmp, self.next_name("bad") + ".keys")
                with open(bad, "w") as f:
                    f.write(body)
                os.chmod(bad, 0o600)
                cfg = os.path.join(self.tmp, self.next_name("c") + ".yaml")
                with open(cfg, "w") as f:
                    f.write("listeners:\n" + "\n".join(self.listener_yaml(
                        "in", gh.free_port(), b.address,
                        ["ticket_keys_file: %s" % bad])) + "\n")
                p = subprocess.run([gh.TSGATE, "--check-config", "--config", cfg],
                                   capture_output=True, text=True,
                                   timeout=30)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(bad + want, p.stderr)
                self.assertNotIn(key_text[0], p.stderr)
        os.chmod(good, 0o644)
        cfg = os.path.join(self.tmp, "perm.yaml")
        with open(cfg, "w") as f:
            f.write("listeners:\n" + "\n".join(self.listener_yaml(
                "in", gh.free_port(), b.address,
                ["ticket_keys_file: %s" % good])) + "\n")
        p = subprocess.run([gh.TSGATE, "--check-config", "--config", cfg],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("is accessible by others", p.stderr)

    def reload(self, g):
        def n():
            return len([x for x in g.lines() if x.get("event") == "reload"])
        def done():
            new = [x for x in g.lines() if x.get("event") == "reload"]
            # the last line of a reload: its result
            return len(new) > before and (
                new[-1].get("level") == "info" or
                "configuration stays" in new[-1].get("msg", ""))
        before = n()
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(done))
        return [x for x in g.lines() if x.get("event") == "reload"][before:]

    def test_reload_keeps_or_swaps_keys(self):
        """SIGHUP: the daemon's own key stays (tickets from before resume
        after); a changed key file is taken with the certificates (old
        tickets make one full handshake); a broken one keeps the keys in
        use and the log says why, without a key byte."""
        b = self.backend(mode="line")
        self.port = gh.free_port()
        plain = self.start([self.listener_yaml("in", self.port, b.address)])
        _, _, sess = self.sess_pair(self.port, "-tls1_2")
        self.reload(plain)
        out = self.s_client(self.port, ["-tls1_2", "-sess_in", sess])
        self.assertIn("Reused,", out)

        keys = self.keyfile("r.keys")
        self.port = gh.free_port()
        g = self.start([self.listener_yaml("in", self.port, b.address,
                                           ["ticket_keys_file: %s" % keys])])
        _, _, sess = self.sess_pair(self.port, "-tls1_2")
        self.reload(g)  # same file: same keys
        out = self.s_client(self.port, ["-tls1_2", "-sess_in", sess])
        self.assertIn("Reused,", out)
        # a broken file: the reload is refused, the keys stay
        with open(keys) as f:
            old = f.read()
        with open(keys, "w") as f:
            f.write("@@@ not a key\n")
        lines = self.reload(g)
        text = " ".join(x.get("msg", "") for x in lines)
        self.assertIn(keys + ":1: not base64", text)
        out = self.s_client(self.port, ["-tls1_2", "-sess_in", sess])
        self.assertIn("Reused,", out)
        # a new first key: old tickets do one full handshake
        with open(keys, "w") as f:
            f.write(base64.b64encode(os.urandom(80)).decode() + "\n" + old)
        lines = self.reload(g)
        self.assertEqual(lines[-1].get("level"), "info", lines)
        out = self.s_client(self.port, ["-tls1_2", "-sess_in", sess])
        self.assertIn("ping", out)
        self.assertNotIn("Reused,", out)
        log = g.log_bytes().decode(errors="replace")
        for k in old.split():
            self.assertNotIn(k, log)

    def test_listeners_do_not_share_tickets(self):
        """One key file on two listeners, one without and one with client
        certificates: a ticket of the first must not resume on the
        second (its holder never showed a certificate)."""
        shared = self.keyfile("l.keys")
        b = self.backend(mode="line")
        p1, p2 = gh.free_port(), gh.free_port()
        self.start([
            self.listener_yaml("open", p1, b.address,
                               ["ticket_keys_file: %s" % shared]),
            self.listener_yaml("mtls", p2, b.address,
                               ["ticket_keys_file: %s" % shared],
                               verify_client="require")])
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                sess = os.path.join(self.tmp, self.next_name("s") + ".pem")
                self.s_client(p1, [version, "-sess_out", sess])
                out = self.s_client(p2, [version, "-sess_in", sess])
                self.assertNotIn("Reused,", out)
                self.assertNotIn("ping", out)

    def ticket_of(self, sess):
        """The ticket bytes of an openssl session file, and its DER."""
        text = subprocess.run(["openssl", "sess_id", "-in", sess, "-text",
                               "-noout"], capture_output=True, text=True,
                              check=True).stdout
        der = subprocess.run(["openssl", "sess_id", "-in", sess,
                              "-outform", "DER"], capture_output=True,
                             check=True).stdout
        hexes = []
        on = False
        for line in text.splitlines():
            if "session ticket:" in line:
                on = True
                continue
            m = re.match(r"\s*[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]+)+)", line)
            if on and m:
                hexes += re.findall(r"[0-9a-f]{2}", m.group(1))[:16]
            elif on and hexes:
                break
        ticket = bytes(int(h, 16) for h in hexes)
        self.assertGreater(len(ticket), 32)
        self.assertIn(ticket, der)
        return ticket, der

    def test_sni_entries_do_not_share_tickets(self):
        """Two certificate entries chosen by SNI on one listener, each with
        its route: a ticket resumes under the name it was issued for, and
        a ticket of a.test offered with SNI b.test makes a full handshake
        (b.test's certificate is shown and checked) and takes b's route."""
        c = self.certs
        akey, acrt = c.issue("a", "/CN=a.test", "DNS:a.test")
        bkey, bcrt = c.issue("b", "/CN=b.test", "DNS:b.test")
        ba, bb = self.backend(mode="line"), self.backend(mode="line")
        self.port = gh.free_port()
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: in\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls:\n"
            "      cert:\n"
            "        - {sni: a.test, cert: %s, key: %s}\n"
            "        - {sni: b.test, cert: %s, key: %s}\n"
            "    routes:\n"
            "      - {name: ra, match: {sni: a.test}, backend: \"%s\"}\n"
            "      - {name: rb, match: {sni: b.test}, backend: \"%s\"}\n"
            % (self.port, acrt, akey, bcrt, bkey, ba.address, bb.address))
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                sess = os.path.join(self.tmp, self.next_name("s") + ".pem")
                a = ["-servername", "a.test", "-verify_hostname", "a.test"]
                b = ["-servername", "b.test", "-verify_hostname", "b.test"]
                out = self.s_client(self.port, [version, "-sess_out", sess]
                                    + a)
                self.assertIn("ping", out)
                out = self.s_client(self.port, [version, "-sess_in", sess]
                                    + a)
                self.assertIn("Reused,", out)
                out = self.s_client(self.port, [version, "-sess_in", sess]
                                    + b)
                self.assertNotIn("Reused,", out)
                self.assertIn("subject=CN = b.test", out)
                self.assertIn("ping", out)
        lines = g.wait_conn_lines(6)
        self.assertEqual([(x["route"], x["resumed"]) for x in lines],
                         [("ra", "no"), ("ra", "yes"), ("rb", "no")] * 2)

    def test_hostile_tickets(self):
        """Tickets of random bytes, with a flipped byte (in the key name,
        in the MAC'd body) and a server that never issued them: each is a
        full handshake, and the daemon goes on."""
        g, _ = self.simple()
        for version in ("-tls1_3", "-tls1_2"):
            sess = os.path.join(self.tmp, self.next_name("h") + ".pem")
            self.s_client(self.port, [version, "-sess_out", sess])
            ticket, der = self.ticket_of(sess)
            n = len(ticket)
            for what, bad in (
                    ("random", os.urandom(n)),
                    ("key name", bytes([ticket[0] ^ 1]) + ticket[1:]),
                    ("body", ticket[:n // 2] + bytes([ticket[n // 2] ^ 1]) +
                     ticket[n // 2 + 1:]),
                    ("tail", ticket[:-1] + bytes([ticket[-1] ^ 0x80]))):
                with self.subTest(version=version, ticket=what):
                    d = os.path.join(self.tmp, self.next_name("d") + ".der")
                    with open(d, "wb") as f:
                        f.write(der.replace(ticket, bad))
                    pem = d + ".pem"
                    subprocess.run(["openssl", "sess_id", "-inform", "DER",
                                    "-in", d, "-out", pem], check=True,
                                   capture_output=True)
                    out = self.s_client(self.port, [version, "-sess_in",
                                                    pem])
                    self.assertIn("ping", out)
                    self.assertNotIn("Reused,", out)
        # the genuine ticket still resumes after all that
        out = self.s_client(self.port, ["-tls1_2", "-sess_in", sess])
        self.assertIn("Reused,", out)
        for x in g.conn_lines():
            self.assertEqual(x.get("result"), "ok", x)

    def test_early_data_refused(self):
        _, b = self.simple()
        sess = os.path.join(self.tmp, "e.pem")
        self.s_client(self.port, ["-tls1_3", "-sess_out", sess])
        early = os.path.join(self.tmp, "early.txt")
        with open(early, "wb") as f:
            f.write(b"early\n")
        out = self.s_client(self.port, ["-tls1_3", "-sess_in", sess,
                                        "-early_data", early])
        # tickets say "Max Early Data: 0", so a client sends none (and
        # GnuTLS would skip any: GNUTLS_ENABLE_EARLY_DATA is never set)
        self.assertIn("Max Early Data: 0", out)
        self.assertRegex(out, r"Early data was (not sent|rejected)")
        self.assertNotIn("Early data was accepted", out)
        self.assertIn("Reused,", out)
        self.assertTrue(b.wait_records(2))
        with b.lock:
            self.assertNotIn(b"early", b"".join(b.records))

    # -- mTLS and client mode ----------------------------------------------

    def py_conn(self, ctx, port, session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost",
                            session=session)
        s.sendall(b"ping\n")
        got = b""
        while not got.endswith(b"ping\n"):
            d = s.recv(4096)
            if not d:
                break
            got += d
        # the recorder echoes the PROXY v2 header too
        self.assertTrue(got.endswith(b"ping\n"), got)
        reused, sess = s.session_reused, s.session
        s.close()
        return reused, sess

    def test_mtls_identity_after_resumption(self):
        """The resumed session still carries alice's certificate: the
        route's client_subject match and the PROXY v2 TLVs see it."""
        self.port = gh.free_port()
        b = self.backend(mode="recorder", echo=True)
        g = self.start([self.listener_yaml(
            "in", self.port, b.address, verify_client="require",
            route_extra=["identity: proxy-v2",
                         "match: {client_subject: \"CN=alice,O=Example\"}"])])
        c = self.certs
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version):
                ctx = c.client_context(c.alice, c.alice_key)
                ctx.minimum_version = ctx.maximum_version = version
                reused, sess = self.py_conn(ctx, self.port)
                self.assertFalse(reused)
                reused, _ = self.py_conn(ctx, self.port, sess)
                self.assertTrue(reused)
        self.assertTrue(b.wait_records(4))
        with b.lock:
            recs = list(b.records)
        for r in recs:
            self.assertIn(b"alice", r)
        lines = g.wait_conn_lines(4)
        for x in lines:
            self.assertEqual(x.get("result"), "ok", x)
            self.assertIn("alice", x.get("identity", ""), x)
        self.assertEqual(sum(x.get("resumed") == "yes" for x in lines), 2)

    def test_client_mode_resumes(self):
        mport = gh.free_port()
        self.port = gh.free_port()
        b = self.backend()
        far = self.start([self.listener_yaml("far", self.port, b.address)],
                         metrics_port=mport)
        near_port = gh.free_port()
        self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls\n"
            "        tls: {ca: %s, sni: localhost}\n"
            % (near_port, self.port, self.certs.ca))
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", near_port),
                                         timeout=10)
            got = gh.exchange(s, b"hello %d" % i)
            self.assertEqual(got, b"hello %d" % i)
            s.close()
        lines = far.wait_conn_lines(5)
        self.assertEqual([x.get("resumed") for x in lines],
                         ["no"] + ["yes"] * 4)
        text = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % mport, timeout=10).read().decode()
        self.assertRegex(text, r'tsgate_tls_handshakes_total\{listener="far",'
                         r'resumed="true"\} 4\b')
        self.assertRegex(text, r'tsgate_tls_handshakes_total\{listener="far",'
                         r'resumed="false"\} 1\b')
        # a new far end (a restart: a new ticket secret) refuses the
        # kept ticket: one full handshake, silently, then resumed again
        self.assertEqual(far.stop(), 0)
        self.gateways.remove(far)
        far2 = self.start([self.listener_yaml("far", self.port, b.address)])
        for i in range(3):
            s = socket.create_connection(("127.0.0.1", near_port),
                                         timeout=10)
            self.assertEqual(gh.exchange(s, b"again %d" % i), b"again %d" % i)
            s.close()
        lines = far2.wait_conn_lines(3)
        self.assertEqual([x.get("resumed") for x in lines],
                         ["no", "yes", "yes"])
        self.assertTrue(all(x.get("result") == "ok" for x in lines))

    def test_client_mode_resumption_off(self):
        self.port = gh.free_port()
        b = self.backend()
        far = self.start([self.listener_yaml("far", self.port, b.address)])
        near_port = gh.free_port()
        self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: tls\n"
            "        tls: {ca: %s, sni: localhost, session_resumption: false}\n"
            % (near_port, self.port, self.certs.ca))
        for i in range(3):
            s = socket.create_connection(("127.0.0.1", near_port),
                                         timeout=10)
            self.assertEqual(gh.exchange(s, b"x%d" % i), b"x%d" % i)
            s.close()
        lines = far.wait_conn_lines(3)
        self.assertEqual([x.get("resumed") for x in lines], ["no"] * 3)

    # -- the first reply after the handshake -------------------------------

    def test_no_hello_retry_for_openssl_clients(self):
        """OpenSSL-based clients (s_client, Python, curl) send one X25519
        key share: the default priority takes it, with no
        HelloRetryRequest (a second ClientHello, one more round trip)."""
        self.simple()
        out = self.s_client(self.port, ["-tls1_3", "-msg"])
        self.assertIn("ping", out)
        self.assertEqual(out.count(", ClientHello"), 1, out[:3000])
        self.assertIn("Server Temp Key: X25519", out)

    def test_tickets_per_handshake(self):
        """TLS 1.3: two tickets after a full handshake (two connections
        opened at once both resume), one after a resumption (it replaces
        the one spent, and costs the server one ticket less than
        GnuTLS's two), seen by openssl s_client -msg; a Python client
        that offers each connection's newest session (a ticket once)
        resumes every time."""
        self.simple()
        sess = os.path.join(self.tmp, "tickets.pem")
        full = self.s_client(self.port, ["-tls1_3", "-msg", "-sess_out",
                                         sess])
        self.assertIn("New,", full)
        self.assertEqual(full.count(", NewSessionTicket"), 2, full[-3000:])
        resumed = self.s_client(self.port, ["-tls1_3", "-msg", "-sess_in",
                                            sess])
        self.assertIn("Reused,", resumed)
        self.assertEqual(resumed.count(", NewSessionTicket"), 1,
                         resumed[-3000:])
        ctx = self.certs.client_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"ping\n")
        self.assertEqual(s.recv(64), b"ping\n")
        sess_py = s.session
        s.close()
        for i in range(5):
            raw = socket.create_connection(("127.0.0.1", self.port),
                                           timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="localhost",
                                session=sess_py)
            s.sendall(b"ping\n")
            self.assertEqual(s.recv(64), b"ping\n")
            self.assertTrue(s.session_reused, "connection %d" % i)
            sess_py = s.session
            s.close()

    def first_reply_ms(self, port, n=20):
        ctx = self.certs.client_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        times = []
        for _ in range(n):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            # Nagle stays on, as Python (and most libraries) leave it
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            t0 = time.monotonic()
            s.sendall(b"ping\n")
            got = b""
            while len(got) < 5:
                d = s.recv(64)
                if not d:
                    break
                got += d
            times.append((time.monotonic() - t0) * 1000.0)
            self.assertEqual(got, b"ping\n")
            s.close()
        return statistics.median(times)

    def test_no_stall_after_handshake(self):
        for extra in ([], ["session_resumption: false"]):
            with self.subTest(tls=extra):
                self.reset()
                self.port = gh.free_port()
                b = self.backend(kind="tcp")
                self.start([self.listener_yaml("in", self.port, b.address,
                                               extra)])
                median = self.first_reply_ms(self.port)
                sys.stderr.write("first reply, Nagle on, %s: median %.2f "
                                 "ms\n" % (extra or "tickets", median))
                if gh.timing_asserts_enabled():
                    self.assertLess(median, 20.0)


if __name__ == "__main__":
    unittest.main()
