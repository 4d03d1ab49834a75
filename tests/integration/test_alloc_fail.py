#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The real tsgate daemon with talloc allocations failing (issue 13).

The daemon runs with tests/common/talloc_failinject.c in LD_PRELOAD:
after it is ready (the test creates the shim's arm file), one talloc
allocation in N fails, at random with a fixed seed, for N = 50, 10 and 3,
while TLS round trips of random sizes go through it to an echo backend.
Each run asserts that:

  - the daemon stays up, and exits on SIGTERM without a crash;
  - no byte is corrupted: each round trip comes back exact, or short
    (a prefix of what was sent), or fails outright -- never other bytes;
  - every log line is whole: JSON lines parse as JSON, text lines start
    with a timestamp and a level (issue 13 defect 9: lone '"' lines);
  - every connection that failed has a conn line with a reason.

The start-up path: each of the first allocations of a start fails in
turn (one per run, TSGATE_FAILINJECT_ONLY); the daemon either starts
anyway or exits non-zero with an error line -- never a crash.

The same at 1 in 50 in client mode (connect: tls, length32 PDUs) and on
both ends of a GSSAPI tunnel (accept: gssapi, connect: gssapi; a
throw-away KDC).

Only talloc is interposed; GnuTLS (GMP) aborts when its own malloc fails,
which is why the shim never touches malloc (docs/hardening.md).
"""

import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_harness as gh  # noqa: E402

SHIM = os.path.join(gh.BUILDDIR, "tests", "libtalloc_failinject.so")
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warning|info|debug) \S")
ROUND_TRIPS = int(os.environ.get("TSGATE_ALLOC_FAIL_ROUND_TRIPS", "300"))


def shim_env(extra):
    env = {"LD_PRELOAD": SHIM}
    # the shim comes before libasan in an ASan build: that is intended
    env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                           ":verify_asan_link_order=0")
    env.update(extra)
    return env


def check_log_whole(test, raw, fmt, early=False):
    """Every line parses (JSON) or starts with a timestamp (text).
    early: the start-up path, where main() reports what fails before
    the logger exists as "what: why" lines (never a fragment: no
    leading quote, brace or blank)."""
    bad = []
    lines = []
    for line in raw.decode(errors="replace").split("\n")[:-1]:
        if (early and not line.startswith("{") and ": " in line and
                line[:1] not in ('"', "}", " ", "")):
            lines.append({"level": "error", "raw": line})
        elif fmt == "json":
            try:
                lines.append(json.loads(line))
            except ValueError:
                bad.append(line)
        elif TEXT_LINE.match(line):
            lines.append({"raw": line})
        else:
            bad.append(line)
    test.assertTrue(raw.endswith(b"\n") or not raw, "last line cut")
    test.assertEqual(bad, [], "%d log lines are not whole" % len(bad))
    return lines


class AllocFail(gh.GatewayTestCase):

    def setUp(self):
        super().setUp()
        if not os.path.exists(SHIM):
            raise AssertionError("the shim %s was not built" % SHIM)
        self.certs = gh.Certs(self.tmp)
        self.echo = self.backend(mode="echo")

    def config(self, port, fmt="json", workers=1):
        c = self.certs
        return "\n".join([
            "log: {level: info, format: %s}" % fmt,
            "workers: %d" % workers,
            "limits: {handshake_timeout: 5s}",
            "listeners:",
            "  - name: tls",
            "    listen: \"tcp://127.0.0.1:%d\"" % port,
            "    accept: tls",
            "    tls:",
            "      cert: %s" % c.server,
            "      key: %s" % c.server_key,
            "    routes:",
            "      - name: echo",
            "        backend: \"%s\"" % self.echo.address,
        ]) + "\n"

    def client_mode_config(self, port, backend_port):
        """Plain in, length32 PDUs, TLS out (client mode) to backend_port."""
        return "\n".join([
            "log: {level: info, format: json}",
            "limits: {handshake_timeout: 5s}",
            "listeners:",
            "  - name: out",
            "    listen: \"tcp://127.0.0.1:%d\"" % port,
            "    accept: plain",
            "    routes:",
            "      - name: tls-out",
            "        framing: length32",
            "        backend: \"tcp://127.0.0.1:%d\"" % backend_port,
            "        connect: tls",
            "        tls: {ca: %s, sni: localhost}" % self.certs.ca,
        ]) + "\n"

    def plain_round_trip(self, port, data):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            return "failed"
        try:
            got = gh.exchange(c, data, timeout=10)
        except OSError:
            return "failed"
        finally:
            c.close()
        if got == data:
            return "exact"
        if data.startswith(got):
            return "failed"
        return "corrupt"

    def round_trip(self, port, ctx, data):
        """'exact', 'failed' (nothing, or a prefix of data) or 'corrupt'."""
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            return "failed"
        try:
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
        except (OSError, ssl.SSLError):
            raw.close()
            return "failed"
        try:
            got, _ = gh.tls_roundtrip(sock, data, timeout=10)
        except (OSError, ssl.SSLError):
            return "failed"
        finally:
            sock.close()
        if got == data:
            return "exact"
        if data.startswith(got):
            return "failed"
        return "corrupt"

    def gss_configs(self, far_port, near_port, kdc):
        """A GSSAPI acceptor (to the echo backend) and a plain-in,
        GSSAPI-out client of it (alice's ccache)."""
        far = "\n".join([
            "log: {level: info, format: json}",
            "listeners:",
            "  - name: krb-in",
            "    listen: \"tcp://127.0.0.1:%d\"" % far_port,
            "    accept: gssapi",
            "    gssapi: {keytab: %s, principal: \"host/localhost\"}"
            % kdc.env["TT_KDC_SERVICE_KEYTAB"],
            "    routes:",
            "      - name: echo",
            "        backend: \"%s\"" % self.echo.address,
        ]) + "\n"
        near = "\n".join([
            "log: {level: info, format: json}",
            "listeners:",
            "  - name: krb-out",
            "    listen: \"tcp://127.0.0.1:%d\"" % near_port,
            "    accept: plain",
            "    routes:",
            "      - name: to-far",
            "        backend: \"tcp://127.0.0.1:%d\"" % far_port,
            "        connect: gssapi",
            "        gssapi: {target: \"host@localhost\", ccache: \"%s\"}"
            % kdc.env["TT_KDC_ALICE_CCACHE"],
        ]) + "\n"
        return far, near

    def run_rate(self, rate, fmt="json", workers=1, seed=None,
                 client_mode=False, gssapi=None):
        seed = seed if seed is not None else rate * 7919
        arm = os.path.join(self.tmp, "arm-%d-%s" % (rate, fmt))
        port = gh.free_port()
        config = self.config(port, fmt, workers)
        env = {}
        plain = client_mode or gssapi is not None
        if client_mode:
            # this daemon (no failures) is the TLS server of the one
            # under test, which runs in client mode in front of it
            tls_port = port
            self.gateway(self.config(tls_port))
            port = gh.free_port()
            config = self.client_mode_config(port, tls_port)
        if gssapi is not None:
            # gssapi = "acceptor" or "initiator": which of the two
            # daemons runs with failing allocations
            kdc = gh.Kdc(self.tmp)
            self.addCleanup(kdc.stop)
            if not kdc.available():
                raise AssertionError("no KDC: scripts/deps test installs "
                                     "krb5-kdc")
            env = dict(kdc.env)
            far_port, port = gh.free_port(), gh.free_port()
            far, near = self.gss_configs(far_port, port, kdc)
            if gssapi == "acceptor":
                config = far
            else:
                config = near
                self.gateway(far, env=env)
        env.update(shim_env({
            "TSGATE_FAILINJECT_RATE": str(rate),
            "TSGATE_FAILINJECT_SEED": str(seed),
            "TSGATE_FAILINJECT_ARM_FILE": arm,
        }))
        g = self.gateway(config, env=env)
        if gssapi == "acceptor":
            self.gateway(near, env=dict(kdc.env))
        open(arm, "w").close()
        ctx = self.certs.client_context()
        rnd = random.Random(seed)
        outcome = {"exact": 0, "failed": 0, "corrupt": 0, "stalled": 0}
        for _ in range(ROUND_TRIPS):
            data = rnd.randbytes(rnd.choice([1, 100, 4096, 16385, 65536,
                                             rnd.randrange(1, 200000)]))
            start = time.monotonic()
            if client_mode:
                pdus = b"".join(struct.pack(">I", len(p)) + p
                                for p in (data, data[:rnd.randrange(
                                    len(data) + 1)]))
                outcome[self.plain_round_trip(port, pdus)] += 1
            elif plain:
                outcome[self.plain_round_trip(port, data)] += 1
            else:
                outcome[self.round_trip(port, ctx, data)] += 1
            # a round trip that ran into the client's 10 s deadline: the
            # daemon stalled a connection instead of failing it
            if time.monotonic() - start > 9:
                outcome["stalled"] += 1
            self.assertIsNone(g.proc.poll(), "the daemon died:\n" +
                              g.log_bytes().decode(errors="replace")[-3000:])
        self.assertEqual(outcome["corrupt"], 0, outcome)
        if gh.timing_asserts_enabled():
            self.assertEqual(outcome["stalled"], 0, outcome)
        # every failed connection has its conn line with a reason
        if fmt == "json":
            def errors():
                return [l for l in g.lines()
                        if l.get("event") == "conn" and
                        l.get("result") == "error"]
            self.assertTrue(
                gh.wait_until(lambda: len(errors()) >= outcome["failed"]),
                (outcome, len(errors())))
            # the daemon runs on: a line it is writing now is checked
            # whole after it stopped, below
            raw = g.log_bytes()
            lines = check_log_whole(self, raw[:raw.rfind(b"\n") + 1], fmt)
            failed = [l for l in lines if l.get("event") == "conn" and
                      l.get("result") == "error"]
            self.assertGreaterEqual(len(failed), outcome["failed"],
                                    (outcome, len(failed)))
            for l in failed:
                self.assertTrue(l.get("reason"), l)
        # a crash is a signal; an exit under failing allocations may say
        # so with a non-zero code but must not be a signal
        self.gateways.remove(g)
        code = g.stop(timeout=20)
        raw = g.log_bytes()
        check_log_whole(self, raw, fmt)
        self.assertNotEqual(code, -signal.SIGKILL, "tsgate did not stop "
                            "within 20 s of SIGTERM (a stalled connection)")
        self.assertGreaterEqual(code, 0, "tsgate died by signal %d:\n%s" % (
            -code, raw.decode(errors="replace")[-3000:]))
        mode = ("client mode length32" if client_mode else
                 "gssapi " + gssapi if gssapi else "tls")
        print("rate 1/%d %s %s workers=%d: %s, %d log lines" % (
            rate, mode, fmt, workers, outcome, raw.count(b"\n")))
        return outcome

    def test_rate_50(self):
        outcome = self.run_rate(50)
        self.assertGreater(outcome["exact"], 0, outcome)

    def test_rate_10(self):
        self.run_rate(10)

    def test_rate_3(self):
        self.run_rate(3)

    def test_rate_10_text_log(self):
        self.run_rate(10, fmt="text")

    def test_rate_10_two_workers(self):
        self.run_rate(10, workers=2)

    def test_rate_50_client_mode_length32(self):
        """connect: tls with length32 PDUs: the daemon is the TLS client,
        and cuts PDUs, while its allocations fail."""
        outcome = self.run_rate(50, client_mode=True)
        self.assertGreater(outcome["exact"], 0, outcome)

    def test_rate_50_gssapi_acceptor(self):
        """accept: gssapi failing (a tsgate client in front, no
        failures there)."""
        outcome = self.run_rate(50, gssapi="acceptor")
        self.assertGreater(outcome["exact"], 0, outcome)

    def test_rate_50_gssapi_initiator(self):
        """connect: gssapi failing (the acceptor has no failures)."""
        outcome = self.run_rate(50, gssapi="initiator")
        self.assertGreater(outcome["exact"], 0, outcome)

    def start_once(self, env, name):
        """Start the daemon; returns ("ready", proc) or ("exit", code)."""
        cfgpath = os.path.join(self.tmp, name + ".yaml")
        logpath = os.path.join(self.tmp, name + ".log")
        with open(cfgpath, "w") as f:
            f.write(self.config(gh.free_port()))
        full = dict(os.environ)
        full.update(env)
        wrapper = os.environ.get("TSGATE_IT_WRAPPER", "").split()
        with open(logpath, "wb") as log:
            proc = subprocess.Popen(wrapper + [gh.TSGATE, "--config",
                                               cfgpath],
                                    env=full, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)

        def read():
            with open(logpath, "rb") as f:
                return f.read()
        if not gh.wait_until(lambda: proc.poll() is not None or
                             b"tsgate ready" in read()):
            # neither: taking it for "ready" would test nothing
            proc.kill()
            proc.wait(5)
            raise AssertionError("%s: tsgate neither ready nor gone:\n%s"
                                 % (name, read().decode(errors="replace")))
        if proc.poll() is None:
            state = "ready"
            proc.send_signal(signal.SIGTERM)
        else:
            state = "exit"
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError("%s: tsgate hung on SIGTERM" % name)
        return state, code, read()

    def test_startup_failures(self):
        report = os.path.join(self.tmp, "report")
        state, code, _ = self.start_once(shim_env({
            "TSGATE_FAILINJECT_REPORT": report}), "count")
        self.assertEqual((state, code), ("ready", 0))
        with open(report) as f:
            calls = int(f.read().split()[1])
        self.assertGreater(calls, 10)
        # every allocation of a start (and stop), up to 200 of them, then
        # a spread of the rest
        picks = list(range(1, min(calls, 200) + 1))
        picks += sorted(random.Random(13).sample(
            range(201, calls + 1), min(50, max(0, calls - 200))))
        exits = 0
        for k in picks:
            state, code, raw = self.start_once(shim_env({
                "TSGATE_FAILINJECT_ONLY": str(k)}), "only%d" % k)
            text = raw.decode(errors="replace")
            self.assertGreaterEqual(code, 0, "allocation %d: died by signal"
                                    " %d:\n%s" % (k, -code, text[-2000:]))
            lines = check_log_whole(self, raw, "json", early=True)
            if state == "exit":
                exits += 1
                self.assertNotEqual(code, 0, "allocation %d: exit 0 before"
                                    " ready:\n%s" % (k, text[-2000:]))
                self.assertTrue(
                    any(l.get("level") == "error" for l in lines),
                    "allocation %d: no error line:\n%s" % (k, text[-2000:]))
        print("start-up: %d allocations, %d tried, %d refused to start" % (
            calls, len(picks), exits))

    def reload_once(self, ports, env, name):
        """A daemon with two plain listeners, armed, then SIGHUP with the
        same file (both listeners keep their sockets). Returns the
        daemon, stopped, and which ports still echoed after the reload."""
        arm = os.path.join(self.tmp, name + ".arm")
        listeners = []
        for i, port in enumerate(ports):
            listeners += [
                "  - name: l%d" % i,
                "    listen: \"tcp://127.0.0.1:%d\"" % port,
                "    accept: plain",
                "    routes:",
                "      - backend: \"%s\"" % self.echo.address]
        config = "\n".join(["log: {level: info, format: json}",
                            "listeners:"] + listeners) + "\n"
        env = dict(env, TSGATE_FAILINJECT_ARM_FILE=arm)
        g = self.gateway(config, name=name, env=shim_env(env))
        open(arm, "w").close()
        g.proc.send_signal(signal.SIGHUP)
        self.assertTrue(gh.wait_until(lambda: any(
            l.get("event") == "reload" for l in g.lines())),
            g.log_bytes().decode(errors="replace")[-2000:])
        alive = []
        for port in ports:
            # one allocation fails at most: a second try gets through
            for _ in range(2):
                try:
                    with socket.create_connection(("127.0.0.1", port),
                                                  timeout=5) as c:
                        c.sendall(b"ping")
                        if gh.recv_exact(c, 4) == b"ping":
                            alive.append(port)
                            break
                except OSError:
                    pass
        self.gateways.remove(g)
        code = g.stop(timeout=20)
        self.assertGreaterEqual(code, 0, "%s: died by signal" % name)
        return g, alive

    def test_reload_failures(self):
        """Each allocation of a reload that keeps two listeners fails in
        turn (one per run): the reload goes through or is refused, and
        either way both listeners still accept. A failure while the
        second listener took its socket over used to close the first
        one's (moved already, then freed with the refused new set)."""
        report = os.path.join(self.tmp, "reload-report")
        ports = [gh.free_port(), gh.free_port()]
        _, alive = self.reload_once(
            ports, {"TSGATE_FAILINJECT_REPORT": report}, "reload-count")
        self.assertEqual(alive, ports)
        with open(report) as f:
            calls = int(f.read().split()[3])
        self.assertGreater(calls, 10)
        broken = []
        for k in range(1, calls + 1):
            ports = [gh.free_port(), gh.free_port()]
            g, alive = self.reload_once(
                ports, {"TSGATE_FAILINJECT_ONLY": str(k)}, "reload%d" % k)
            if alive != ports:
                broken.append((k, sorted(set(ports) - set(alive)), [
                    l.get("msg") for l in g.lines()
                    if l.get("event") == "reload"]))
        self.assertEqual(broken, [], "listeners that stopped accepting "
                         "after a reload with allocation K failed")
        print("reload: %d allocations tried" % calls)


if __name__ == "__main__":
    gh.require_binary()
    unittest.main(verbosity=2)
