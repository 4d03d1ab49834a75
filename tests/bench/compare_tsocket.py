#!/usr/bin/env python3
"""Run bench_tsocket (ours) and bench_tsocket_samba (Samba's tsocket) in
turn and print the medians side by side with the ours/Samba ratio.

Usage: compare_tsocket.py OURS SAMBA [--runs N] [--seconds S]

Runs alternate between the two binaries (ours first on even runs, Samba
first on odd ones) so that a slow moment of a shared machine hits both.
Higher is better for every figure; the goal is ratio >= 1.2.
"""

import argparse
import statistics
import subprocess
import sys

FIGURES = [
    ("bulk", "bulk_mib_per_s", "bulk 64 KiB writev/readv (MiB/s)"),
    ("pingpong", "pingpong_round_trips_per_s",
     "64-byte PDU ping-pong (round trips/s)"),
    ("udp", "udp_datagrams_per_s", "UDP 100-byte datagrams/s"),
]
GOAL = 1.2


def run(binary, figure, seconds):
    out = subprocess.run([binary, "-t", str(seconds), figure],
                         check=True, capture_output=True, text=True,
                         timeout=120).stdout
    values = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            values[parts[0]] = parts[1]
    return values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("samba")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()

    results = {}
    for figure, key, _ in FIGURES:
        ours, samba = [], []
        for i in range(args.runs):
            order = [(args.ours, ours), (args.samba, samba)]
            if i % 2:
                order.reverse()
            for binary, sink in order:
                sink.append(float(run(binary, figure, args.seconds)[key]))
        results[figure] = (ours, samba)

    print(f"tsocket benchmark: median of {args.runs} runs of "
          f"{args.seconds:g} s each, both libraries on the system tevent "
          f"(higher is better)")
    print(f"{'figure':40} {'tsgate':>12} {'samba':>12} {'ratio':>7}  goal")
    below = 0
    for figure, _, label in FIGURES:
        ours, samba = results[figure]
        mo, ms = statistics.median(ours), statistics.median(samba)
        ratio = mo / ms if ms > 0 else float("inf")
        verdict = "ok" if ratio >= GOAL else "BELOW"
        if ratio < GOAL:
            below += 1
        print(f"{label:40} {mo:12.1f} {ms:12.1f} {ratio:6.2f}x  "
              f">={GOAL}x {verdict}")
    for figure, _, label in FIGURES:
        ours, samba = results[figure]
        print(f"  {figure:9} tsgate runs: "
              + " ".join(f"{v:.0f}" for v in ours))
        print(f"  {figure:9} samba  runs: "
              + " ".join(f"{v:.0f}" for v in samba))
    if below:
        print(f"{below} figure(s) below the {GOAL}x goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
