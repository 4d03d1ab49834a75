#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Credentials that rotate without a signal (issue 17), with the real
daemon and openssl s_client: a directory laid out like a kubelet Secret
mount rotated by the kubelet's atomic "..data" symlink swap, a file
replaced by rename, a file written in place, a broken file (old
certificate kept, error logged and counted), the fallback check with
inotify disabled, reload.watch: false; a long transfer keeps running
across a rotation; the certificate expiry and reload metrics.

The tests that must see inotify at work use reload.interval: 1h, so the
fallback check cannot be what found the change.
"""

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402
from test_gateway_metrics import parse_exposition  # noqa: E402

# how long a rotation may take to show (the watcher settles 0.3 s)
DEADLINE = gh.DEADLINE


def openssl_x509(path, *what):
    return subprocess.run(["openssl", "x509", "-noout", "-in", path] +
                          list(what), check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


def serial_of(path):
    return openssl_x509(path, "-serial").split("=", 1)[1].upper()


def not_after_of(path):
    # notAfter as a Unix time, read by openssl (-enddate, then date -d)
    end = openssl_x509(path, "-enddate").split("=", 1)[1]
    return int(subprocess.run(["date", "-u", "-d", end, "+%s"], check=True,
                              capture_output=True, text=True,
                              timeout=10).stdout)


def served_serial(port):
    """The serial of the certificate a new connection gets, as
    openssl s_client sees it (None when the handshake failed)."""
    try:
        out = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
             "-servername", "localhost"], input="", capture_output=True,
            text=True, timeout=30).stdout
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  out, re.S)
    if m is None:
        return None
    p = subprocess.run(["openssl", "x509", "-noout", "-serial"],
                       input=m.group(0), capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        return None
    return p.stdout.strip().split("=", 1)[1].upper()


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        samples, _ = parse_exposition(r.read().decode())
    return samples


def series(samples, name, **labels):
    """The samples of name whose labels include labels."""
    out = []
    for (n, lab), v in samples.items():
        d = dict(lab)
        if n == name and all(d.get(k) == v2 for k, v2 in labels.items()):
            out.append((d, v))
    return out


class LongTransfer(threading.Thread):
    """A TLS connection through the gateway to the echo backend that
    streams for a while (it spans the rotation) and checks every byte."""

    def __init__(self, port, ca, nbytes=400000):
        super().__init__(daemon=True)
        ctx = ssl.create_default_context(cafile=ca)
        raw = gh.socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.serial = int(self.sock.getpeercert()["serialNumber"], 16)
        self.data = os.urandom(nbytes)
        self.got = bytearray()
        self.sent = 0
        self.error = None
        self.go = threading.Event()

    def run(self):
        try:
            for i in range(0, len(self.data), 4096):
                if i == len(self.data) // 2:
                    # half-way: wait until the test rotated
                    self.go.wait(60)
                self.sock.sendall(self.data[i:i + 4096])
                self.sent = i + 4096
                while len(self.got) < min(self.sent, len(self.data)):
                    d = self.sock.recv(65536)
                    if not d:
                        raise OSError("closed after %d bytes" %
                                      len(self.got))
                    self.got += d
            self.sock.close()
        except (OSError, ssl.SSLError) as e:
            self.error = e


class CredWatch(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        self.certs = gh.Certs(self.tmp)
        self.n = 0

    def new_cert(self):
        """Another server certificate for localhost (a new serial)."""
        self.n += 1
        return self.certs.issue("rot%d" % self.n, "/CN=localhost",
                                "DNS:localhost,IP:127.0.0.1")

    def config(self, cert, key, port, extra="", mport=None, routes=None):
        backend = self.backend()
        out = ["log: {level: debug, format: json}"]
        if mport is not None:
            out.append("metrics: {listen: \"tcp://127.0.0.1:%d\"}" % mport)
        out += [extra,
                "listeners:",
                "  - name: in",
                "    listen: \"tcp://127.0.0.1:%d\"" % port,
                "    accept: tls",
                "    tls: {cert: \"%s\", key: \"%s\"}" % (cert, key),
                "    routes:"]
        out += routes or ["      - backend: \"%s\"" % backend.address]
        return "\n".join(out) + "\n"

    def wait_serial(self, port, want):
        seen = []

        def ok():
            seen.append(served_serial(port))
            return seen[-1] == want
        self.assertTrue(gh.wait_until(ok, DEADLINE, 0.1),
                        "wanted serial %s, saw %s" % (want, seen[-3:]))

    def files(self, name):
        """A directory with a copy of the first server certificate and
        key, as s.crt and s.key."""
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        cert, key = os.path.join(d, "s.crt"), os.path.join(d, "s.key")
        shutil.copyfile(self.certs.server, cert)
        shutil.copyfile(self.certs.server_key, key)
        os.chmod(key, 0o600)
        return cert, key

    def reload_lines(self, g):
        return [l for l in g.lines() if l.get("event") == "reload"]

    # -- the kubelet's Secret volume ------------------------------------

    def kubelet_write(self, mount, stamp, files):
        """What the kubelet's AtomicWriter does: the new data in a fresh
        timestamped directory, a "..data_tmp" symlink to it renamed over
        "..data", the old directory removed; the user-visible names are
        symlinks through "..data" made once."""
        new = os.path.join(mount, stamp)
        os.mkdir(new)
        for name, src in files.items():
            with open(src, "rb") as f, open(os.path.join(new, name),
                                            "wb") as o:
                o.write(f.read())
            os.chmod(os.path.join(new, name), 0o600)
        data = os.path.join(mount, "..data")
        old = os.path.realpath(data) if os.path.islink(data) else None
        tmp = os.path.join(mount, "..data_tmp")
        os.symlink(stamp, tmp)
        os.rename(tmp, data)
        for name in files:
            link = os.path.join(mount, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        if old is not None:
            for name in os.listdir(old):
                os.unlink(os.path.join(old, name))
            os.rmdir(old)

    def test_kubelet_symlink_swap_long_transfer_keeps_running(self):
        mount = os.path.join(self.tmp, "secret")
        os.mkdir(mount)
        self.kubelet_write(mount, "..2026_12_06_10_00_00.000000001",
                           {"tls.crt": self.certs.server,
                            "tls.key": self.certs.server_key})
        port, mport = gh.free_port(), gh.free_port()
        g = self.gateway(self.config(
            os.path.join(mount, "tls.crt"), os.path.join(mount, "tls.key"),
            port, "reload: {watch: true, interval: 1h}", mport))
        old = serial_of(self.certs.server)
        self.assertEqual(served_serial(port), old)

        t = LongTransfer(port, self.certs.ca)
        self.assertEqual(t.serial, int(old, 16))
        t.start()
        self.assertTrue(gh.wait_until(lambda: t.sent > 0))

        key, crt = self.new_cert()
        self.kubelet_write(mount, "..2026_12_06_11_00_00.000000002",
                           {"tls.crt": crt, "tls.key": key})
        self.wait_serial(port, serial_of(crt))
        t.go.set()
        t.join(60)
        self.assertIsNone(t.error)
        self.assertEqual(bytes(t.got), t.data)

        lines = self.reload_lines(g)
        self.assertTrue(any(l["level"] == "info" and "changed" in l["msg"]
                            for l in lines), lines)
        s = scrape(mport)
        self.assertEqual(series(s, "tsgate_reloads_total",
                                result="ok")[0][1], 1)
        self.assertEqual(series(s, "tsgate_last_reload_successful")[0][1],
                         1)
        exp = series(s, "tsgate_certificate_expiry_timestamp_seconds",
                     listener="in", kind="server")
        self.assertEqual([d["serial"] for d, _ in exp], [serial_of(crt)])

        # the next swap is seen too (the watch follows the new directory)
        key, crt = self.new_cert()
        self.kubelet_write(mount, "..2026_12_06_12_00_00.000000003",
                           {"tls.crt": crt, "tls.key": key})
        self.wait_serial(port, serial_of(crt))

    # -- plain files ------------------------------------------------------

    def test_rename_over(self):
        cert, key = self.files("plain")
        port = gh.free_port()
        self.gateway(self.config(cert, key, port,
                                 "reload: {interval: 1h}"))
        self.assertEqual(served_serial(port), serial_of(self.certs.server))
        nkey, ncrt = self.new_cert()
        # an editor's or cert-manager's write-to-temp-then-rename
        for src, dst in ((nkey, key), (ncrt, cert)):
            tmp = dst + ".tmp"
            with open(src, "rb") as f, open(tmp, "wb") as o:
                o.write(f.read())
            os.chmod(tmp, 0o600)
            os.rename(tmp, dst)
        self.wait_serial(port, serial_of(ncrt))

    def write_in_place(self, dst, src):
        with open(src, "rb") as f:
            data = f.read()
        with open(dst, "r+b") as o:
            o.truncate(0)
            o.write(data)

    def test_written_in_place(self):
        cert, key = self.files("inplace")
        port = gh.free_port()
        self.gateway(self.config(cert, key, port,
                                 "reload: {interval: 1h}"))
        ino = os.stat(cert).st_ino
        nkey, ncrt = self.new_cert()
        self.write_in_place(key, nkey)
        self.write_in_place(cert, ncrt)
        self.assertEqual(os.stat(cert).st_ino, ino)
        self.wait_serial(port, serial_of(ncrt))

    def test_broken_file_keeps_old_certificate(self):
        cert, key = self.files("broken")
        port, mport = gh.free_port(), gh.free_port()
        g = self.gateway(self.config(cert, key, port,
                                     "reload: {interval: 1h}", mport))
        old = serial_of(self.certs.server)
        tmp = cert + ".tmp"
        with open(tmp, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n"
                    "-----END CERTIFICATE-----\n")
        os.rename(tmp, cert)

        # the per-error lines come first, the summary line last: wait
        # for the summary so every line of this reload has been read
        def failed():
            return any(l["level"] == "error" and "stay" in l["msg"]
                       for l in self.reload_lines(g))
        self.assertTrue(gh.wait_until(failed, DEADLINE),
                        self.reload_lines(g))
        errors = [l["msg"] for l in g.lines()
                  if l.get("event") == "reload" and l["level"] == "error"]
        # why, at the config file's line and column, naming the file
        self.assertTrue(any(re.search(r"\.yaml:\d+:\d+: .*s\.crt", m)
                            for m in errors), errors)
        self.assertTrue(any("changed" in m and "stay" in m for m in errors),
                        errors)
        self.assertEqual(served_serial(port), old)
        s = scrape(mport)
        self.assertEqual(series(s, "tsgate_reloads_total",
                                result="failed")[0][1], 1)
        self.assertEqual(series(s, "tsgate_last_reload_successful")[0][1],
                         0)
        # the broken file is not retried in a loop: counted once
        gh.run_for(1.0)
        self.assertEqual(series(scrape(mport), "tsgate_reloads_total",
                                result="failed")[0][1], 1)
        # repaired: picked up
        nkey, ncrt = self.new_cert()
        self.write_in_place(key, nkey)
        with open(ncrt, "rb") as f, open(tmp, "wb") as o:
            o.write(f.read())
        os.rename(tmp, cert)
        self.wait_serial(port, serial_of(ncrt))
        self.assertEqual(series(scrape(mport),
                                "tsgate_last_reload_successful")[0][1], 1)

    def test_poll_fallback_without_inotify(self):
        cert, key = self.files("poll")
        port = gh.free_port()
        self.gateway(self.config(cert, key, port,
                                 "reload: {interval: 500ms}"),
                     env={"TSGATE_RELOAD_NO_INOTIFY": "1"})
        nkey, ncrt = self.new_cert()
        self.write_in_place(key, nkey)
        self.write_in_place(cert, ncrt)
        self.wait_serial(port, serial_of(ncrt))

    def test_inotify_disabled_and_long_interval_sees_nothing(self):
        """The counterpart of the test above: with inotify off, only the
        check every interval finds a change — so the tests with
        interval: 1h really saw inotify at work."""
        cert, key = self.files("nopoll")
        port = gh.free_port()
        g = self.gateway(self.config(cert, key, port,
                                     "reload: {interval: 1h}"),
                         env={"TSGATE_RELOAD_NO_INOTIFY": "1"})
        nkey, ncrt = self.new_cert()
        self.write_in_place(key, nkey)
        self.write_in_place(cert, ncrt)
        gh.run_for(2.0)
        self.assertEqual(served_serial(port), serial_of(self.certs.server))
        self.assertEqual(self.reload_lines(g), [])

    def test_workers_each_reload(self):
        """workers: 2: each worker watches and reloads on its own."""
        cert, key = self.files("workers")
        port = gh.free_port()
        g = self.gateway("workers: 2\n" + self.config(
            cert, key, port, "reload: {interval: 1h}"))
        nkey, ncrt = self.new_cert()
        for src, dst in ((nkey, key), (ncrt, cert)):
            shutil.copyfile(src, dst + ".tmp")
            os.chmod(dst + ".tmp", 0o600)
            os.rename(dst + ".tmp", dst)

        def workers_reloaded():
            return {l.get("worker") for l in self.reload_lines(g)
                    if l["level"] == "info"} == {0, 1}
        self.assertTrue(gh.wait_until(workers_reloaded, DEADLINE),
                        self.reload_lines(g))
        # whichever worker a connection reaches
        for _ in range(6):
            self.assertEqual(served_serial(port), serial_of(ncrt))

    def test_watch_false_waits_for_sighup(self):
        cert, key = self.files("off")
        port = gh.free_port()
        g = self.gateway(self.config(cert, key, port,
                                     "reload: {watch: false}"))
        nkey, ncrt = self.new_cert()
        self.write_in_place(key, nkey)
        self.write_in_place(cert, ncrt)
        gh.run_for(2.0)
        self.assertEqual(served_serial(port), serial_of(self.certs.server))
        g.proc.send_signal(signal.SIGHUP)
        self.wait_serial(port, serial_of(ncrt))
        self.assertTrue(any("SIGHUP" in l["msg"]
                            for l in self.reload_lines(g)))

    # -- metrics ----------------------------------------------------------

    def test_expiry_metrics_for_every_certificate(self):
        """server, client-mode and CA certificates, each with its serial,
        CN and notAfter as openssl reads them; one series per CA file."""
        port, mport, bport = gh.free_port(), gh.free_port(), gh.free_port()
        backend = self.backend()
        # a TLS backend: the route originates TLS with a client cert
        ca_bundle = os.path.join(self.tmp, "bundle.crt")
        other_key, other = self.certs.stranger()
        with open(ca_bundle, "w") as o:
            for p in (self.certs.ca, os.path.join(self.certs.dir, "other",
                                                  "ca.crt")):
                with open(p) as f:
                    o.write(f.read())
        routes = ["      - name: up",
                  "        backend: \"tcp://127.0.0.1:%d\"" % bport,
                  "        connect: tls",
                  "        tls: {ca: \"%s\", cert: \"%s\", key: \"%s\"}" % (
                      ca_bundle, self.certs.alice, self.certs.alice_key)]
        text = self.config(self.certs.server, self.certs.server_key, port,
                           "", mport, routes)
        text = text.replace(
            "    tls: {cert:",
            "    tls: {client_ca: \"%s\", verify_client: optional, cert:" %
            self.certs.ca)
        del backend
        g = self.gateway(text)
        s = scrape(mport)
        name = "tsgate_certificate_expiry_timestamp_seconds"
        want = {
            ("", "server", serial_of(self.certs.server), "localhost",
             not_after_of(self.certs.server)),
            ("", "ca", serial_of(self.certs.ca), "tsgate test CA",
             not_after_of(self.certs.ca)),
            ("up", "client", serial_of(self.certs.alice), "alice",
             not_after_of(self.certs.alice)),
        }
        # the bundle: the CA that expires first (both valid 2 days; the
        # other one was made later, so ours expires first)
        want.add(("up", "ca", serial_of(self.certs.ca), "tsgate test CA",
                  not_after_of(self.certs.ca)))
        got = {(d["route"], d["kind"], d["serial"], d["subject_cn"], int(v))
               for d, v in series(s, name, listener="in")}
        self.assertEqual(got, want)
        t0 = series(s, "tsgate_last_reload_success_timestamp_seconds")[0][1]
        self.assertLessEqual(abs(t0 - time.time()), 120)
        # a reload moves the success time on
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: series(scrape(mport),
                           "tsgate_last_reload_success_timestamp_seconds"
                           )[0][1] > t0))

    def test_certificate_on_pkcs11_token(self):
        """A certificate and key on a SoftHSM2 token: the expiry series
        reads the certificate from the token; the URLs are not watched
        (no file), and the daemon runs as usual."""
        token = gh.SoftToken(self.tmp, "cred-watch")
        token.import_key(self.certs.server_key, "srv", "01")
        token.import_cert(self.certs.server, "srv-cert", "01")
        port, mport = gh.free_port(), gh.free_port()
        old = os.umask(0o077)  # the config holds a PIN: private
        try:
            self.gateway(self.config(
                token.url("srv-cert", "cert"),
                token.url("srv", "private", token.pin), port, "", mport),
                env=token.env)
        finally:
            os.umask(old)
        self.assertEqual(served_serial(port), serial_of(self.certs.server))
        exp = series(scrape(mport),
                     "tsgate_certificate_expiry_timestamp_seconds",
                     listener="in", kind="server")
        self.assertEqual([(d["serial"], int(v)) for d, v in exp],
                         [(serial_of(self.certs.server),
                           not_after_of(self.certs.server))])


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
