# SPDX-License-Identifier: MIT
# Shared waits of the shell tests (sourced; docs/testing.md):
#   wait_for SECONDS CMD [ARGS...]  run CMD every 50 ms until it succeeds
#                                   (returns 0) or SECONDS pass (returns 1)
#   run_for SECONDS                 let time pass on purpose (a timeout to
#                                   expire), never as synchronisation
#   timing_asserts_enabled          false under valgrind/ASan
#                                   (TSGATE_NO_TIMING_ASSERTS=1)
#   DEADLINE                        seconds a wait for what must happen
#                                   gets: 30, 60 for an ASan build or a
#                                   wrapper (gateway_harness.DEADLINE)
# A test waits on a condition with wait_for, never "sleep, then check".

# shellcheck disable=SC2034 # read by the scripts that source this file
DEADLINE=30
if [ -n "${TSGATE_IT_WRAPPER:-}" ] ||
	grep -q libasan.so "${TSGATE_BUILDDIR:-.}/gateway/tsgate" 2>/dev/null; then
	DEADLINE=60
fi

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

wait_for() {
	local end
	end=$(($(now_ms) + $(awk -v t="$1" 'BEGIN { print int(t * 1000) }')))
	shift
	until "$@"; do
		if [ "$(now_ms)" -ge "$end" ]; then
			return 1
		fi
		sleep 0.05
	done
}

run_for() {
	sleep "$1"
}

timing_asserts_enabled() {
	case "${TSGATE_NO_TIMING_ASSERTS:-}" in
	"" | 0) return 0 ;;
	*) return 1 ;;
	esac
}
