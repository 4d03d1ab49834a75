# SPDX-License-Identifier: MIT
# Shared waits of the shell tests (sourced; docs/testing.md):
#   wait_for SECONDS CMD [ARGS...]  run CMD every 50 ms until it succeeds
#                                   (returns 0) or SECONDS pass (returns 1)
#   run_for SECONDS                 let time pass on purpose (a timeout to
#                                   expire), never as synchronisation
#   timing_asserts_enabled          false under valgrind/ASan
#                                   (TSGATE_NO_TIMING_ASSERTS=1)
# A test waits on a condition with wait_for, never "sleep, then check".

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
