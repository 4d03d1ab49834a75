#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_smoke: scripts/bench's gateway part (tests/bench/bench_gateway.py)
still runs, with tiny sizes (BENCH_SMOKE=1), against every peer: each
figure has a value for every server in every round, the raw files are
written, and the resumption figures really resume where the server can
(stunnel, HAProxy and hitch always; tsgate when the build has session
tickets, i.e. knows tls.session_resumption). No timing is checked: the
figures belong to scripts/bench, this only keeps the benchmark from
rotting."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("TSGATE_SRCDIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TSGATE_BUILDDIR", "build")
BENCH = os.path.join(SRC, "tests", "bench", "bench_gateway.py")
PEERS = ["tsgate", "stunnel", "haproxy", "hitch"]
PEER_EXE = {"stunnel": "stunnel4", "haproxy": "haproxy", "hitch": "hitch"}
RUNS = 2
IDLE = 20


class BenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [e for e in PEER_EXE.values() if not shutil.which(e)]
        client = os.path.join(BUILD, "tests", "bench", "bench_gateway_client")
        if not os.access(client, os.X_OK):
            missing.append(client + " (libssl-dev)")
        if missing:
            raise AssertionError("bench_smoke needs %s: scripts/deps test "
                                 "installs them" % ", ".join(missing))
        cls.tmp = tempfile.mkdtemp(prefix="bench-smoke-")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("BENCH_"):
                del env[k]
        env.update({"BENCH_SMOKE": "1", "BENCH_RUNS": str(RUNS),
                    "BENCH_IDLE": str(IDLE),
                    "BENCH_JSON": os.path.join(cls.tmp, "raw.json"),
                    "BENCH_CSV": os.path.join(cls.tmp, "raw.csv")})
        r = subprocess.run([sys.executable, BENCH, BUILD], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=540)
        cls.out, cls.err, cls.rc = r.stdout, r.stderr, r.returncode
        with open(env["BENCH_JSON"]) as f:
            cls.doc = json.load(f)
        with open(env["BENCH_CSV"]) as f:
            cls.csv = list(csv.DictReader(f))
        probe = subprocess.run(
            [os.path.join(BUILD, "gateway", "tsgate"), "--check-config",
             "--config", cls.probe_config()], capture_output=True)
        cls.tsgate_resumes = probe.returncode == 0

    @classmethod
    def probe_config(cls):
        """A config with tls.session_resumption: --check-config fails on
        the key where tsgate has no session tickets (before issue 15)."""
        crt, key = (os.path.join(cls.tmp, n) for n in ("p.crt", "p.key"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", crt, "-days", "1", "-subj",
                        "/CN=localhost"], check=True, capture_output=True)
        path = os.path.join(cls.tmp, "probe.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - name: p\n"
                    "    listen: tcp://127.0.0.1:1\n"
                    "    accept: tls\n    tls:\n"
                    "      cert: %s\n      key: %s\n"
                    "      session_resumption: true\n"
                    "    routes:\n      - backend: tcp://127.0.0.1:2\n"
                    % (crt, key))
        return path

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_runs_without_errors(self):
        self.assertEqual(self.rc, 0, self.out[-3000:] + self.err[-3000:])
        self.assertEqual(self.doc["errors"], [])
        self.assertEqual(self.doc["peers"], PEERS)

    def test_every_round_of_every_figure(self):
        want = ["bulk", "handshake", "mtls", "resume1.3", "resume1.2",
                "firstbyte1.3-full", "firstbyte1.3-resumed",
                "idle%d" % IDLE, "idle%d-resumed" % IDLE]
        rounds = self.doc["rounds"]
        self.assertEqual(sorted(rounds), sorted(want))
        for fig in want:
            for p in PEERS:
                per = rounds[fig][p]
                self.assertEqual(len(per), RUNS, (fig, p))
                self.assertNotIn(None, per, (fig, p))
        for p in PEERS:
            for r in rounds["firstbyte1.3-full"][p]:
                self.assertEqual(r["n"], 5)
                self.assertGreater(r["after_hs_ms_p50"], 0)
                self.assertGreaterEqual(r["after_hs_ms_p99"],
                                        r["after_hs_ms_p50"])
        self.assertIsNotNone(self.doc["gss"])
        # idle memory is measured once every server holds both sockets of
        # every idle connection (a condition, not a pause)
        for p in PEERS:
            for fig in ("idle%d" % IDLE, "idle%d-resumed" % IDLE):
                for r in rounds[fig][p]:
                    self.assertTrue(r["all_backends_connected"], (fig, p, r))

    def test_resumption_is_counted(self):
        """The peers resume every reconnection; tsgate all of them when
        it has tickets and none before: a client that stopped offering
        its session, or a server config that lost its tickets, fails."""
        rounds = self.doc["rounds"]
        for p in PEERS:
            for fig in ("resume1.3", "resume1.2", "firstbyte1.3-resumed",
                        "idle%d-resumed" % IDLE):
                got = sum(r["resumed"] for r in rounds[fig][p])
                of = sum(r.get("offered", r.get("n")) for r in rounds[fig][p])
                self.assertGreater(of, 0, (fig, p))
                resumes = p != "tsgate" or self.tsgate_resumes
                self.assertEqual(got, of if resumes else 0, (fig, p))
            for fig in ("firstbyte1.3-full", "idle%d" % IDLE):
                self.assertEqual(sum(r["resumed"] for r in rounds[fig][p]),
                                 0, (fig, p))

    def test_table_and_raw_files(self):
        self.assertIn("| figure | tsgate | stunnel | haproxy | hitch | "
                      "tsgate lead over best peer: worst round | "
                      "median round |", self.out)
        for label in ("TLS 1.3 resumed handshake, echo: server CPU us",
                      "TLS 1.2 resumed / full server CPU",
                      "TLS 1.3 full, Nagle-on client: handshake end -> "
                      "first reply, p99 ms",
                      "PSS KiB per idle conn (%d, resumed TLS 1.3)" % IDLE,
                      "TLS 1.3 reconnections resumed"):
            self.assertIn("| " + label + " |", self.out)
        keys = {(r["figure"], r["server"], r["round"]) for r in self.csv}
        for fig in self.doc["rounds"]:
            for p in PEERS:
                for i in range(1, RUNS + 1):
                    self.assertIn((fig, p, str(i)), keys)


if __name__ == "__main__":
    unittest.main(verbosity=2)
