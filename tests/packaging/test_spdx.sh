#!/usr/bin/env bash
# Every source file (C and headers, Python, shell, meson, version scripts)
# says "SPDX-License-Identifier: MIT" in its first lines (LICENSE): a file
# added without it fails here; `scripts/spdx` adds it.
# usage: test_spdx.sh SRCDIR
set -euo pipefail

src=$1
n=$("$src/scripts/spdx" --list | wc -l)
if [ "$n" -lt 150 ]; then
	echo "not ok - only $n source files found: is the list broken?"
	exit 1
fi
if missing=$("$src/scripts/spdx" --check); then
	echo "ok - all $n source files carry SPDX-License-Identifier: MIT"
else
	printf '%s\n' "$missing"
	echo "not ok - $(wc -l <<<"$missing") of $n source files lack the line (run scripts/spdx)"
	exit 1
fi
