#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""callgrind_resume_smoke: tests/bench/callgrind_resume.py still runs (two
handshakes of each kind), and the facts docs/performance.md draws from it
still hold; instruction counts are exact, so these are no timing checks:

- a TLS 1.3 resumption still does the X25519 exchange of a full handshake
  (GnuTLS resumes with psk_dhe_ke), a TLS 1.2 one does none and no ECDSA
  signature;
- a connection costs six setsockopt() calls (TCP_NODELAY and keepalive on
  the backend socket, TCP_QUICKACK on the client's): Nagle and keepalive
  of the client socket come from the listening socket.

A sanitizer build cannot run under valgrind: skipped (77) there."""

import os
import re
import subprocess
import sys
import unittest

SRC = os.environ.get("TSGATE_SRCDIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TSGATE_BUILDDIR", "build")
SCRIPT = os.path.join(SRC, "tests", "bench", "callgrind_resume.py")


def sanitized():
    tsgate = os.path.join(BUILD, "gateway", "tsgate")
    out = subprocess.run(["ldd", tsgate], capture_output=True,
                         text=True).stdout
    return "libasan" in out or "libubsan" in out


def row(text, label):
    """The numbers of the first table row whose label starts so."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(label):
            return [float(c.split(";")[0]) if c else None
                    for c in cells[1:]]
    raise AssertionError("no row %r in:\n%s" % (label, text))


class CallgrindResume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        r = subprocess.run([sys.executable, SCRIPT, BUILD, "2"],
                           capture_output=True, text=True, timeout=900)
        cls.out = r.stdout
        cls.err = r.stderr
        cls.rc = r.returncode

    def test_runs(self):
        self.assertEqual(self.rc, 0, self.err[-3000:])
        self.assertIn("| | TLS 1.3 full | TLS 1.3 resumed | TLS 1.2 full "
                      "| TLS 1.2 resumed |", self.out)

    def test_key_exchange_and_signature(self):
        x = row(self.out, "X25519")
        ecdsa = row(self.out, "ECDSA")
        # per handshake: 1.3 full, 1.3 resumed, 1.2 full, 1.2 resumed
        self.assertGreater(x[0], 500000)
        self.assertEqual(x[0], x[1])
        self.assertLess(x[3], 1000)
        self.assertGreater(ecdsa[0], 300000)
        self.assertLess(ecdsa[1], 1000)
        self.assertLess(ecdsa[3], 1000)
        ir = row(self.out, "instructions")
        self.assertLess(ir[1], ir[0])
        self.assertLess(ir[3], ir[2] / 2)

    def test_setsockopt_per_connection(self):
        self.assertEqual(row(self.out, "setsockopt"), [6.0] * 4,
                         re.findall(r".*setsockopt.*", self.out))


if __name__ == "__main__":
    if sanitized():
        sys.stderr.write("a sanitizer build does not run under valgrind\n")
        sys.exit(77)
    unittest.main()
