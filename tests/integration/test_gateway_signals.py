#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What operators' tools read from the real daemon (issue 17):

- sd_notify: READY=1 once every listener is bound (with workers: once
  every worker is up, from the supervisor), RELOADING=1 with
  MONOTONIC_USEC then READY=1 on SIGHUP (applied or refused), STOPPING=1
  on SIGTERM, in that order, on a datagram socket this test binds (a path
  and an abstract '@' name; no systemd needed);
- the journal: with JOURNAL_STREAM naming stderr, every line starts with
  its syslog priority <N>; --log-level over TSGATE_LOG_LEVEL over the file;
- /metrics parsed by prometheus_client's parser (Debian
  python3-prometheus-client) and the strict parser of
  test_gateway_metrics.py: handshake and connection duration histograms,
  tsgate_build_info, process metrics checked against /proc of the daemon
  and of each worker;
- log wording: no doubled 'handshake failed' prefix, no 'Permission
  denied' for a connection without a route, no 'Invalid argument' after a
  refused reload, the level written 'warning', the backend address that
  was actually connected.
"""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402
import test_gateway_metrics as tgm  # noqa: E402

PRIORITY = {"error": "<3>", "warning": "<4>", "info": "<6>", "debug": "<7>"}


def prom_parse(text):
    """{(name, sorted labels): value} through prometheus_client's parser
    (the Debian package lives in the system python; this one may be
    another)."""
    code = ("import json, sys\n"
            "from prometheus_client.parser import "
            "text_string_to_metric_families as parse\n"
            "out = []\n"
            "for f in parse(sys.stdin.read()):\n"
            "    for s in f.samples:\n"
            "        out.append([f.name, f.type, s.name, s.labels, "
            "s.value])\n"
            "print(json.dumps(out))\n")
    for py in (sys.executable, "/usr/bin/python3"):
        r = subprocess.run([py, "-c", code], input=text, text=True,
                           capture_output=True, timeout=60)
        if r.returncode == 0:
            break
        if "No module named 'prometheus_client'" not in r.stderr:
            raise AssertionError("prometheus_client refused the text:\n"
                                 + r.stderr)
    else:
        raise AssertionError("python3-prometheus-client is missing "
                             "(scripts/deps test installs it)")
    out = {}
    for fam, typ, name, labels, value in json.loads(r.stdout):
        out[(name, tuple(sorted(labels.items())))] = value
    return out


class Notify:
    """A datagram socket like systemd's $NOTIFY_SOCKET, with sender pids."""

    def __init__(self, tmpdir, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            self.name = "@tsgate-it-notify-%d-%d" % (os.getpid(),
                                                     time.monotonic_ns())
            self.sock.bind("\0" + self.name[1:])
        else:
            self.name = os.path.join(tmpdir, "notify.sock")
            self.sock.bind(self.name)

    def recv(self, timeout=20.0):
        """(message, sender pid) of the next datagram."""
        self.sock.settimeout(timeout)
        msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(data[0:4], sys.byteorder)
        return msg.decode(), pid

    def nothing_more(self, seconds=0.3):
        self.sock.settimeout(seconds)
        try:
            msg, _ = self.sock.recvfrom(4096)
        except socket.timeout:
            return True
        raise AssertionError("unexpected notification %r" % msg)

    def close(self):
        self.sock.close()


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def fields(msg):
    return dict(line.split("=", 1) for line in msg.split("\n"))


def plain_yaml(port, backend, level="info", fmt="json", workers=None,
               metrics=None, extra_route=""):
    out = ["log: {level: %s, format: %s}" % (level, fmt)]
    if workers:
        out.append("workers: %d" % workers)
    if metrics:
        out.append("metrics: {listen: \"tcp://127.0.0.1:%d\"}" % metrics)
    out += ["listeners:",
            "  - name: pub",
            "    listen: \"tcp://127.0.0.1:%d\"" % port,
            "    accept: plain",
            "    routes:",
            "      - name: all",
            "        backend: \"%s\"" % backend]
    if extra_route:
        out.append(extra_route)
    return "\n".join(out) + "\n"


class SdNotify(gh.GatewayTestCase):

    def reload_and_wait(self, n, before):
        """RELOADING=1 with a MONOTONIC_USEC from the reload, then
        READY=1; returns READY's STATUS."""
        msg, pid = n.recv()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        f = fields(msg)
        self.assertEqual(sorted(f), ["MONOTONIC_USEC", "RELOADING"], msg)
        self.assertEqual(f["RELOADING"], "1")
        self.assertTrue(before <= int(f["MONOTONIC_USEC"]) <= after, msg)
        msg, pid2 = n.recv()
        f = fields(msg)
        self.assertEqual(f["READY"], "1", msg)
        return f["STATUS"], pid, pid2

    def test_single_process_order(self):
        n = Notify(self.tmp)
        echo = self.backend()
        port = gh.free_port()
        g = self.gateway(plain_yaml(port, echo.address),
                         env={"NOTIFY_SOCKET": n.name})
        msg, pid = n.recv()
        self.assertEqual(pid, g.proc.pid)
        self.assertEqual(fields(msg)["READY"], "1", msg)
        self.assertIn("STATUS", fields(msg))
        # READY came after the bind: the listener answers now
        c = self.connect("tcp://127.0.0.1:%d" % port)
        self.assertEqual(gh.exchange(c, b"ping"), b"ping")
        c.close()

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        g.proc.send_signal(signal.SIGHUP)
        status, _, _ = self.reload_and_wait(n, before)
        self.assertIn("reloaded", status)

        # a broken file: still RELOADING then READY (the old config runs)
        with open(g.config, "a") as f:
            f.write("bogus_key: 1\n")
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        g.proc.send_signal(signal.SIGHUP)
        status, _, _ = self.reload_and_wait(n, before)
        self.assertIn("refused", status)

        g.proc.send_signal(signal.SIGTERM)
        msg, pid = n.recv()
        self.assertEqual(fields(msg)["STOPPING"], "1", msg)
        self.assertIn("draining", fields(msg)["STATUS"])
        # its own exit (a second SIGTERM during teardown would kill it)
        self.assertEqual(g.proc.wait(30), 0)
        n.nothing_more()
        n.close()

    def test_workers_abstract_socket(self):
        """workers: 2 -- one READY=1, from the supervisor (the main pid
        systemd knows), only once both workers are up; one READY=1 after
        both have reloaded."""
        n = Notify(self.tmp, abstract=True)
        echo = self.backend()
        port = gh.free_port()
        g = self.gateway(plain_yaml(port, echo.address, workers=2),
                         env={"NOTIFY_SOCKET": n.name})
        msg, pid = n.recv()
        self.assertEqual(pid, g.proc.pid)
        self.assertEqual(fields(msg)["READY"], "1", msg)
        self.assertEqual(fields(msg)["STATUS"], "ready: 2 workers")
        # the workers log before they tell the supervisor
        self.assertEqual(g.log_bytes().count(b"tsgate ready"), 2)
        n.nothing_more()

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        g.proc.send_signal(signal.SIGHUP)
        status, pid1, pid2 = self.reload_and_wait(n, before)
        self.assertEqual((pid1, pid2), (g.proc.pid, g.proc.pid))
        reloads = [l for l in g.lines() if l.get("event") == "reload"]
        self.assertEqual(len(reloads), 2, reloads)
        n.nothing_more()

        g.proc.send_signal(signal.SIGTERM)
        msg, pid = n.recv()
        self.assertEqual(pid, g.proc.pid)
        self.assertEqual(fields(msg)["STOPPING"], "1", msg)
        self.assertEqual(g.proc.wait(30), 0)
        n.nothing_more()
        n.close()

    def test_repeated_sigterm_exits_cleanly(self):
        """SIGTERM again and again while tsgate stops (systemd's stop
        and an operator's kill): still exit 0, never 'killed by
        signal' (the event loop's handlers go before the process does)."""
        codes = []
        for i in range(10):
            echo = self.backend()
            g = self.gateway(plain_yaml(gh.free_port(), echo.address,
                                        workers=2 if i % 2 else None))
            while g.proc.poll() is None:
                try:
                    g.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    break
                time.sleep(0.0001)
            codes.append(g.proc.wait(30))
        self.assertEqual(codes, [0] * 10)

    def test_bad_notify_socket(self):
        """A NOTIFY_SOCKET nobody listens on: tsgate runs anyway."""
        echo = self.backend()
        port = gh.free_port()
        g = self.gateway(plain_yaml(port, echo.address),
                         env={"NOTIFY_SOCKET": os.path.join(self.tmp, "no")})
        c = self.connect("tcp://127.0.0.1:%d" % port)
        self.assertEqual(gh.exchange(c, b"ping"), b"ping")
        c.close()
        self.assertEqual(g.stop(), 0)


class Journal(gh.GatewayTestCase):

    def start(self, level, env, args=(), fmt="text"):
        """The daemon with stderr to a file whose dev:ino env may name."""
        echo = self.backend()
        port = gh.free_port()
        cfg = os.path.join(self.tmp, self.next_name("j") + ".yaml")
        with open(cfg, "w") as f:
            f.write(plain_yaml(port, echo.address, level=level, fmt=fmt))
        log = cfg + ".log"
        out = open(log, "wb")
        st = os.fstat(out.fileno())
        full = dict(os.environ)
        for k, v in env.items():
            full[k] = v.replace("DEV:INO", "%d:%d" % (st.st_dev, st.st_ino))
        p = subprocess.Popen([gh.TSGATE, "--config", cfg] + list(args),
                             env=full, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=out)
        out.close()
        self.assertTrue(gh.wait_until(lambda: tcp_open(port) or
                                      p.poll() is not None))
        return p, port, log

    def finish(self, p, log):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)
        with open(log) as f:
            return f.read().splitlines()

    def one_connection(self, port):
        c = self.connect("tcp://127.0.0.1:%d" % port)
        self.assertEqual(gh.exchange(c, b"x"), b"x")
        c.close()

    def test_priority_prefix(self):
        p, port, log = self.start("debug", {"JOURNAL_STREAM": "DEV:INO"})
        self.one_connection(port)
        # a refused backend: a warning line
        lines = self.finish(p, log)
        self.assertTrue(lines)
        seen = set()
        for line in lines:
            m = re.match(r"^(<\d>)\d{4}-\d\d-\d\dT\S+Z (\w+) ", line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(1), PRIORITY[m.group(2)], line)
            seen.add(m.group(2))
        self.assertTrue({"info", "debug"} <= seen, seen)

    def test_json_prefix_and_warning(self):
        p, port, log = self.start("info", {"JOURNAL_STREAM": "DEV:INO"},
                                  fmt="json")

        def conns():
            return open(log, "rb").read().count(b'"event":"conn"')

        # start()'s probe is a connection too: its line first, so that
        # the backend goes away after it was served, not during
        self.assertTrue(gh.wait_until(lambda: conns() >= 1))
        os.unlink(self.backends[-1].path)  # the backend refuses now
        c = self.connect("tcp://127.0.0.1:%d" % port)
        gh.recv_all(c, 10)
        c.close()
        self.assertTrue(gh.wait_until(lambda: conns() >= 2))
        lines = self.finish(p, log)
        conn = [l for l in lines if '"event":"conn"' in l][-1]
        self.assertTrue(conn.startswith('<4>{"time":'), conn)
        self.assertEqual(json.loads(conn[3:])["level"], "warning")

    def test_other_stream_no_prefix(self):
        """stderr redirected (the variable inherited, the stream not)."""
        p, port, log = self.start("info", {"JOURNAL_STREAM": "1:2"})
        lines = self.finish(p, log)
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^\d{4}-")

    def test_level_precedence(self):
        def levels(lines):
            return {re.match(r"^\S+ (\w+) ", l).group(1) for l in lines}

        # the file alone: error -- not a line at start or on a connection
        p, port, log = self.start("error", {})
        self.one_connection(port)
        self.assertEqual(self.finish(p, log), [])
        # TSGATE_LOG_LEVEL over the file
        p, port, log = self.start("error", {"TSGATE_LOG_LEVEL": "info"})
        self.one_connection(port)
        self.assertEqual(levels(self.finish(p, log)), {"info"})
        # --log-level over TSGATE_LOG_LEVEL
        p, port, log = self.start("error", {"TSGATE_LOG_LEVEL": "info"},
                                  args=["--log-level", "debug"])
        self.one_connection(port)
        self.assertEqual(levels(self.finish(p, log)), {"info", "debug"})
        p, port, log = self.start("info", {"TSGATE_LOG_LEVEL": "debug"},
                                  args=["--log-level", "error"])
        self.one_connection(port)
        self.assertEqual(self.finish(p, log), [])

    def test_level_override_survives_reload(self):
        p, port, log = self.start("error", {"TSGATE_LOG_LEVEL": "info"})
        p.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(
            lambda: b" info reload " in open(log, "rb").read()))
        self.one_connection(port)
        self.assertTrue(gh.wait_until(
            lambda: b" info conn " in open(log, "rb").read()))
        self.finish(p, log)

    def test_bad_level_names(self):
        cfg = os.path.join(self.tmp, "x.yaml")
        with open(cfg, "w") as f:
            f.write(plain_yaml(gh.free_port(), "unix:/nonexistent"))
        r = subprocess.run([gh.TSGATE, "--config", cfg, "--log-level",
                            "loud"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--log-level: unknown level 'loud'", r.stderr)
        r = subprocess.run([gh.TSGATE, "--config", cfg],
                           env=dict(os.environ, TSGATE_LOG_LEVEL="loud"),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("TSGATE_LOG_LEVEL: unknown level 'loud'", r.stderr)


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_btime():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise AssertionError("no btime")


def proc_soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return float(line.split()[3])
    raise AssertionError("no limit")


class Metrics(gh.GatewayTestCase):

    def scrape(self, port):
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "http://127.0.0.1:%d/metrics" % port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        strict, _ = tgm.parse_exposition(r.stdout)
        prom = prom_parse(r.stdout)
        self.assertEqual(set(strict), set(prom))
        return prom

    def check_process(self, s, pid, labels=()):
        tck = os.sysconf("SC_CLK_TCK")
        get = lambda n: s[(n, tuple(sorted(labels)))]  # noqa: E731
        st = proc_stat(pid)
        self.assertAlmostEqual(get("process_start_time_seconds"),
                               proc_btime() + int(st[19]) / tck, delta=0.011)
        self.assertEqual(get("process_max_fds"), proc_soft_nofile(pid))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        # the scrape's own socket came and went
        self.assertLessEqual(abs(get("process_open_fds") - fds), 2)
        cpu = (int(st[11]) + int(st[12])) / tck
        self.assertLessEqual(get("process_cpu_seconds_total"), cpu + 0.005)
        with open("/proc/%d/statm" % pid) as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")
        self.assertGreater(get("process_resident_memory_bytes"), rss / 2)
        self.assertLess(get("process_resident_memory_bytes"), rss * 2)
        self.assertGreaterEqual(get("process_virtual_memory_bytes"),
                                get("process_resident_memory_bytes"))

    def test_histograms_build_info_process(self):
        certs = gh.Certs(self.tmp)
        echo = self.backend()
        mport, p = gh.free_port(), gh.free_port()
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "metrics: {listen: \"tcp://127.0.0.1:%d\"}\n"
            "listeners:\n"
            "  - name: tls\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls: {cert: %s, key: %s}\n"
            "    routes:\n"
            "      - name: echo\n"
            "        backend: \"%s\"\n"
            % (mport, p, certs.server, certs.server_key, echo.address))
        s = self.scrape(mport)
        hs = ("tsgate_handshake_duration_seconds_count",
              (("kind", "tls"), ("listener", "tls")))
        self.assertEqual(s[hs], 0)   # there from the first scrape
        conn = ("tsgate_connection_duration_seconds_count",
                (("listener", "tls"), ("result", "ok"), ("route", "echo")))
        self.assertEqual(s[conn], 0)
        ctx = certs.client_context()
        with ctx.wrap_socket(self.connect("tcp://127.0.0.1:%d" % p),
                             server_hostname="localhost") as c:
            self.assertEqual(gh.tls_roundtrip(c, b"hello")[0], b"hello")
        g.wait_conn_lines(1)
        s = self.scrape(mport)
        self.assertEqual(s[hs], 1)
        self.assertEqual(s[conn], 1)
        inf = ("tsgate_handshake_duration_seconds_bucket",
               (("kind", "tls"), ("le", "+Inf"), ("listener", "tls")))
        self.assertEqual(s[inf], 1)
        self.assertGreater(s[("tsgate_handshake_duration_seconds_sum",
                              hs[1])], 0)
        info = [k for k in s if k[0] == "tsgate_build_info"]
        labels = dict(info[0][1])
        gnutls = subprocess.run(["gnutls-cli", "--version"],
                                capture_output=True, text=True).stdout
        self.assertIn(labels["gnutls"], gnutls)
        for lib in ("krb5", "talloc", "tevent"):
            built = subprocess.run(["pkg-config", "--modversion", lib],
                                   capture_output=True, text=True).stdout
            self.assertEqual(labels[lib], built.strip(), lib)
        self.check_process(s, g.proc.pid)

    def test_workers_process_metrics(self):
        echo = self.backend()
        mport, port = gh.free_port(), gh.free_port()
        g = self.gateway(plain_yaml(port, echo.address, workers=2,
                                    metrics=mport))
        with open("/proc/%d/task/%d/children" % (g.proc.pid,
                                                   g.proc.pid)) as f:
            pids = [int(x) for x in f.read().split()]
        self.assertEqual(len(pids), 2)
        s = self.scrape(mport)
        starts = {dict(l)["worker"]: v for (n, l), v in s.items()
                  if n == "process_start_time_seconds"}
        self.assertEqual(sorted(starts), ["0", "1"])
        for w, pid in self.worker_pids(g, pids, mport).items():
            self.check_process(s, pid, (("worker", w),))

    def worker_pids(self, g, pids, mport):
        """{"0": pid, "1": pid}: worker 0 holds the metrics socket."""
        inode = None
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(":%04X" % mport) and parts[3] == "0A":
                    inode = parts[9]
        self.assertIsNotNone(inode)
        out = {}
        for pid in pids:
            links = [os.readlink("/proc/%d/fd/%s" % (pid, fd))
                     for fd in os.listdir("/proc/%d/fd" % pid)]
            out["0" if "socket:[%s]" % inode in links else "1"] = pid
        self.assertEqual(sorted(out), ["0", "1"])
        return out


class Wording(gh.GatewayTestCase):

    def test_log_lines(self):
        certs = gh.Certs(self.tmp)
        echo = self.backend(kind="tcp")
        p_tls, p_plain = gh.free_port(), gh.free_port()
        g = self.gateway(
            "log: {level: info, format: json}\n"
            "listeners:\n"
            "  - name: tls\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: tls\n"
            "    tls: {cert: %s, key: %s}\n"
            "    routes:\n"
            "      - name: only-b\n"
            "        match: {sni: b.test}\n"
            "        backend: \"%s\"\n"
            "  - name: byname\n"
            "    listen: \"tcp://127.0.0.1:%d\"\n"
            "    accept: plain\n"
            "    routes:\n"
            "      - name: echo\n"
            "        backend: \"tcp://localhost:%d\"\n"
            % (p_tls, certs.server, certs.server_key, echo.address,
               p_plain, echo.port))
        # garbage on the TLS port: one 'handshake failed', not two
        c = self.connect("tcp://127.0.0.1:%d" % p_tls)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        gh.recv_all(c)
        c.close()
        line = g.wait_conn_lines(1)[0]
        self.assertEqual(line["level"], "warning")
        self.assertTrue(line["reason"].startswith("tls handshake failed: "),
                        line)
        self.assertEqual(line["reason"].lower().count("handshake failed"), 1,
                         line)
        # no route: our decision, not a socket's "Permission denied"
        ctx = certs.client_context()
        try:
            with ctx.wrap_socket(self.connect("tcp://127.0.0.1:%d" % p_tls),
                                 server_hostname="a.test") as t:
                t.recv(1)
        except (OSError, ssl.SSLError):
            pass
        line = g.wait_conn_lines(2)[1]
        self.assertEqual(line["reason"], "no route", line)
        self.assertNotIn("error", line)
        self.assertNotIn("Permission denied", json.dumps(line))
        # a backend named by host name: the address connected is logged
        c = self.connect("tcp://127.0.0.1:%d" % p_plain)
        self.assertEqual(gh.exchange(c, b"hi"), b"hi")
        c.close()
        line = g.wait_conn_lines(3)[2]
        self.assertEqual(line["backend"], "tcp://localhost:%d" % echo.port)
        self.assertEqual(line["backend_addr"], "127.0.0.1:%d" % echo.port)
        # a refused reload says how many errors, not "Invalid argument"
        with open(g.config, "a") as f:
            f.write("bogus_key: 1\n")
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(lambda: any(
            "configuration stays" in l.get("msg", "") for l in g.lines())))
        msgs = [l["msg"] for l in g.lines() if l.get("event") == "reload"]
        self.assertTrue(any("1 error;" in m for m in msgs), msgs)
        for m in msgs:
            self.assertNotIn("Invalid argument", m)

    def test_krb5_error_is_not_an_errno(self):
        """A broken krb5.conf: the Kerberos message, not strerror() of a
        krb5 code ("Unknown error -1765328248")."""
        conf = os.path.join(self.tmp, "krb5.conf")
        with open(conf, "w") as f:
            f.write("[libdefaults\n broken")
        keytab = os.path.join(self.tmp, "k.keytab")
        with open(keytab, "wb") as f:
            f.write(b"\x05\x02")
        os.chmod(keytab, 0o600)
        cfg = os.path.join(self.tmp, "g.yaml")
        with open(cfg, "w") as f:
            f.write("listeners:\n"
                    "  - name: g\n"
                    "    listen: \"tcp://127.0.0.1:%d\"\n"
                    "    accept: gssapi\n"
                    "    gssapi: {keytab: %s}\n"
                    "    routes:\n"
                    "      - name: a\n"
                    "        backend: \"unix:/nonexistent\"\n"
                    % (gh.free_port(), keytab))
        r = subprocess.run([gh.TSGATE, "--check-config", "--config", cfg],
                           env=dict(os.environ, KRB5_CONFIG=conf),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot start Kerberos", r.stderr)
        self.assertNotIn("Unknown error", r.stderr)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
