#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of backend pools with the real daemon and real
servers the test kills and restarts: round-robin, first (failover in
order) and least-connections; a dead backend never costs a client its
connection while another is up; passive health (a refusing backend is
left alone for a back-off) and active health checks (TCP and TLS: a
restarted backend is back within two intervals, tsgate_backend_up says
so); host names re-resolved with c-ares against a DNS server this test
runs (the answer changes, new connections follow; garbage, truncated or
no answers keep the last good one and never block the loop); TCP
keepalive on both sides as `ss -o` shows it, and off when asked; a
route's own idle_timeout and connect_timeout; a unix backend whose
accept queue is full (EAGAIN) fails over like a refusal.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402


class NamedServer:
    """A TCP (or unix) server that greets with its name, then echoes;
    stop() and start() again on the same address."""

    def __init__(self, name, host="127.0.0.1", port=0, path=None,
                 backlog=64, serve=True):
        self.name = name
        # stop() then start() binds the port again: one the kernel gave
        # out (port 0) is ephemeral, and in between any outgoing connection
        # (tsgate's to the other members, a parallel test's) may take it
        if path is None and port == 0:
            port = gh.free_port()
        self.host, self.port, self.path = host, port, path
        self.backlog = backlog
        self.serve = serve
        self.accepted = 0
        self.lock = threading.Lock()
        self.conns = []
        self.sock = None
        self.start()

    @property
    def address(self):
        if self.path:
            return "unix:" + self.path
        return "tcp://%s:%d" % (self.host, self.port)

    def start(self):
        if self.path:
            if os.path.exists(self.path):
                os.unlink(self.path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.path)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            self.port = s.getsockname()[1]
        s.listen(self.backlog)
        self.sock = s
        if self.serve:
            self.thread = threading.Thread(target=self._accept, args=(s,),
                                           daemon=True)
            self.thread.start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,),
                             daemon=True).start()

    def _echo(self, c):
        try:
            c.sendall(self.name.encode() + b"\n")
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        s, self.sock = self.sock, None
        if s is None:
            return
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.serve:
            self.thread.join(10)
        s.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []


class DnsServer:
    """A UDP DNS server on 127.0.0.1: A records from self.answers
    (name -> list of IPv4), no AAAA; mode "garbage", "truncated",
    "silent" or "huge" answers badly instead."""

    def __init__(self, ttl=1):
        self.answers = {}
        self.mode = "ok"
        self.ttl = ttl
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1
            r = self._answer(q)
            if r is not None:
                try:
                    self.sock.sendto(r, peer)
                except OSError:
                    return

    def _answer(self, q):
        if len(q) < 12:
            return None
        if self.mode == "silent":
            return None
        if self.mode == "garbage":
            return q[:2] + os.urandom(40)
        if self.mode == "truncated":
            return q[:2] + b"\x81\x80\x00\x01\x00\x01"
        qid = q[:2]
        i, labels = 12, []
        while i < len(q) and q[i] != 0:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode(errors="replace"))
            i += 1 + n
        question = q[12:i + 5]
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        name = ".".join(labels).lower()
        ips = self.answers.get(name, []) if qtype == 1 else []
        if self.mode == "huge" and qtype == 1:
            ips = ["127.0.9.%d" % (k % 250 + 1) for k in range(120)]
        rcode = 0 if name in self.answers else 3
        head = qid + struct.pack("!HHHHH", 0x8180 | rcode, 1, len(ips),
                                 0, 0)
        body = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, self.ttl, 4)
                        + socket.inet_aton(ip) for ip in ips)
        return head + question + body

    def close(self):
        self.sock.close()


def greeting(sock):
    """The first line the backend sent (its name)."""
    buf = b""
    sock.settimeout(10)
    while b"\n" not in buf:
        d = sock.recv(4096)
        if not d:
            break
        buf += d
    return buf.split(b"\n")[0].decode()


def plain_route_config(port, backends, extra_route="", extra_top="",
                       extra_listener=""):
    lines = ["log: {level: debug, format: json}", extra_top,
             "listeners:",
             "  - name: in",
             "    listen: \"tcp://127.0.0.1:%d\"" % port,
             "    accept: plain", extra_listener,
             "    routes:",
             "      - name: pool",
             "        backend:"]
    lines += ["          - \"%s\"" % b for b in backends]
    lines.append(extra_route)
    return "\n".join(line for line in lines if line) + "\n"


class BackendHelpers(gh.GatewayTestCase):

    def server(self, name, **kw):
        s = NamedServer(name, **kw)
        self.addCleanup(s.stop)
        return s

    def hello(self, port):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            who = greeting(c)
            c.sendall(b"ping\n")
            if who:
                self.assertEqual(gh.recv_exact(c, 5), b"ping\n")
            return who
        finally:
            c.close()

    def metrics(self, mport):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                    timeout=10) as r:
            return r.read().decode()

    def backend_up(self, mport, backend):
        m = re.search(r'^tsgate_backend_up\{[^}]*backend="%s"\} (\d+)$'
                      % re.escape(backend), self.metrics(mport), re.M)
        return m is not None and m.group(1) == "1"


class Backends(BackendHelpers):

    def test_round_robin_spreads_and_fails_over(self):
        a, b = self.server("a"), self.server("b")
        port = gh.free_port()
        self.gateway(plain_route_config(port, [a.address, b.address]))
        seen = [self.hello(port) for _ in range(20)]
        self.assertEqual(seen.count("a"), 10, seen)
        self.assertEqual(seen.count("b"), 10, seen)
        # one backend gone: every new client is still served
        a.stop()
        seen = [self.hello(port) for _ in range(10)]
        self.assertEqual(seen, ["b"] * 10)

    def test_first_is_failover_in_order(self):
        a, b = self.server("a"), self.server("b")
        port = gh.free_port()
        g = self.gateway(plain_route_config(port, [a.address, b.address],
                                            "        balance: first"))
        self.assertEqual([self.hello(port) for _ in range(5)], ["a"] * 5)
        a.stop()
        self.assertEqual([self.hello(port) for _ in range(5)], ["b"] * 5)
        self.assertTrue(gh.wait_until(lambda: any(
            l.get("event") == "backend" and "is down" in l.get("msg", "")
            for l in g.lines())))
        # passive health: the failed one is left alone during its
        # back-off, so a's port sees no further attempts at once
        downs = [l for l in g.lines() if l.get("event") == "backend" and
                 "is down" in l.get("msg", "")]
        self.assertEqual(len(downs), 1, downs)
        a.start()
        # back after the back-off (1 s, then it is tried again)
        self.assertTrue(gh.wait_until(lambda: self.hello(port) == "a"))

    def test_least_connections_picks_the_idle_one(self):
        a, b = self.server("a"), self.server("b")
        port = gh.free_port()
        self.gateway(plain_route_config(
            port, [a.address, b.address],
            "        balance: least-connections"))
        held = []
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.append((greeting(c), c))
        names = [h[0] for h in held]
        # 3 held: the third went to the one with fewer (2 and 1)
        self.assertEqual(sorted(names).count("a") + sorted(names).count("b"),
                         3)
        fewer = "a" if names.count("a") < names.count("b") else "b"
        self.assertEqual(self.hello(port), fewer)
        for _, c in held:
            c.close()

    def test_all_down_closes_with_reason(self):
        a, b = self.server("a"), self.server("b")
        a.stop()
        b.stop()
        port = gh.free_port()
        g = self.gateway(plain_route_config(port, [a.address, b.address]))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.assertEqual(gh.recv_all(c), b"")
        c.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error")
        self.assertTrue(line["reason"].startswith("backend refused"), line)
        self.assertIsNone(g.proc.poll())

    def test_health_checks_bring_a_backend_back(self):
        a, b = self.server("a"), self.server("b")
        port, mport = gh.free_port(), gh.free_port()
        g = self.gateway(plain_route_config(
            port, [a.address, b.address],
            "        health_check: {interval: 300ms, timeout: 1s}",
            extra_top="metrics: {listen: \"tcp://127.0.0.1:%d\"}" % mport))
        self.assertTrue(gh.wait_until(
            lambda: self.backend_up(mport, a.address)))
        a.stop()
        # taken out by the checks alone, with no client involved
        self.assertTrue(gh.wait_until(
            lambda: not self.backend_up(mport, a.address)))
        self.assertEqual([self.hello(port) for _ in range(4)], ["b"] * 4)
        a.start()
        self.assertTrue(gh.wait_until(
            lambda: self.backend_up(mport, a.address)))
        seen = [self.hello(port) for _ in range(4)]
        self.assertIn("a", seen)
        ups = [l["msg"] for l in g.lines() if l.get("event") == "backend"]
        self.assertTrue(any("is down" in m for m in ups), ups)
        self.assertTrue(any("is up" in m for m in ups), ups)
        counters = self.metrics(mport)
        self.assertRegex(counters, r'tsgate_backend_failures_total\{[^}]*'
                         r'backend="%s"\} [1-9]' % re.escape(a.address))
        self.assertRegex(counters, r'tsgate_backend_connections_total\{'
                         r'[^}]*backend="%s"\} [1-9]' % re.escape(b.address))

    def test_reload_keeps_backend_state(self):
        """A SIGHUP that keeps a backend keeps its health and counters: a
        backend down before the reload is still down after it (no client
        sent to it on the strength of a fresh start), the counters go on."""
        a, b = self.server("a"), self.server("b")
        port, mport = gh.free_port(), gh.free_port()
        g = self.gateway(plain_route_config(
            port, [a.address, b.address],
            "        health_check: {interval: 300ms, timeout: 1s}",
            extra_top="metrics: {listen: \"tcp://127.0.0.1:%d\"}" % mport))
        for _ in range(4):
            self.hello(port)
        a.stop()
        self.assertTrue(gh.wait_until(
            lambda: not self.backend_up(mport, a.address)))

        def counter(name, backend):
            m = re.search(r'^%s\{[^}]*backend="%s"\} (\d+)$'
                          % (name, re.escape(backend)), self.metrics(mport),
                          re.M)
            return int(m.group(1)) if m else -1

        fails = counter("tsgate_backend_failures_total", a.address)
        served = counter("tsgate_backend_connections_total", b.address)
        self.assertGreaterEqual(fails, 1)
        self.assertGreaterEqual(served, 2)
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b"live connections keep" in g.log_bytes()))
        self.assertFalse(self.backend_up(mport, a.address))
        self.assertGreaterEqual(
            counter("tsgate_backend_failures_total", a.address), fails)
        self.assertGreaterEqual(
            counter("tsgate_backend_connections_total", b.address), served)
        self.assertEqual([self.hello(port) for _ in range(4)], ["b"] * 4)
        ups = [l["msg"] for l in g.lines() if l.get("event") == "backend"
               and "%s is up" % a.address in l.get("msg", "")]
        self.assertEqual(ups, [])

    def test_tls_health_check_needs_a_handshake(self):
        """connect: tls checks complete a TLS handshake: a backend that
        accepts TCP but is no TLS server stays down."""
        certs = gh.Certs(self.tmp)
        tls_port = gh.free_port()
        srv = subprocess.Popen(
            ["openssl", "s_server", "-accept", str(tls_port), "-cert",
             certs.server, "-key", certs.server_key, "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(srv.wait, 10)
        self.addCleanup(srv.kill)
        self.assertTrue(gh.wait_until(lambda: gh.tcp_listening(tls_port)))
        plain = self.server("not-tls")
        port, mport = gh.free_port(), gh.free_port()
        text = plain_route_config(
            port, ["tcp://127.0.0.1:%d" % tls_port, plain.address],
            "        connect: tls\n"
            "        tls: {ca: %s, verify_name: localhost}\n"
            "        health_check: {interval: 300ms, timeout: 1s}"
            % certs.ca,
            extra_top="metrics: {listen: \"tcp://127.0.0.1:%d\"}" % mport)
        self.gateway(text)
        self.assertTrue(gh.wait_until(
            lambda: self.backend_up(mport, "tcp://127.0.0.1:%d" % tls_port)
            and not self.backend_up(mport, plain.address)))

    def test_unix_backend_with_full_queue_fails_over(self):
        """A unix listener whose accept queue is full makes connect()
        fail with EAGAIN at once: that backend is skipped, not fatal."""
        full = self.server("full", path=os.path.join(self.tmp, "full.sock"),
                           backlog=0, serve=False)
        fillers = []
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(full.path)
            except (BlockingIOError, OSError):
                pass
            fillers.append(s)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        with self.assertRaises(BlockingIOError):
            probe.connect(full.path)
        probe.close()
        ok = self.server("ok", path=os.path.join(self.tmp, "ok.sock"))
        port = gh.free_port()
        self.gateway(plain_route_config(port, [full.address, ok.address],
                                        "        balance: first"))
        self.assertEqual([self.hello(port) for _ in range(5)], ["ok"] * 5)
        for s in fillers:
            s.close()

    def test_keepalive_on_both_sides(self):
        if subprocess.run(["ss", "-V"], capture_output=True).returncode:
            self.fail("ss (iproute2) is missing: scripts/deps installs it")
        a = self.server("a")
        port = gh.free_port()
        self.gateway(plain_route_config(
            port, [a.address],
            "        tcp_keepalive: {idle: 45s, interval: 5s, count: 3}",
            extra_listener="    tcp_keepalive: {idle: 30s, interval: 10s, "
            "count: 2}"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting(c)

        def timers(filt):
            out = subprocess.run(["ss", "-tno", "state", "established",
                                  filt], capture_output=True,
                                 text=True).stdout
            return re.findall(r"timer:\(keepalive,([0-9.]+)(min|sec)", out)

        # tsgate's accepted socket (local port = the listener)
        client_side = timers("( sport = :%d )" % port)
        self.assertEqual(len(client_side), 1, client_side)
        self.assertLessEqual(float(client_side[0][0]), 30)
        # tsgate's socket to the backend (remote port = the backend)
        backend_side = timers("( dport = :%d )" % a.port)
        self.assertEqual(len(backend_side), 1, backend_side)
        self.assertLessEqual(float(backend_side[0][0]), 45)
        self.assertGreater(float(backend_side[0][0]), 30)
        c.close()

    def test_keepalive_off(self):
        a = self.server("a")
        port = gh.free_port()
        self.gateway(plain_route_config(
            port, [a.address], "        tcp_keepalive: false",
            extra_listener="    tcp_keepalive: false"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting(c)
        out = subprocess.run(["ss", "-tno", "state", "established",
                              "( sport = :%d or dport = :%d )"
                              % (port, a.port)],
                             capture_output=True, text=True).stdout
        self.assertEqual(out.count("127.0.0.1:%d" % port) +
                         out.count("127.0.0.1:%d" % a.port) >= 2, True, out)
        self.assertNotIn("keepalive", out)
        c.close()

    def keepalive_timers(self, port):
        """The keepalive timers of tsgate's accepted sockets on port."""
        out = subprocess.run(["ss", "-tno", "state", "established",
                              "( sport = :%d )" % port],
                             capture_output=True, text=True).stdout
        return re.findall(r"timer:\(keepalive,([0-9.]+)(min|sec)", out)

    def reload(self, g, text):
        with open(g.config, "w") as f:
            f.write(text)
        before = len([x for x in g.lines() if x.get("event") == "reload"])
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(lambda: len(
            [x for x in g.lines() if x.get("event") == "reload" and
             x.get("level") == "info"]) > before, gh.DEADLINE))

    def test_keepalive_follows_reload(self):
        """The listener's tcp_keepalive is set on its listening socket
        (accepted sockets inherit it): a reload that keeps the socket
        changes what the next connections get."""
        a = self.server("a")
        port = gh.free_port()

        def cfg(ka):
            return plain_route_config(port, [a.address],
                                      extra_listener="    tcp_keepalive: " +
                                      ka)
        g = self.gateway(cfg("{idle: 30s, interval: 10s, count: 2}"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting(c)
        t = self.keepalive_timers(port)
        self.assertEqual(len(t), 1, t)
        self.assertLessEqual(float(t[0][0]), 30)
        c.close()
        self.assertTrue(gh.wait_until(
            lambda: not self.keepalive_timers(port), gh.DEADLINE))
        self.reload(g, cfg("false"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting(c)
        self.assertEqual(self.keepalive_timers(port), [])
        c.close()
        self.reload(g, cfg("{idle: 20s, interval: 10s, count: 2}"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting(c)
        t = self.keepalive_timers(port)
        self.assertEqual(len(t), 1, t)
        self.assertLessEqual(float(t[0][0]), 20)
        c.close()

    def test_tcp_options_once_per_listener(self):
        """TCP_NODELAY and keepalive cost no system call per accepted
        connection (strace sees them on the backend sockets only), and
        the accepted sockets still have keepalive."""
        if subprocess.run(["strace", "-V"], capture_output=True).returncode:
            self.fail("strace is missing: scripts/deps installs it")
        a = self.server("a")
        port = gh.free_port()
        g = self.gateway(plain_route_config(port, [a.address]))
        trace = os.path.join(self.tmp, "strace.out")
        st = subprocess.Popen(["strace", "-f", "-e", "trace=setsockopt",
                               "-o", trace, "-p", str(g.proc.pid)],
                              stderr=subprocess.PIPE, text=True)
        try:
            # strace says "attached" once it traces the process
            self.assertIn("attached", st.stderr.readline())
            for _ in range(3):
                c = socket.create_connection(("127.0.0.1", port),
                                             timeout=10)
                greeting(c)
                t = self.keepalive_timers(port)
                self.assertEqual(len(t), 1, t)
                c.sendall(b"ping\n")
                self.assertEqual(gh.recv_exact(c, 5), b"ping\n")
                c.close()
        finally:
            st.terminate()
            st.wait(10)
            st.stderr.close()
        with open(trace) as f:
            text = f.read()
        # one TCP_NODELAY and one SO_KEEPALIVE per backend connection
        self.assertEqual(text.count("TCP_NODELAY"), 3, text)
        self.assertEqual(text.count("SO_KEEPALIVE"), 3, text)

    def test_route_idle_timeout(self):
        a = self.server("a")
        port = gh.free_port()
        g = self.gateway(plain_route_config(
            port, [a.address], "        idle_timeout: 1s",
            extra_top="limits: {idle_timeout: 300s}"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting(c)
        self.assertEqual(gh.recv_all(c, timeout=20), b"")
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["result"], "error")
        self.assertIn("idle", line["reason"])
        self.assertGreaterEqual(line["duration_ms"], 1000)
        if gh.timing_asserts_enabled():
            self.assertLess(line["duration_ms"], 5000)
        c.close()

    def test_route_connect_timeout(self):
        """A backend that never answers SYNs (a full backlog on a server
        that does not accept) is given up after the route's own
        connect_timeout, and the next one serves the client."""
        stuck = self.server("stuck", backlog=0, serve=False)
        fillers = [socket.socket() for _ in range(4)]
        for s in fillers:
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", stuck.port))
            except (BlockingIOError, OSError):
                pass
        self.addCleanup(lambda: [s.close() for s in fillers])
        ok = self.server("ok")
        port = gh.free_port()
        g = self.gateway(plain_route_config(
            port, [stuck.address, ok.address],
            "        balance: first\n        connect_timeout: 500ms",
            extra_top="limits: {connect_timeout: 60s}"))
        self.assertEqual(self.hello(port), "ok")
        self.assertTrue(any("timed out" in l.get("msg", "") for l in
                            g.lines() if l.get("event") == "backend"),
                        g.lines())


class Resolution(BackendHelpers):

    def dns(self):
        d = DnsServer(ttl=1)
        self.addCleanup(d.close)
        return d

    def test_answer_changes_and_connections_follow(self):
        two = self.server("two", host="127.0.0.2")
        three = self.server("three", host="127.0.0.3", port=two.port)
        d = self.dns()
        d.answers["app.test"] = ["127.0.0.2"]
        port = gh.free_port()
        g = self.gateway(plain_route_config(
            port, ["tcp://app.test:%d" % two.port],
            "        resolve_interval: 1s",
            extra_top="resolvers: [\"127.0.0.1:%d\"]" % d.port))
        self.assertTrue(gh.wait_until(lambda: self.hello(port) == "two"))
        d.answers["app.test"] = ["127.0.0.3"]
        self.assertTrue(gh.wait_until(lambda: self.hello(port) == "three"))
        # both addresses: both serve
        d.answers["app.test"] = ["127.0.0.2", "127.0.0.3"]
        self.assertTrue(gh.wait_until(
            lambda: any("2 address(es)" in l.get("msg", "")
                        for l in g.lines())))
        two.stop()
        self.assertEqual([self.hello(port) for _ in range(4)],
                         ["three"] * 4)

    def test_bad_answers_keep_the_last_good_one(self):
        two = self.server("two", host="127.0.0.2")
        d = self.dns()
        d.answers["app.test"] = ["127.0.0.2"]
        port = gh.free_port()
        other = gh.free_port()
        g = self.gateway(
            plain_route_config(
                port, ["tcp://app.test:%d" % two.port],
                "        resolve_interval: 1s",
                extra_top="resolvers: [\"127.0.0.1:%d\"]" % d.port) +
            "  - name: other\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: plain\n"
            "    routes: [{backend: \"%s\"}]\n"
            % (other, self.server("x").address))
        self.assertTrue(gh.wait_until(lambda: self.hello(port) == "two"))
        for mode in ("garbage", "truncated", "huge", "silent"):
            with self.subTest(mode):
                before = d.queries
                d.mode = mode
                # a few lookups answered badly (or not at all)
                self.assertTrue(gh.wait_until(
                    lambda: d.queries >= before + 2))
                self.assertEqual(self.hello(port), "two")
                # the loop never waits on DNS: another listener answers
                self.assertEqual(self.hello(other), "x")
        d.mode = "ok"
        self.assertTrue(any("cannot resolve" in l.get("msg", "")
                            for l in g.lines()), g.lines())
        self.assertIsNone(g.proc.poll())

    def test_unknown_name_at_start_with_resolvers(self):
        """With resolvers, a name is looked up by the workers: an unknown
        one fails connections (logged), and works once it resolves."""
        two = self.server("two", host="127.0.0.2")
        d = self.dns()
        port = gh.free_port()
        g = self.gateway(plain_route_config(
            port, ["tcp://later.test:%d" % two.port],
            "        resolve_interval: 1s",
            extra_top="resolvers: [\"127.0.0.1:%d\"]" % d.port))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.assertEqual(gh.recv_all(c), b"")
        c.close()
        line = g.wait_conn_lines(1)[0]
        self.assertIn("not resolved", line["reason"])
        d.answers["later.test"] = ["127.0.0.2"]
        self.assertTrue(gh.wait_until(lambda: self.hello(port) == "two"))


if __name__ == "__main__":
    unittest.main()
