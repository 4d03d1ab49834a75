#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tsocket oracle's driver: runs tsocket_oracle (tsgate's libtsocket)
and tsocket_oracle_samba (Samba's tsocket) with the same seeds and diffs
their traces; any difference fails with the first differing line.
docs/tsocket.md ("The Samba oracle") describes the test.

Usage: tsocket_oracle.py OURS SAMBA [SEED...]
  (default seeds: 1..4; TSOCKET_ORACLE_SEEDS=N runs 1..N)
"""

import os
import subprocess
import sys

TIMEOUT_S = 240


def run(exe, seed):
    """Trace lines of one run; fails on a crash, a hang or a bad exit."""
    try:
        p = subprocess.run([exe, str(seed)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT_S,
                           check=False)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAIL: {exe} seed {seed}: no end after {TIMEOUT_S} s")
    out = p.stdout.decode(errors="replace").splitlines()
    if p.returncode != 0:
        tail = "\n".join(out[-5:])
        sys.exit(f"FAIL: {exe} seed {seed}: exit status {p.returncode}\n"
                 f"{p.stderr.decode(errors='replace')}\nlast lines:\n{tail}")
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ours, samba = sys.argv[1], sys.argv[2]
    for exe in (ours, samba):
        if not os.access(exe, os.X_OK):
            sys.exit(f"FAIL: {exe} missing: the oracle needs Samba's "
                     "tsocket (scripts/deps test installs samba-libs "
                     "and samba-dev)")
    if len(sys.argv) > 3:
        seeds = [int(s) for s in sys.argv[3:]]
    else:
        seeds = range(1, int(os.environ.get("TSOCKET_ORACLE_SEEDS", "4")) + 1)
    failed = False
    for seed in seeds:
        a = run(ours, seed)
        b = run(samba, seed)
        wrong = [line for line in a + b if "WRONG-BYTES" in line]
        phase = "?"
        diff = None
        for i in range(max(len(a), len(b))):
            la = a[i] if i < len(a) else "(end of trace)"
            lb = b[i] if i < len(b) else "(end of trace)"
            if la.startswith("== "):
                phase = la[3:]
            if la != lb:
                diff = (i, la, lb)
                break
        if diff is not None:
            i, la, lb = diff
            ctx = "\n".join("  " + line for line in a[max(0, i - 3):i])
            print(f"FAIL: seed {seed}, phase {phase}, line {i + 1}:\n"
                  f"{ctx}\n  tsgate: {la}\n  samba:  {lb}")
            failed = True
        elif wrong:
            print(f"FAIL: seed {seed}: both deliver wrong bytes:\n  "
                  + "\n  ".join(wrong[:5]))
            failed = True
        else:
            print(f"ok: seed {seed}: {len(a)} trace lines agree")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
