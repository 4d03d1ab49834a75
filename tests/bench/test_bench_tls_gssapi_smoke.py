#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_tls_gssapi_smoke: scripts/bench's tls-gssapi part
(tests/bench/bench_tls_gssapi.py) still runs, with tiny sizes, for the
three modes: every figure has a value. No timing is checked (the figures
belong to scripts/bench); this only keeps the benchmark from rotting."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("TSGATE_SRCDIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TSGATE_BUILDDIR", "build")
BENCH = os.path.join(SRC, "tests", "bench", "bench_tls_gssapi.py")
KEYS = ("mb_per_s", "server_cpu_s_per_gib", "client_cpu_s_per_gib",
        "setups_per_s", "server_cpu_us_per_setup")


class BenchTlsGssapiSmoke(unittest.TestCase):
    def test_every_mode_has_every_figure(self):
        for prog in ("bench_gateway_client", "bench_gateway_gss"):
            path = os.path.join(BUILD, "tests", "bench", prog)
            self.assertTrue(os.access(path, os.X_OK),
                            path + " missing: scripts/deps test installs "
                            "libssl-dev and the krb5 headers")
        with tempfile.TemporaryDirectory(prefix="bench-tg-smoke-") as tmp:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("BENCH_")}
            env.update({"BENCH_BYTES": str(1 << 20), "BENCH_RUNS": "1",
                        "BENCH_TG_SETUPS": "5",
                        "BENCH_JSON": os.path.join(tmp, "raw.json")})
            r = subprocess.run([sys.executable, BENCH, BUILD], env=env,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
            with open(env["BENCH_JSON"]) as f:
                doc = json.load(f)
        self.assertEqual(sorted(doc["results"]),
                         ["gssapi", "tls", "tls-gssapi"])
        for mode, res in doc["results"].items():
            for k in KEYS:
                self.assertIsNotNone(res.get(k), (mode, k))
        self.assertIn("| set-ups/s (one after the other) |", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
