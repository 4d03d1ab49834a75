#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Metrics and health of the real tsgate daemon, read with the real curl.

Every /metrics answer is checked against the Prometheus text exposition
format 0.0.4 by an independent parser here (HELP/TYPE before samples,
families not interleaved, label syntax and escaping, histogram buckets
cumulative with +Inf == _count). Then: drops and handshake failures by
reason (no route, backend refused, max_connections, idle timeout, PDU too
large, TLS garbage, TLS handshake timeout), backend connect latency,
counters carried over a SIGHUP reload for names that stay, series of a
removed listener gone once its last connection ends, failed reloads,
/readyz 503 while draining.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"'
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)


def parse_labels(text):
    """'a="x",b="y"' -> {'a': 'x', 'b': 'y'} (unescaped); strict."""
    out = {}
    pos = 0
    while pos < len(text):
        m = re.compile(LABEL).match(text, pos)
        if m is None:
            raise AssertionError("bad labels: %r" % text)
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1),
                                                          e.group(1)),
                       m.group(2))
        if m.group(1) in out:
            raise AssertionError("label %s twice: %r" % (m.group(1), text))
        out[m.group(1)] = value
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise AssertionError("bad labels: %r" % text)
            pos += 1
    return out


def parse_exposition(text):
    """Check text against format 0.0.4; returns {(name, labels): value}
    with labels as a sorted tuple of pairs, and {family: type}."""
    assert text.endswith("\n"), "no final line feed"
    types, helps, samples = {}, {}, {}
    done_families = set()
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert re.fullmatch(NAME, name), line
            assert name not in helps, "HELP twice: " + name
            helps[name] = doc
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge", "histogram", "summary",
                           "untyped"), line
            assert name not in types, "TYPE twice: " + name
            assert name in helps, "TYPE before HELP: " + name
            if current is not None:
                done_families.add(current)
            types[name] = typ
            current = name
            continue
        assert not line.startswith("#"), "stray comment: " + line
        m = SAMPLE.match(line)
        assert m, "bad sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = name
        if types.get(current) == "histogram":
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert family == current, "sample %s outside its family %s" % (
            name, current)
        assert family not in done_families, "family split: " + family
        if types[current] == "counter":
            assert name.endswith("_total"), name
        float(value)
        key = (name, tuple(sorted(parse_labels(labels).items())))
        assert key not in samples, "duplicate series: " + line
        samples[key] = float(value)
    # histograms: cumulative buckets, +Inf == count
    for (name, labels), value in samples.items():
        if not name.endswith("_count") or \
                types.get(name[:-6]) != "histogram":
            continue
        base = name[:-6]
        buckets = sorted(
            (float(dict(l)["le"]), v) for (n, l), v in samples.items()
            if n == base + "_bucket" and
            tuple(p for p in l if p[0] != "le") == labels)
        assert buckets and buckets[-1][0] == float("inf"), base
        assert buckets[-1][1] == value, base
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), "buckets not cumulative: " + base
    return samples, types


def value(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return samples.get(key)


class MetricsTestCase(gh.GatewayTestCase):

    def setUp(self):
        if shutil.which("curl") is None:
            self.skipTest("no curl")
        super().setUp()

    def curl(self, port, path, extra=()):
        """(status, body) of GET path with the real curl."""
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "%d" % gh.DEADLINE, "-o", "-",
             "-w", "\n%{http_code}"] + list(extra) +
            ["http://127.0.0.1:%d%s" % (port, path)],
            capture_output=True, timeout=gh.DEADLINE + 10)
        body, _, status = r.stdout.decode().rpartition("\n")
        return int(status), body

    def scrape(self, port):
        status, body = self.curl(port, "/metrics")
        self.assertEqual(status, 200)
        samples, _ = parse_exposition(body)
        return samples

    def config(self, mport, listeners, limits=""):
        out = ["log: {level: info, format: json}",
               "metrics: {listen: \"tcp://127.0.0.1:%d\"}" % mport]
        if limits:
            out.append("limits: {%s}" % limits)
        out.append("listeners:")
        return "\n".join(out) + "\n" + "".join(listeners)

    def plain(self, name, port, routes, extra=""):
        out = ["  - name: %s" % name,
               "    listen: \"tcp://127.0.0.1:%d\"" % port,
               "    accept: plain"]
        if extra:
            out.append(extra)
        out.append("    routes:")
        for r in routes:
            out.append("      - name: %s" % r["name"])
            for k, v in r.items():
                if k != "name":
                    out.append("        %s: %s" % (k, v))
        return "\n".join(out) + "\n"

    def test_format_and_drops(self):
        echo = self.backend()
        mport, p_echo, p_dead, p_pdu, p_max = (gh.free_port()
                                               for _ in range(5))
        g = self.gateway(self.config(mport, [
            self.plain("echo", p_echo, [
                {"name": "echo", "backend": "\"%s\"" % echo.address}]),
            self.plain("dead", p_dead, [
                {"name": "nobody",
                 "backend": "\"unix:%s/nobody.sock\"" % self.tmp}]),
            self.plain("pdu", p_pdu, [
                {"name": "framed", "backend": "\"%s\"" % echo.address,
                 "framing": "length32", "max_pdu": "64"}]),
            self.plain("few", p_max, [
                {"name": "echo2", "backend": "\"%s\"" % echo.address}],
                extra="    max_connections: 1"),
        ], limits="idle_timeout: 400ms"))

        status, body = self.curl(mport, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        status, body = self.curl(mport, "/readyz")
        self.assertEqual((status, body), (200, "ready\n"))
        s = self.scrape(mport)
        self.assertEqual(value(s, "tsgate_ready"), 1)
        info = [k for k in s if k[0] == "tsgate_build_info"]
        self.assertEqual(len(info), 1, info)
        labels = dict(info[0][1])
        self.assertEqual(labels["version"], "0.1.0")
        self.assertEqual(sorted(labels), ["gnutls", "krb5", "talloc",
                                          "tevent", "version"])
        self.assertEqual(s[info[0]], 1)
        self.assertEqual(value(s, "tsgate_connection_drops_total",
                               listener="dead", reason="backend_refused"),
                         0)

        # one good exchange, bytes each way
        c = self.connect("tcp://127.0.0.1:%d" % p_echo)
        self.assertEqual(gh.exchange(c, b"x" * 1000), b"x" * 1000)
        c.close()
        # backend refused
        c = self.connect("tcp://127.0.0.1:%d" % p_dead)
        gh.recv_all(c)
        c.close()
        # a PDU over max_pdu
        c = self.connect("tcp://127.0.0.1:%d" % p_pdu)
        c.sendall(b"\x00\x00\x10\x00" + b"y" * 16)
        gh.recv_all(c)
        c.close()
        # max_connections: 1 — the second is refused
        held = self.connect("tcp://127.0.0.1:%d" % p_max)
        held.sendall(b"hi")  # (exchange() would half-close it)
        self.assertEqual(gh.recv_exact(held, 2), b"hi")
        refused = self.connect("tcp://127.0.0.1:%d" % p_max)
        self.assertEqual(gh.recv_all(refused), b"")
        refused.close()
        # held goes silent: idle timeout
        self.assertEqual(gh.recv_all(held), b"")
        held.close()
        # four conn lines (the refused connection has a limit line
        # instead); the idle timeout's is the last, after every count
        g.wait_conn_lines(4)

        s = self.scrape(mport)
        drops = {(l["listener"], l["reason"]): int(v)
                 for (n, lt), v in s.items()
                 if n == "tsgate_connection_drops_total"
                 for l in [dict(lt)] if v > 0}
        self.assertEqual(drops, {
            ("dead", "backend_refused"): 1,
            ("pdu", "pdu_too_large"): 1,
            ("few", "max_connections"): 1,
            ("few", "idle_timeout"): 1,
        })
        self.assertEqual(value(s, "tsgate_route_bytes_total",
                               listener="echo", route="echo",
                               direction="client_to_backend"), 1000)
        self.assertEqual(value(s, "tsgate_route_bytes_total",
                               listener="echo", route="echo",
                               direction="backend_to_client"), 1000)
        self.assertEqual(value(s, "tsgate_backend_connect_failures_total",
                               listener="dead", route="nobody"), 1)
        self.assertEqual(value(
            s, "tsgate_backend_connect_duration_seconds_count",
            listener="echo", route="echo"), 1)
        self.assertEqual(value(s, "tsgate_connections_total",
                               listener="few"), 2)
        for lst in ("echo", "dead", "pdu", "few"):
            self.assertEqual(value(s, "tsgate_connections_active",
                                   listener=lst), 0)

    def test_tls_handshake_failures(self):
        certs = gh.Certs(self.tmp)
        echo = self.backend()
        mport, p = gh.free_port(), gh.free_port()
        g = self.gateway(self.config(mport, [
            "  - name: tls\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls: {cert: %s, key: %s}\n"
            "    routes:\n"
            "      - name: echo\n"
            "        backend: \"%s\"\n"
            % (p, certs.server, certs.server_key, echo.address)],
            limits="handshake_timeout: 300ms"))
        garbage = self.connect("tcp://127.0.0.1:%d" % p)
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        gh.recv_all(garbage)
        garbage.close()
        silent = self.connect("tcp://127.0.0.1:%d" % p)
        self.assertEqual(gh.recv_all(silent), b"")
        silent.close()
        g.wait_conn_lines(2)
        s = self.scrape(mport)
        hs = {dict(l)["reason"]: v for (n, l), v in s.items()
              if n == "tsgate_handshake_failures_total"}
        self.assertEqual(hs, {"timeout": 1, "protocol": 1, "auth": 0,
                              "closed": 0, "other": 0})
        self.assertEqual(value(s, "tsgate_connection_drops_total",
                               listener="tls", reason="handshake_timeout"), 1)
        self.assertEqual(value(s, "tsgate_connection_drops_total",
                               listener="tls", reason="handshake_failed"), 1)

    def test_reload_carries_counters(self):
        echo = self.backend()
        mport, p1, p2, p3 = (gh.free_port() for _ in range(4))
        route = {"name": "echo", "backend": "\"%s\"" % echo.address}
        g = self.gateway(self.config(mport, [
            self.plain("keep", p1, [route]),
            self.plain("gone", p2, [route])]))
        for _ in range(3):
            c = self.connect("tcp://127.0.0.1:%d" % p1)
            self.assertEqual(gh.exchange(c, b"abc"), b"abc")
            c.close()
        # a live connection on the listener the reload removes
        live = self.connect("tcp://127.0.0.1:%d" % p2)
        live.sendall(b"12345")
        self.assertEqual(gh.recv_exact(live, 5), b"12345")
        g.wait_conn_lines(3)

        # the new config: "keep" stays (same names), "gone" goes, "new"
        with open(g.config, "w") as f:
            f.write(self.config(mport, [
                self.plain("keep", p1, [route]),
                self.plain("new", p3, [route])]))
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: any(l.get("event") == "reload" for l in g.lines())))
        c = self.connect("tcp://127.0.0.1:%d" % p1)
        self.assertEqual(gh.exchange(c, b"abcd"), b"abcd")
        c.close()
        g.wait_conn_lines(4)

        s = self.scrape(mport)
        self.assertEqual(value(s, "tsgate_reloads_total", result="ok"), 1)
        self.assertEqual(value(s, "tsgate_connections_total",
                               listener="keep"), 4)
        self.assertEqual(value(s, "tsgate_route_bytes_total",
                               listener="keep", route="echo",
                               direction="client_to_backend"), 13)
        self.assertEqual(value(s, "tsgate_route_connections_total",
                               listener="new", route="echo"), 0)
        # "gone" lives on while its connection does, bytes still counted
        self.assertEqual(value(s, "tsgate_connections_active",
                               listener="gone"), 1)
        self.assertEqual(value(s, "tsgate_route_bytes_total",
                               listener="gone", route="echo",
                               direction="backend_to_client"), 5)
        live.close()
        g.wait_conn_lines(5)
        self.assertTrue(gh.wait_until(
            lambda: value(self.scrape(mport), "tsgate_connections_active",
                          listener="gone") is None))

        # a broken config: counted, and the counters stay
        with open(g.config, "w") as f:
            f.write("listeners: [\n")
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: value(self.scrape(mport), "tsgate_reloads_total",
                          result="failed") == 1))
        s = self.scrape(mport)
        self.assertEqual(value(s, "tsgate_connections_total",
                               listener="keep"), 4)

    def test_readyz_while_draining(self):
        echo = self.backend()
        mport, p = gh.free_port(), gh.free_port()
        g = self.gateway(self.config(mport, [
            self.plain("in", p, [{"name": "echo",
                                  "backend": "\"%s\"" % echo.address}])],
            limits="shutdown_grace: 10s"))
        c = self.connect("tcp://127.0.0.1:%d" % p)
        c.sendall(b"hold")
        self.assertEqual(gh.recv_exact(c, 4), b"hold")
        g.proc.send_signal(signal.SIGTERM)
        self.assertTrue(gh.wait_until(
            lambda: self.curl(mport, "/readyz") == (503, "draining\n")))
        self.assertEqual(self.curl(mport, "/healthz"), (200, "ok\n"))
        s = self.scrape(mport)
        self.assertEqual(value(s, "tsgate_ready"), 0)
        self.assertEqual(value(s, "tsgate_connections_active",
                               listener="in"), 1)
        c.close()
        g.proc.wait(gh.DEADLINE)
        self.assertEqual(g.proc.returncode, 0)


    def test_workers_one_exposition(self):
        """workers: 2 — worker 0 serves every worker's series, labelled
        worker="N"; /readyz answers for the whole set."""
        echo = self.backend()
        mport, p = gh.free_port(), gh.free_port()
        g = self.gateway("workers: 2\n" + self.config(mport, [
            self.plain("in", p, [{"name": "echo",
                                  "backend": "\"%s\"" % echo.address}])]))
        self.assertTrue(gh.wait_until(
            lambda: g.log_bytes().count(b"tsgate ready") >= 2))
        for _ in range(40):
            c = self.connect("tcp://127.0.0.1:%d" % p)
            self.assertEqual(gh.exchange(c, b"ping"), b"ping")
            c.close()
        lines = g.wait_conn_lines(40)
        per_worker = [len([l for l in lines if l["worker"] == w])
                      for w in (0, 1)]
        self.assertEqual(sum(per_worker), 40)
        self.assertTrue(gh.wait_until(
            lambda: value(self.scrape(mport), "tsgate_route_connections"
                          "_total", listener="in", route="echo",
                          worker="1") == per_worker[1]))
        s = self.scrape(mport)
        for w in (0, 1):
            self.assertEqual(value(s, "tsgate_connections_total",
                                   listener="in", worker=str(w)),
                             per_worker[w])
            self.assertEqual(value(s, "tsgate_route_bytes_total",
                                   listener="in", route="echo",
                                   direction="client_to_backend",
                                   worker=str(w)), 4 * per_worker[w])
            self.assertEqual(value(s, "tsgate_worker_up", worker=str(w)), 1)
            self.assertEqual(value(s, "tsgate_ready", worker=str(w)), 1)
        self.assertTrue(all(dict(k[1]).get("worker") in ("0", "1")
                            for k in s), "a series without worker")
        self.assertEqual(self.curl(mport, "/readyz"), (200, "ready\n"))
        self.assertEqual(self.curl(mport, "/healthz"), (200, "ok\n"))
        # a restarted worker 1 answers again, its counters from 0
        with open("/proc/%d/task/%d/children" % (g.proc.pid, g.proc.pid)) \
                as f:
            workers = [int(x) for x in f.read().split()]
        self.assertEqual(len(workers), 2)
        # a worker that does not answer: up 0, the set not ready, and
        # the scrape still answered within the gather bound
        os.kill(workers[1], signal.SIGSTOP)
        try:
            t = time.monotonic()
            s = self.scrape(mport)
            if gh.timing_asserts_enabled():
                self.assertLess(time.monotonic() - t, 4.5)
            self.assertEqual(value(s, "tsgate_worker_up", worker="1"), 0)
            self.assertEqual(value(s, "tsgate_worker_up", worker="0"), 1)
            self.assertIsNone(value(s, "tsgate_connections_total",
                                    listener="in", worker="1"))
            self.assertEqual(self.curl(mport, "/readyz"),
                             (503, "1 of 2 workers not answering\n"))
        finally:
            os.kill(workers[1], signal.SIGCONT)
        # the worker answers once it runs again: not at once
        self.assertEqual(gh.wait_for_value(
            lambda: self.curl(mport, "/readyz"),
            lambda r: r == (200, "ready\n")), (200, "ready\n"))
        os.kill(workers[1], signal.SIGKILL)
        self.assertTrue(gh.wait_until(
            lambda: g.log_bytes().count(b"tsgate ready") >= 3))
        self.assertTrue(gh.wait_until(
            lambda: value(self.scrape(mport), "tsgate_connections_total",
                          listener="in", worker="1") == 0))
        self.assertEqual(self.curl(mport, "/readyz"), (200, "ready\n"))
        self.assertEqual(g.stop(), 0)

    def test_metrics_address_in_use(self):
        """A metrics address that is taken stops start-up with one clear
        line naming it once."""
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        mport = busy.getsockname()[1]
        try:
            cfg = os.path.join(self.tmp, "busy.yaml")
            with open(cfg, "w") as f:
                f.write(self.config(mport, [self.plain(
                    "in", gh.free_port(),
                    [{"name": "r", "backend": "\"tcp://127.0.0.1:9\""}])]))
            r = subprocess.run([gh.TSGATE, "--config", cfg],
                               capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        finally:
            busy.close()
        self.assertEqual(r.returncode, 1, r)
        err = r.stderr.decode()
        line = [l for l in err.splitlines() if "Address already" in l]
        self.assertEqual(len(line), 1, err)
        self.assertIn('"msg":"metrics: tcp://127.0.0.1:%d: Address already '
                      'in use"' % mport, line[0])

    def health(self, config_path):
        r = subprocess.run([gh.TSGATE, "--health", "--config", config_path],
                           capture_output=True, timeout=15)
        return r.returncode, r.stderr.decode()

    def test_health_cli(self):
        """tsgate --health, as the container HEALTHCHECK runs it."""
        echo = self.backend()
        mport, p = gh.free_port(), gh.free_port()
        g = self.gateway(self.config(mport, [
            self.plain("in", p, [{"name": "echo",
                                  "backend": "\"%s\"" % echo.address}])],
            limits="shutdown_grace: 10s"))
        self.assertEqual(self.health(g.config), (0, ""))
        # draining is still alive
        c = self.connect("tcp://127.0.0.1:%d" % p)
        c.sendall(b"hold")
        self.assertEqual(gh.recv_exact(c, 4), b"hold")
        g.proc.send_signal(signal.SIGTERM)
        self.assertTrue(gh.wait_until(
            lambda: self.curl(mport, "/readyz")[0] == 503))
        self.assertEqual(self.health(g.config)[0], 0)
        c.close()
        g.proc.wait(gh.DEADLINE)
        # nobody there any more
        code, err = self.health(g.config)
        self.assertEqual(code, 1)
        self.assertIn("refused", err)
        # no metrics listener: nothing to ask, healthy if the file loads
        plain = os.path.join(self.tmp, "nometrics.yaml")
        with open(plain, "w") as f:
            f.write("listeners:\n" + self.plain(
                "in", p, [{"name": "echo",
                           "backend": "\"%s\"" % echo.address}]))
        self.assertEqual(self.health(plain)[0], 0)
        with open(plain, "w") as f:
            f.write("listeners: [\n")
        self.assertEqual(self.health(plain)[0], 1)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
