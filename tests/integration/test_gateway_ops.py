#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of tsgate's operations behaviour with the real
daemon: SIGHUP reload while connections stream (byte-exact, old
connections keep their routes, new ones use the new config, listeners
added and removed), a broken config on reload (file:line:col logged, the
old config keeps running), limits (max_connections, handshake and idle
timeouts) and the drain on SIGTERM.
"""

import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


def plain_config(listeners, limits=""):
    out = ["log: {level: info, format: json}"]
    if limits:
        out.append("limits: {%s}" % limits)
    out.append("listeners:")
    for name, port, backend in listeners:
        out += ["  - name: %s" % name,
                "    listen: \"tcp://127.0.0.1:%d\"" % port,
                "    accept: plain",
                "    routes:",
                "      - name: to-%s" % name,
                "        backend: \"%s\"" % backend]
    return "\n".join(out) + "\n"


class Streamer(threading.Thread):
    """One connection that reads the backend's banner, then streams data
    in small pieces (so it spans the reload) and checks the echo."""

    def __init__(self, address, nbytes, banner_len):
        super().__init__(daemon=True)
        host, port = address
        self.sock = socket.create_connection((host, port), timeout=30)
        self.banner = gh.recv_exact(self.sock, banner_len)
        self.data = os.urandom(nbytes)
        self.sent = 0
        self.got = None
        self.error = None

    def run(self):
        try:
            def writer():
                for i in range(0, len(self.data), 8192):
                    self.sock.sendall(self.data[i:i + 8192])
                    self.sent += 8192
                    # a slow client on purpose: the stream spans the
                    # reload
                    time.sleep(0.005)
                self.sock.shutdown(socket.SHUT_WR)
            t = threading.Thread(target=writer, daemon=True)
            t.start()
            self.got = gh.recv_all(self.sock, 30)
            t.join(30)
            self.sock.close()
        except OSError as e:
            self.error = e


class Operations(gh.GatewayTestCase):

    def rewrite(self, g, text):
        with open(g.config, "w") as f:
            f.write(text)

    def reload(self, g, expect_ok=True):
        before = len([l for l in g.lines() if l.get("event") == "reload"])
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: len([l for l in g.lines()
                         if l.get("event") == "reload"]) > before))
        last = [l for l in g.lines() if l.get("event") == "reload"][-1]
        if expect_ok:
            self.assertEqual(last["level"], "info", g.lines())
        return [l for l in g.lines() if l.get("event") == "reload"][before:]

    def test_reload_while_20_connections_stream(self):
        a = self.backend(mode="greet", banner=b"A\n")
        b = self.backend(mode="greet", banner=b"B\n")
        p1, p2 = gh.free_port(), gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address)]))
        streams = [Streamer(("127.0.0.1", p1), 300000, 2)
                   for _ in range(20)]
        for s in streams:
            self.assertEqual(s.banner, b"A\n")
            s.start()
        # every stream in flight before the reload
        self.assertTrue(gh.wait_until(
            lambda: all(s.sent > 0 for s in streams)))
        # new route for "in", and a new listener "in2"
        self.rewrite(g, plain_config([("in", p1, b.address),
                                      ("in2", p2, a.address)]))
        self.reload(g)
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.recv_exact(c, 2), b"B\n")
        c.close()
        c = socket.create_connection(("127.0.0.1", p2), timeout=10)
        self.assertEqual(gh.recv_exact(c, 2), b"A\n")
        c.close()
        for s in streams:
            s.join(60)
            self.assertIsNone(s.error)
            self.assertEqual(s.got, s.data)
        lines = g.wait_conn_lines(22)
        old = [l for l in lines if l.get("route") == "to-in" and
               l["bytes_in"] == 300000]
        self.assertEqual(len(old), 20)
        self.assertTrue(all(l["result"] == "ok" for l in old))
        self.assertTrue(all(l["backend"] == a.address for l in old))

    def test_reload_removes_listener_live_connection_finishes(self):
        a = self.backend()
        p1, p2 = gh.free_port(), gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address),
                                       ("gone", p2, a.address)]))
        live = socket.create_connection(("127.0.0.1", p2), timeout=10)
        live.sendall(b"before ")
        self.assertEqual(gh.recv_exact(live, 7), b"before ")
        self.rewrite(g, plain_config([("in", p1, a.address)]))
        self.reload(g)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", p2), timeout=2).close()
        live.sendall(b"after")
        live.shutdown(socket.SHUT_WR)
        self.assertEqual(gh.recv_all(live), b"after")
        live.close()
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.exchange(c, b"still"), b"still")
        c.close()
        line = [l for l in g.wait_conn_lines(2)
                if l["listener"] == "gone"][0]
        self.assertEqual(line["result"], "ok")
        self.assertEqual(line["bytes_in"], 12)

    def test_broken_reload_keeps_old_config(self):
        a = self.backend(mode="greet", banner=b"A\n")
        p1 = gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address)]))
        self.rewrite(g, plain_config([("in", p1, a.address)]) +
                     "bogus_key: 1\n")
        events = self.reload(g, expect_ok=False)
        text = " ".join(e.get("msg", "") for e in events)
        name = os.path.basename(g.config)
        self.assertRegex(text, r"%s:\d+:\d+: " % name)
        self.assertIn("running configuration stays", text)
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.recv_exact(c, 2), b"A\n")
        c.close()
        self.assertIsNone(g.proc.poll())

    def test_sigterm_grace_expires(self):
        a = self.backend()
        p1 = gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address)],
                                      limits="shutdown_grace: 300ms"))
        idle = socket.create_connection(("127.0.0.1", p1), timeout=10)
        idle.sendall(b"x")
        self.assertEqual(gh.recv_exact(idle, 1), b"x")
        t = time.monotonic()
        g.proc.send_signal(signal.SIGTERM)
        self.assertEqual(gh.recv_all(idle), b"")
        idle.close()
        g.proc.wait(gh.DEADLINE)
        if gh.timing_asserts_enabled():
            self.assertLess(time.monotonic() - t, 3)
        self.assertEqual(g.proc.returncode, 0)
        line = g.conn_lines()[0]
        self.assertEqual(line["reason"], "shutdown grace expired")

    def test_backend_connect_timeout(self):
        # a TCP backend that never accepts, with its backlog full: a new
        # connect's SYN is dropped and the connect hangs
        stuck = socket.socket()
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        bport = stuck.getsockname()[1]
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", bport))
            except BlockingIOError:
                pass
            fillers.append(f)
        # the accept queue is full once a filler's handshake completed
        # (listen(0) queues one); later SYNs are dropped
        self.assertTrue(gh.wait_until(
            lambda: select.select([], fillers, [], 0)[1]))
        try:
            p1 = gh.free_port()
            g = self.gateway(plain_config(
                [("in", p1, "tcp://127.0.0.1:%d" % bport)],
                limits="connect_timeout: 400ms"))
            c = socket.create_connection(("127.0.0.1", p1), timeout=10)
            t = time.monotonic()
            self.assertEqual(gh.recv_all(c, 10), b"")
            elapsed = time.monotonic() - t
            c.close()
            line = g.wait_conn_lines(1)[0]
            self.assertEqual(line["reason"], "backend connect timeout",
                             line)
            self.assertGreater(elapsed, 0.3)
            if gh.timing_asserts_enabled():
                self.assertLess(elapsed, 5)
        finally:
            for f in fillers:
                f.close()
            stuck.close()

    def test_out_of_fds_pauses_accept(self):
        a = self.backend()
        p1 = gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address)]), nofile=24)
        held = []
        # each relayed connection costs tsgate two fds: run it out
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", p1), timeout=10)
            c.sendall(b"x")
            held.append(c)
        self.assertTrue(gh.wait_until(
            lambda: b"accepting paused" in g.log_bytes()))
        cpu0 = g.cpu_seconds()
        # a second on purpose: paused, not spinning on the readable
        # listener
        gh.run_for(1.0)
        if gh.timing_asserts_enabled():
            self.assertLess(g.cpu_seconds() - cpu0, 0.5)
        self.assertIsNone(g.proc.poll())
        for c in held:
            c.close()
        # room again: new connections are served
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.exchange(c, b"back"), b"back")
        c.close()

    def test_workers(self):
        a = self.backend(mode="greet", banner=b"A\n")
        b = self.backend(mode="greet", banner=b"B\n")
        p1 = gh.free_port()
        usock = os.path.join(self.tmp, "workers.sock")
        text = plain_config([("in", p1, a.address)])
        text = text.replace("log: {level: info, format: json}\n",
                            "log: {level: info, format: json}\n"
                            "workers: 2\n")
        text += ("  - name: local\n"
                 "    listen: \"unix:%s\"\n"
                 "    accept: plain\n"
                 "    routes:\n"
                 "      - backend: \"%s\"\n" % (usock, a.address))
        g = self.gateway(text)
        self.assertTrue(gh.wait_until(
            lambda: g.log_bytes().count(b"tsgate ready") >= 2))
        with open("/proc/%d/task/%d/children" % (g.proc.pid, g.proc.pid)) \
                as f:
            workers = [int(x) for x in f.read().split()]
        self.assertEqual(len(workers), 2)
        for _ in range(40):
            c = socket.create_connection(("127.0.0.1", p1), timeout=10)
            self.assertEqual(gh.recv_exact(c, 2), b"A\n")
            c.close()
        c = self.connect("unix:" + usock)
        self.assertEqual(gh.recv_exact(c, 2), b"A\n")
        c.close()
        lines = g.wait_conn_lines(41)
        # SO_REUSEPORT spread the TCP connections over both workers
        self.assertEqual({l["worker"] for l in lines if
                          l["listener"] == "in"}, {0, 1})
        # a reload reaches every worker
        self.rewrite(g, text.replace(a.address, b.address, 1))
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: len([l for l in g.lines()
                         if l.get("event") == "reload"]) >= 2))
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", p1), timeout=10)
            self.assertEqual(gh.recv_exact(c, 2), b"B\n")
            c.close()
        # every one of those logged before a worker is killed: the client
        # closed, but the worker may not have seen it yet (under ASan a
        # killed worker took its last line with it)
        g.wait_conn_lines(61)
        # a worker that dies is replaced
        os.kill(workers[1], signal.SIGKILL)
        self.assertTrue(gh.wait_until(
            lambda: b"restarting it" in g.log_bytes()))
        self.assertTrue(gh.wait_until(
            lambda: g.log_bytes().count(b"tsgate ready") >= 3))
        # ... with the reloaded configuration, not the one started with
        for _ in range(30):
            c = socket.create_connection(("127.0.0.1", p1), timeout=10)
            self.assertEqual(gh.recv_exact(c, 2), b"B\n")
            c.close()
        lines = g.wait_conn_lines(91)
        self.assertEqual({l["worker"] for l in lines[61:]}, {0, 1})
        self.assertEqual(g.stop(), 0)
        for pid in workers:
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)

    def test_workers_bind_failure_stops_all(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            cfg = os.path.join(self.tmp, "busy.yaml")
            with open(cfg, "w") as f:
                f.write(plain_config([("in", port, "tcp://127.0.0.1:9")])
                        .replace("log: {level: info, format: json}\n",
                                 "log: {level: info, format: json}\n"
                                 "workers: 2\n"))
            p = subprocess.run([gh.TSGATE, "--config", cfg],
                               capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"Address already in use", p.stderr)
            self.assertIn(b"failed to start", p.stderr)
        finally:
            busy.close()

    def test_drops_privileges_after_binding(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to switch users")
        import pwd
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        a = self.backend(kind="tcp")
        p1 = gh.free_port()
        text = plain_config([("in", p1, a.address)]).replace(
            "log: {level: info, format: json}\n",
            "log: {level: info, format: json}\nuser: nobody\n")
        g = self.gateway(text)
        self.assertIn(b"running as user nobody", g.log_bytes())
        with open("/proc/%d/status" % g.proc.pid) as f:
            status = dict(line.split(":", 1) for line in f
                          if ":" in line)
        self.assertEqual(status["Uid"].split()[:3],
                         [str(nobody.pw_uid)] * 3)
        self.assertEqual(status["Gid"].split()[0], str(nobody.pw_gid))
        self.assertEqual(status["Groups"].strip(), "")
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.exchange(c, b"as nobody"), b"as nobody")
        c.close()

    def test_drops_to_user_and_group(self):
        """group: another group than the user's primary one."""
        if os.geteuid() != 0:
            self.skipTest("needs root to switch users")
        import grp
        import pwd
        try:
            nobody = pwd.getpwnam("nobody")
            users = grp.getgrnam("users")
        except KeyError:
            self.skipTest("no user nobody or group users")
        self.assertNotEqual(users.gr_gid, nobody.pw_gid)
        a = self.backend(kind="tcp")
        p1 = gh.free_port()
        base = plain_config([("in", p1, a.address)])
        # group alone is an error: it needs the user to drop to
        bad = os.path.join(self.tmp, "group-only.yaml")
        with open(bad, "w") as f:
            f.write("group: users\n" + base)
        r = subprocess.run([gh.TSGATE, "-t", "-c", bad], capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("group-only.yaml:1:8: 'group' needs 'user'",
                      r.stderr.decode())
        g = self.gateway("user: nobody\ngroup: users\n" + base)
        self.assertIn(b"running as user nobody (uid %d, gid %d)"
                      % (nobody.pw_uid, users.gr_gid), g.log_bytes())
        with open("/proc/%d/status" % g.proc.pid) as f:
            status = dict(line.split(":", 1) for line in f
                          if ":" in line)
        self.assertEqual(status["Uid"].split()[:3],
                         [str(nobody.pw_uid)] * 3)
        self.assertEqual(status["Gid"].split()[:3],
                         [str(users.gr_gid)] * 3)
        self.assertEqual(status["Groups"].strip(), "")
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.exchange(c, b"as nobody:users"),
                         b"as nobody:users")
        c.close()

    def test_max_connections(self):
        a = self.backend()
        p1 = gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address)],
                                      limits="max_connections: 2"))
        held = [socket.create_connection(("127.0.0.1", p1), timeout=10)
                for _ in range(2)]
        for h in held:
            h.sendall(b"x")
            self.assertEqual(gh.recv_exact(h, 1), b"x")
        # a client that keeps reconnecting at the limit: every refusal is
        # closed at once, but the log gets one `limit` line a second, not
        # one line each (a refused connection writes no `conn` line)
        for _ in range(20):
            extra = socket.create_connection(("127.0.0.1", p1), timeout=10)
            self.assertEqual(gh.recv_all(extra), b"")
            extra.close()

        def limit_lines():
            return [l for l in g.lines() if l.get("event") == "limit"]
        self.assertTrue(gh.wait_until(lambda: limit_lines()))
        lines = limit_lines()
        self.assertEqual(lines[0]["reason"],
                         "refused: max_connections reached")
        self.assertEqual(lines[0]["max_connections"], 2)
        self.assertEqual(lines[0]["suppressed"], 0)
        self.assertLess(len(lines), 20, lines)
        self.assertEqual(g.conn_lines(), [])
        for h in held:
            h.close()
        g.wait_conn_lines(2)
        # room again
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        self.assertEqual(gh.exchange(c, b"ok"), b"ok")
        c.close()

    def test_idle_timeout(self):
        a = self.backend()
        p1 = gh.free_port()
        g = self.gateway(plain_config([("in", p1, a.address)],
                                      limits="idle_timeout: 300ms"))
        c = socket.create_connection(("127.0.0.1", p1), timeout=10)
        c.sendall(b"x")
        self.assertEqual(gh.recv_exact(c, 1), b"x")
        t = time.monotonic()
        self.assertEqual(gh.recv_all(c), b"")
        if gh.timing_asserts_enabled():
            self.assertLess(time.monotonic() - t, 3)
        c.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["reason"], "idle timeout")

    def test_handshake_timeout(self):
        certs = gh.Certs(self.tmp)
        a = self.backend()
        p1 = gh.free_port()
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "limits: {handshake_timeout: 300ms}\n"
            "listeners:\n"
            "  - name: tls\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls: {cert: %s, key: %s}\n"
            "    routes:\n"
            "      - backend: \"%s\"\n"
            % (p1, certs.server, certs.server_key, a.address))
        silent = socket.create_connection(("127.0.0.1", p1), timeout=10)
        t = time.monotonic()
        self.assertEqual(gh.recv_all(silent), b"")
        if gh.timing_asserts_enabled():
            self.assertLess(time.monotonic() - t, 3)
        silent.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["reason"], "handshake timeout")
        # a real client is served all the same
        ctx = certs.client_context()
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", p1),
                                                     timeout=10),
                            server_hostname="localhost")
        got, clean = gh.tls_roundtrip(s, b"hello")
        self.assertEqual(got, b"hello")
        self.assertIsInstance(ssl.OPENSSL_VERSION, str)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
