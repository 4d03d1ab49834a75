#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of tsgate's key handling and logs with the real
daemon: a private key or keytab readable by others (or owned by another
user) stops start-up, fails --check-config and fails a reload that keeps
the old configuration, each with file:line:col; the override
allow_insecure_key_permissions; and the log of a whole run (start,
listen, conn, reload, stop lines in text and in json) never holds the
private key, nor payload bytes, while each drop has its reason logged and
counted (curl /metrics); at log level debug, a GSSAPI run logs no
ticket, keytab key or payload either. Reloads rotate a TLS certificate and
a service keytab while a connection made before keeps streaming.
"""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


def tls_config(port, cert, key, backend, fmt="json", mport=None,
               extra=""):
    out = ["log: {level: info, format: %s}" % fmt]
    if mport is not None:
        out.append("metrics: {listen: \"tcp://127.0.0.1:%d\"}" % mport)
    out += ["listeners:",
            "  - name: tls-in",
            "    listen: \"tcp://127.0.0.1:%d\"" % port,
            "    accept: tls",
            "    tls:",
            "      cert: %s" % cert,
            "      key: %s" % key,
            "    routes:",
            "      - name: echo",
            "        backend: \"%s\"" % backend]
    return "\n".join(out) + "\n" + extra


def ssl_der(pem):
    import ssl
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def position(path, needle):
    """1-based (line, column) of needle in the file."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            col = line.find(needle)
            if col >= 0:
                return n, col + 1
    raise AssertionError("%s not in %s" % (needle, path))


class KeyPermissions(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)
        self.keydir = os.path.join(self.tmp, "secret")
        os.mkdir(self.keydir)
        self.key = os.path.join(self.keydir, "server.key")
        shutil.copyfile(self.certs.server_key, self.key)

    def check_config(self, cfg):
        return subprocess.run([gh.TSGATE, "--check-config", "--config", cfg],
                              capture_output=True, timeout=30)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_key_readable_by_others(self):
        echo = self.backend()
        port = gh.free_port()
        text = tls_config(port, self.certs.server, self.key, echo.address)
        cfg = self.write("keys.yaml", text)
        line, col = position(cfg, self.key)
        want = ("keys.yaml:%d:%d: 'key': '%s' is accessible by others "
                "(mode 0644)" % (line, col, self.key))

        os.chmod(self.key, 0o644)
        r = self.check_config(cfg)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(want, r.stderr.decode())
        # start-up refuses too: exit 1 with the same error, nothing bound
        r = subprocess.run([gh.TSGATE, "--config", cfg], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(want, r.stderr.decode())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

        # group read of a key that is not root's is refused as well
        if os.geteuid() != 0:
            os.chmod(self.key, 0o640)
            r = self.check_config(cfg)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("is accessible by its group (mode 0640)",
                          r.stderr.decode())
        else:
            os.chmod(self.key, 0o660)
            r = self.check_config(cfg)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("is accessible by its group (mode 0660)",
                          r.stderr.decode())
            # root-owned 0640 (an ssl-cert style group) is fine
            os.chmod(self.key, 0o640)
            r = self.check_config(cfg)
            self.assertEqual(r.returncode, 0, r)

        # the override
        os.chmod(self.key, 0o644)
        over = self.write("override.yaml",
                          text + "allow_insecure_key_permissions: true\n")
        r = self.check_config(over)
        self.assertEqual(r.returncode, 0, r)

        # 0600: starts; made readable again, a reload fails and the old
        # configuration keeps serving
        os.chmod(self.key, 0o600)
        g = self.gateway(text, name="keys")
        data = os.urandom(5000)
        s = self.certs.client_context().wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10),
            server_hostname="localhost")
        self.assertEqual(gh.tls_roundtrip(s, data)[0], data)
        os.chmod(self.key, 0o644)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b"running configuration stays" in g.log_bytes()))
        reload = [l for l in g.lines() if l.get("event") == "reload"]
        self.assertTrue(any(want in l.get("msg", "") for l in reload),
                        reload)
        self.assertTrue(all(l["level"] == "error" for l in reload))
        s = self.certs.client_context().wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10),
            server_hostname="localhost")
        self.assertEqual(gh.tls_roundtrip(s, data)[0], data)
        # fixed: the next reload goes through
        os.chmod(self.key, 0o400)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: any(l.get("event") == "reload" and
                        l["level"] == "info" for l in g.lines())))
        self.assertIsNone(g.proc.poll())

    def test_reload_rotates_certificate(self):
        """SIGHUP re-reads cert and key: new connections get the new
        certificate, a live one keeps its session and streams on."""
        echo = self.backend()
        port = gh.free_port()
        cert = os.path.join(self.keydir, "server.crt")
        shutil.copyfile(self.certs.server, cert)
        os.chmod(self.key, 0o600)
        g = self.gateway(tls_config(port, cert, self.key, echo.address),
                         name="rotate")

        def connect():
            return self.certs.client_context().wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=10),
                server_hostname="localhost")

        with open(self.certs.server, "rb") as f:
            old_der = ssl_der(f.read())
        live = connect()
        self.assertEqual(live.getpeercert(binary_form=True), old_der)
        live.sendall(b"before")
        self.assertEqual(gh.recv_exact(live, 6), b"before")

        new_key, new_cert = self.certs.issue(
            "server2", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
        shutil.copyfile(new_key, self.key)
        shutil.copyfile(new_cert, cert)
        with open(new_cert, "rb") as f:
            new_der = ssl_der(f.read())
        self.assertNotEqual(new_der, old_der)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b"live connections keep" in g.log_bytes()))
        fresh = connect()
        self.assertEqual(fresh.getpeercert(binary_form=True), new_der)
        data = os.urandom(20000)
        self.assertEqual(gh.tls_roundtrip(fresh, data)[0], data)
        live.sendall(b"after")
        self.assertEqual(gh.recv_exact(live, 5), b"after")
        live.unwrap().close()  # close_notify, answered once echoed
        lines = g.wait_conn_lines(2)
        self.assertTrue(all(l["result"] == "ok" for l in lines), lines)

    def test_key_owned_by_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to chown")
        echo = self.backend()
        port = gh.free_port()
        cfg = self.write("owner.yaml", tls_config(
            port, self.certs.server, self.key, echo.address))
        os.chmod(self.key, 0o600)
        os.chown(self.key, 65534, -1)
        line, col = position(cfg, self.key)
        r = self.check_config(cfg)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("owner.yaml:%d:%d: 'key': '%s' is owned by uid 65534, "
                      "not by root or the user tsgate runs as"
                      % (line, col, self.key), r.stderr.decode())
        # ... unless tsgate drops to that user
        user = self.write("owner-user.yaml", "user: nobody\n" + tls_config(
            port, self.certs.server, self.key, echo.address))
        r = self.check_config(user)
        self.assertEqual(r.returncode, 0, r)

    def test_keytab_readable_by_others(self):
        if shutil.which("ktutil") is None:
            self.skipTest("no ktutil")
        conf = self.write("krb5.conf",
                          "[libdefaults]\n default_realm = TSGATE.TEST\n"
                          " dns_lookup_kdc = false\n dns_lookup_realm = "
                          "false\n rdns = false\n")
        env = dict(os.environ, KRB5_CONFIG=conf)
        keytab = os.path.join(self.keydir, "tsgate.keytab")
        subprocess.run(["ktutil"], input=(
            "addent -password -p host/localhost@TSGATE.TEST -k 1 -e "
            "aes256-cts-hmac-sha1-96\nsecret\nwkt %s\nquit\n" % keytab)
            .encode(), env=env, capture_output=True, timeout=30, check=True)
        os.chmod(keytab, 0o604)
        cfg = self.write("kt.yaml", "\n".join([
            "listeners:",
            "  - name: gss-in",
            "    listen: \"tcp://127.0.0.1:%d\"" % gh.free_port(),
            "    accept: gssapi",
            "    gssapi: {keytab: %s}" % keytab,
            "    routes: [{backend: \"tcp://127.0.0.1:9\"}]"]) + "\n")
        line, col = position(cfg, keytab)
        r = subprocess.run([gh.TSGATE, "-t", "-c", cfg], capture_output=True,
                           env=env, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("kt.yaml:%d:%d: 'keytab': '%s' is accessible by "
                      "others (mode 0604)" % (line, col, keytab),
                      r.stderr.decode())
        os.chmod(keytab, 0o600)
        r = subprocess.run([gh.TSGATE, "-t", "-c", cfg], capture_output=True,
                           env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r)


class Logs(gh.GatewayTestCase):

    def setUp(self):
        if shutil.which("curl") is None:
            self.skipTest("no curl")
        super().setUp()
        self.certs = gh.Certs(self.tmp)

    def drops(self, mport):
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "%d" % gh.DEADLINE,
             "http://127.0.0.1:%d/metrics" % mport],
            capture_output=True, timeout=gh.DEADLINE + 10)
        self.assertEqual(r.returncode, 0, r)
        out = {}
        for m in re.finditer(r'^tsgate_connection_drops_total\{listener='
                             r'"tls-in",reason="([a-z_]+)"\} (\d+)$',
                             r.stdout.decode(), re.M):
            out[m.group(1)] = int(m.group(2))
        return out

    def run_once(self, fmt):
        echo = self.backend()
        port, mport = gh.free_port(), gh.free_port()
        text = tls_config(port, self.certs.server, self.certs.server_key,
                          echo.address, fmt=fmt, mport=mport)
        g = self.gateway(text, name="logs-" + fmt)
        marker = ("PAYLOAD-MARKER-%s" % os.urandom(8).hex()).encode()
        data = marker * 200
        s = self.certs.client_context().wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10),
            server_hostname="localhost")
        self.assertEqual(gh.tls_roundtrip(s, data)[0], data)
        # a client that speaks no TLS: a drop with its reason
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(marker + b"\r\n\r\n")
        # at most a TLS alert, then the close
        self.assertIn(gh.recv_all(c, 10)[:1], (b"", b"\x15"))
        c.close()
        self.assertTrue(gh.wait_until(
            lambda: self.drops(mport).get("handshake_failed") == 1))
        self.assertEqual(sum(self.drops(mport).values()), 1)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b"live connections keep" in g.log_bytes()))
        self.assertEqual(g.stop(), 0)
        return g, marker

    def key_body(self):
        with open(self.certs.server_key) as f:
            pem = f.read()
        body = "".join(l for l in pem.splitlines()
                       if l and not l.startswith("-----"))
        return body, base64.b64decode(body)

    def assert_no_secrets(self, log, marker):
        body, der = self.key_body()
        self.assertNotIn(marker, log)
        self.assertNotIn(b"PRIVATE KEY", log)
        # no 16-character piece of the key's PEM body, nor its bytes
        for i in range(0, len(body) - 16, 8):
            self.assertNotIn(body[i:i + 16].encode(), log)
        self.assertNotIn(der[-32:], log)
        self.assertNotIn(der[-32:].hex().encode(), log)

    def test_json_log_of_a_run(self):
        g, marker = self.run_once("json")
        lines = g.lines()
        self.assertTrue(all("raw" not in l for l in lines), lines)
        events = [l["event"] for l in lines]
        for e in ("listen", "start", "conn", "reload", "stop"):
            self.assertIn(e, events)
        self.assertNotIn("conn_step", events)  # debug only; level info
        start = [l for l in lines if l["event"] == "start"]
        self.assertTrue(any("tsgate ready" in l["msg"] for l in start))
        stop = [l["msg"] for l in lines if l["event"] == "stop"]
        self.assertTrue(any("stop accepting" in m for m in stop), stop)
        self.assertIn("tsgate stopped", stop)
        conns = [l for l in lines if l["event"] == "conn"]
        self.assertEqual(len(conns), 2, conns)
        ok = [l for l in conns if l["result"] == "ok"][0]
        self.assertEqual(ok["bytes_in"], len(marker) * 200)
        self.assertEqual(ok["route"], "echo")
        self.assertIn(ok["tls_version"], ("TLS1.2", "TLS1.3"))
        bad = [l for l in conns if l["result"] == "error"][0]
        self.assertTrue(bad["reason"].startswith("tls handshake failed"),
                        bad)
        self.assert_no_secrets(g.log_bytes(), marker)

    def test_text_log_of_a_run(self):
        g, marker = self.run_once("text")
        log = g.log_bytes().decode()
        pat = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) (\w+)( |$)"
        events = []
        for line in log.splitlines():
            m = re.match(pat, line)
            self.assertIsNotNone(m, line)
            events.append((m.group(2), line))
        names = [e for e, _ in events]
        for e in ("listen", "start", "conn", "reload", "stop"):
            self.assertIn(e, names)
        self.assertTrue(any(e == "start" and "tsgate ready" in l
                            for e, l in events))
        self.assertTrue(any(e == "stop" and "tsgate stopped" in l
                            for e, l in events))
        conns = [l for e, l in events if e == "conn"]
        self.assertEqual(len(conns), 2)
        self.assertTrue(any("result=ok" in l and "bytes_in=%d" %
                            (len(marker) * 200) in l for l in conns), conns)
        self.assertTrue(any('reason="tls handshake failed' in l
                            for l in conns), conns)
        self.assert_no_secrets(g.log_bytes(), marker)


class Gssapi(gh.GatewayTestCase):
    """A real KDC: keytab rotation on reload, and no ticket, key or
    payload in the logs of a GSSAPI run."""

    def setUp(self):
        super().setUp()
        self.kdc = gh.Kdc(self.tmp)
        if not self.kdc.available():
            self.kdc.stop()
            self.skipTest("no KDC (krb5-kdc not installed?)")
        self.env = self.kdc.env

    def tearDown(self):
        super().tearDown()
        self.kdc.stop()

    def secret_windows(self, blob):
        """16-byte pieces of a binary secret, skipping printable ones
        (principal names may be logged)."""
        out = []
        for i in range(0, max(len(blob) - 16, 0), 8):
            w = blob[i:i + 16]
            if all(32 <= b < 127 for b in w):
                continue
            out.append(w)
        return out

    def test_reload_rotates_keytab(self):
        """The service key changes (ktadd: new kvno), the keytab file is
        replaced and tsgate reloaded: a client with a new ticket gets
        in, a connection made before streams on."""
        if shutil.which("kadmin.local") is None:
            self.skipTest("no kadmin.local")
        echo = self.backend()
        port = gh.free_port()
        keytab = os.path.join(self.tmp, "service.keytab")
        shutil.copyfile(self.env["TT_KDC_SERVICE_KEYTAB"], keytab)
        os.chmod(keytab, 0o600)
        far = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: krb-in\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: gssapi\n"
            "    gssapi: {keytab: %s, principal: \"host/localhost\"}\n"
            "    routes: [{name: echo, backend: \"%s\"}]\n"
            % (port, keytab, echo.address), name="far", env=self.env)

        def near(who):
            sock = os.path.join(self.tmp, who + ".sock")
            self.gateway(
                "listeners:\n"
                "  - name: %s\n"
                "    listen: \"unix:%s\"\n"
                "    accept: plain\n"
                "    routes:\n"
                "      - backend: \"tcp://127.0.0.1:%d\"\n"
                "        connect: gssapi\n"
                "        gssapi: {target: \"host@localhost\", "
                "ccache: \"%s\"}\n"
                % (who, sock, port,
                   self.env["TT_KDC_%s_CCACHE" % who.upper()]),
                name="near-" + who, env=self.env)
            return "unix:" + sock

        live = self.connect(near("alice"))
        live.sendall(b"before")
        self.assertEqual(gh.recv_exact(live, 6, timeout=20), b"before")

        fresh = os.path.join(self.tmp, "fresh.keytab")
        env = dict(os.environ, **self.env)
        r = subprocess.run(["kadmin.local", "-q",
                            "ktadd -k %s host/localhost" % fresh],
                           env=env, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r)
        shutil.copyfile(fresh, keytab)
        far.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b"live connections keep" in far.log_bytes()))

        c = self.connect(near("bob"))
        self.assertEqual(gh.exchange(c, b"new key", timeout=30), b"new key")
        c.close()
        live.sendall(b"after")
        live.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(live, 20), b"after")
        live.close()
        lines = far.wait_conn_lines(2)
        self.assertEqual(sorted(l["identity"] for l in lines),
                         ["alice@TSGATE.TEST", "bob@TSGATE.TEST"])
        self.assertTrue(all(l["result"] == "ok" for l in lines), lines)

    def test_no_ticket_in_logs(self):
        echo = self.backend()
        port = gh.free_port()
        far = self.gateway(
            "log: {level: debug, format: json}\n"
            "listeners:\n"
            "  - name: krb-in\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: gssapi\n"
            "    gssapi: {keytab: %s, principal: \"host/localhost\"}\n"
            "    routes: [{name: echo, backend: \"%s\"}]\n"
            % (port, self.env["TT_KDC_SERVICE_KEYTAB"], echo.address),
            name="far", env=self.env)
        sock = os.path.join(self.tmp, "near.sock")
        near = self.gateway(
            "log: {level: debug, format: text}\n"
            "listeners:\n"
            "  - name: near\n"
            "    listen: \"unix:%s\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: to-far\n"
            "        backend: \"tcp://127.0.0.1:%d\"\n"
            "        connect: gssapi\n"
            "        gssapi: {target: \"host@localhost\", ccache: \"%s\"}\n"
            % (sock, port, self.env["TT_KDC_ALICE_CCACHE"]),
            name="near", env=self.env)
        marker = ("GSS-PAYLOAD-%s" % os.urandom(8).hex()).encode()
        c = self.connect("unix:" + sock)
        self.assertEqual(gh.exchange(c, marker * 100, timeout=30),
                         marker * 100)
        c.close()
        self.assertEqual(far.wait_conn_lines(1)[0]["identity"],
                         "alice@TSGATE.TEST")
        # near logs text: its conn line is a raw one
        gh.wait_for_log(near, lambda l: " info conn " in l.get("raw", ""))
        self.assertEqual(far.stop(), 0)
        self.assertEqual(near.stop(), 0)
        ccache = self.env["TT_KDC_ALICE_CCACHE"]
        if ccache.startswith("FILE:"):
            ccache = ccache[5:]
        secrets = []
        for path in (ccache, self.env["TT_KDC_SERVICE_KEYTAB"]):
            with open(path, "rb") as f:
                secrets += self.secret_windows(f.read())
        self.assertGreater(len(secrets), 10)
        for g in (far, near):
            log = g.log_bytes()
            self.assertIn(b"conn_step", log)  # debug lines were written
            self.assertNotIn(marker, log)
            low = log.lower()
            for w in secrets:
                self.assertNotIn(w, log)
                self.assertNotIn(w.hex().encode(), low)
                self.assertNotIn(base64.b64encode(w)[:20], log)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
