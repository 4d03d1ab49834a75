#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run bench_tsocket (ours) and bench_tsocket_samba (Samba's tsocket) in
turn and print the medians side by side with the ours/Samba ratio.

Usage: compare_tsocket.py OURS SAMBA [--runs N] [--seconds S]

Runs alternate between the two binaries (ours first on even runs, Samba
first on odd ones) so that a slow moment of a shared machine hits both.
Each figure is reported per wall-clock second and per CPU second of the
benchmark process (both ends of every exchange run in that one process, so
the two agree on an idle machine; on a shared one the CPU figure leaves out
the time other processes took). Each run of ours is paired with the Samba
run next to it, and the ratio reported is the median of those paired
ratios (per CPU second), which a load that drifts during the whole
comparison disturbs less than a ratio of medians. "best" is the ratio of
the fastest run of each (other processes only ever slow a run down, so the
fastest run is the closest to an idle machine).
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
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()

    results = {}
    for figure, key, _ in FIGURES:
        runs = {"ours": ([], []), "samba": ([], [])}
        for i in range(args.runs):
            order = [("ours", args.ours), ("samba", args.samba)]
            if i % 2:
                order.reverse()
            for name, binary in order:
                values = run(binary, figure, args.seconds)
                runs[name][0].append(float(values[key]))
                runs[name][1].append(float(values[key + "_cpu"]))
        results[figure] = runs

    print(f"tsocket benchmark: median of {args.runs} runs of "
          f"{args.seconds:g} s each, both libraries on the system tevent "
          f"(higher is better; ratio: median of paired per-CPU-second "
          f"ratios)")
    print(f"{'figure':40} {'tsgate':>10} {'samba':>10} {'ratio':>6} "
          f"{'best':>6}   {'wall: tsgate':>12} {'samba':>10} {'ratio':>6}"
          f"  goal")
    below = 0
    for figure, _, label in FIGURES:
        ours, samba = results[figure]["ours"], results[figure]["samba"]
        wo, ws = statistics.median(ours[0]), statistics.median(samba[0])
        co, cs = statistics.median(ours[1]), statistics.median(samba[1])
        ratio = statistics.median(o / m for o, m in zip(ours[1], samba[1]))
        wratio = statistics.median(o / m for o, m in zip(ours[0], samba[0]))
        best = max(ours[1]) / max(samba[1])
        verdict = "ok" if ratio >= GOAL else "BELOW"
        if ratio < GOAL:
            below += 1
        print(f"{label:40} {co:10.0f} {cs:10.0f} {ratio:5.2f}x "
              f"{best:5.2f}x   {wo:12.0f} {ws:10.0f} {wratio:5.2f}x  "
              f">={GOAL}x {verdict}")
    for figure, _, _ in FIGURES:
        for name in ("ours", "samba"):
            cpu = results[figure][name][1]
            print(f"  {figure:9} {name:5} per-CPU-s runs: "
                  + " ".join(f"{v:.0f}" for v in cpu))
    if below:
        print(f"{below} figure(s) below the {GOAL}x goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
