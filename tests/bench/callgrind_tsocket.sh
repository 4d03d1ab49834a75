#!/bin/sh
# SPDX-License-Identifier: MIT
# Instructions per operation of one benchmark figure, from callgrind:
# two runs of N and 2N operations (-n), so the set-up cancels out.
#
# Usage: callgrind_tsocket.sh BENCH_BINARY FIGURE [N]
#   e.g. tests/bench/callgrind_tsocket.sh \
#            build-bench/tests/bench/bench_tsocket pingpong
# Prints "FIGURE: X instructions per operation". Unlike timings, the
# counts repeat exactly on a loaded machine.
set -eu
bin=$1
figure=$2
n=${3:-20000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count() {
	valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1" \
		"$bin" -t 1000 -n "$1" "$figure" >/dev/null 2>"$tmp/log.$1"
	sed -n 's/^summary: //p' "$tmp/cg.$1"
}

one=$(count "$n")
two=$(count $((2 * n)))
echo "$figure: $(( (two - one) / n )) instructions per operation"
