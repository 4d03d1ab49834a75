#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run built libFuzzer targets from their committed seed corpus.
#
#   tests/fuzz/run.sh TARGET|all SECONDS
#
# TARGET is config, framing, proxy, http, gssapi, gssapi-data, tls-accept, ticket-keys,
# gssapi-auth or tls-record13
# (with or without the fuzz- prefix). Builds nothing: the fuzzers come
# from $FUZZ_BUILDDIR (default build-fuzz, see docs/fuzzing.md). Each
# runs for SECONDS from a temporary copy of tests/fuzz/corpus/TARGET, so
# the committed corpus is never touched; crashes, leaks and timeouts land in
# $FUZZ_BUILDDIR/fuzz-artifacts/TARGET/ and make the script fail.
# FUZZ_KEEP_CORPUS=DIR keeps the grown corpora under DIR/TARGET.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
builddir=${FUZZ_BUILDDIR:-$root/build-fuzz}
all_targets="config framing proxy http gssapi gssapi-data tls-accept ticket-keys gssapi-auth tls-record13"

usage() {
	echo "usage: $0 TARGET|all SECONDS (targets: $all_targets)" >&2
	exit 2
}

[ $# -eq 2 ] || usage
case "$2" in
'' | *[!0-9]*) usage ;;
esac
seconds=$2
if [ "$1" = all ]; then
	targets=$all_targets
else
	targets=${1#fuzz-}
fi

# Per target: the longest input worth trying.
max_len() {
	case "$1" in
	config) echo 16384 ;;
	proxy) echo 4096 ;;
	framing) echo 4096 ;;
	http) echo 12288 ;; # past the 8 KiB head limit
	gssapi) echo 16384 ;;
	gssapi-data) echo 4096 ;;
	gssapi-auth) echo 16384 ;;
	tls-accept) echo 16384 ;;
	tls-record13) echo 20000 ;; # past one full record
	*) echo 4096 ;;
	esac
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsgate-fuzz-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# UBSan findings are crashes too; LSan runs after every input that leaks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

status=0
for t in $targets; do
	bin=$builddir/tests/fuzz/fuzz-$t
	seeds=$here/corpus/$t
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin is not built (CC=clang meson setup" \
			"$builddir -Dfuzzing=true ...; see docs/fuzzing.md)" >&2
		status=1
		continue
	fi
	if [ ! -d "$seeds" ]; then
		echo "run.sh: no seed corpus $seeds" >&2
		status=1
		continue
	fi
	artifacts=$builddir/fuzz-artifacts/$t
	mkdir -p "$artifacts" "$tmp/$t"
	cp -r "$seeds/." "$tmp/$t/"
	echo "== fuzz-$t for ${seconds}s from $(ls "$seeds" | wc -l) seeds"
	if ! "$bin" "$tmp/$t" \
		-max_total_time="$seconds" \
		-max_len="$(max_len "$t")" \
		-timeout=25 \
		-rss_limit_mb=2048 \
		-detect_leaks=1 \
		-print_final_stats=1 \
		-artifact_prefix="$artifacts/" \
		>"$tmp/$t.log" 2>&1; then
		status=1
		tail -n 80 "$tmp/$t.log" >&2
		echo "run.sh: fuzz-$t FAILED; reproducer(s) in $artifacts:" >&2
		ls -l "$artifacts" >&2
	else
		grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE' \
			"$tmp/$t.log" || true
		echo "   corpus: $(ls "$tmp/$t" | wc -l) inputs"
	fi
	if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
		mkdir -p "$FUZZ_KEEP_CORPUS/$t"
		cp -r "$tmp/$t/." "$FUZZ_KEEP_CORPUS/$t/"
	fi
done
exit $status
