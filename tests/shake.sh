#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Shake the integration suite the way CI's worst case runs it
# (docs/testing.md, "Shaking the suite"): the ASan + UBSan build, two
# tests at a time, beside two CPU hogs, ROUNDS times. Further arguments go
# to meson test (a test name, --repeat N...). Logs: build-asan/meson-logs/
# shake-ROUND.txt. Exits non-zero when any round failed.
#
# usage: tests/shake.sh [ROUNDS] [meson test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-2}
shift || true

scripts/build build-asan -Db_sanitize=address,undefined -Db_lundef=false

hogs=()
stop_hogs() {
	if [ ${#hogs[@]} -gt 0 ]; then
		kill "${hogs[@]}" 2>/dev/null || true
	fi
}
trap stop_hogs EXIT
for _ in 1 2; do
	nice -n 19 sh -c 'while :; do :; done' &
	hogs+=($!)
done

status=0
for round in $(seq "$rounds"); do
	echo "== shake round $round of $rounds"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		nice meson test -C build-asan --suite integration \
		--num-processes 2 --print-errorlogs --logbase "shake-$round" \
		"$@" || status=1
done
exit $status
