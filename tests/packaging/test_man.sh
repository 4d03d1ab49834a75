#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages (issue 17): tsgate(8) and tsgate.yaml(5) render with
# `groff -man -ww -z` without a warning, every option `tsgate --help`
# lists is described in tsgate(8) as "-x, --long", and every key of
# docs/configuration.md's key tables is a bold term in tsgate.yaml(5), so
# neither page can drift from the program or the reference.
# usage: test_man.sh TSGATE TSGATE.8 TSGATE.YAML.5 CONFIGURATION.md
set -euo pipefail

tsgate=$1
man8=$2
man5=$3
confmd=$4
command -v groff >/dev/null || {
	echo "FAIL: groff is missing (groff-base; scripts/deps test)" >&2
	exit 1
}
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $*"; fail=$((fail + 1)); }

for page in "$man8" "$man5"; do
	warn=$(groff -man -ww -z "$page" 2>&1) || warn="exit $?: $warn"
	if [ -z "$warn" ]; then
		ok "$(basename "$page") renders without warnings"
	else
		not_ok "$(basename "$page"): $warn"
	fi
	if grep -q '@VERSION@' "$page"; then
		not_ok "$(basename "$page") still says @VERSION@"
	fi
done

# tsgate(8) as text: no bold, underline or overstrike, no hyphenation
text8=$(groff -man -Tascii -P-cbou -rHY=0 "$man8" 2>/dev/null)
# "  -c, --config FILE   text" -> "-c, --config"
opts=$("$tsgate" --help | sed -n 's/^ *\(-[A-Za-z], --[a-z-]*\).*/\1/p')
[ -n "$opts" ] || not_ok "no options found in tsgate --help"
while read -r o; do
	[ -n "$o" ] || continue
	if grep -qF -- "$o" <<<"$text8"; then
		ok "tsgate(8) describes $o"
	else
		not_ok "tsgate(8) lacks $o (from tsgate --help)"
	fi
done <<<"$opts"

# the keys of docs/configuration.md's tables (header "| key | ...")
keys=$(python3 - "$confmd" <<'PY'
import re, sys
keys, table = [], False
for line in open(sys.argv[1]):
    if line.startswith("| key |"):
        table = True
        continue
    if table and line.startswith("|"):
        for k in re.findall(r"`([^`]+)`", line.split("|")[1]):
            k = k.split(".")[-1]
            if re.fullmatch(r"[a-z_][a-z0-9_]*", k) and k not in keys:
                keys.append(k)
        continue
    table = False
print("\n".join(keys))
PY
)
n=$(wc -l <<<"$keys")
[ "$n" -ge 40 ] && ok "$n keys in docs/configuration.md" ||
	not_ok "only $n keys found in docs/configuration.md"
# the bold terms of tsgate.yaml(5): words of its .B/.BR lines
terms=$(sed -n 's/^\.BR\{0,1\} //p' "$man5" | tr -c 'a-z0-9_\n' ' ' |
	tr ' ' '\n' | sort -u)
missing=
while read -r k; do
	grep -qx -- "$k" <<<"$terms" || missing="$missing $k"
done <<<"$keys"
if [ -z "$missing" ]; then
	ok "tsgate.yaml(5) has every key of docs/configuration.md"
else
	not_ok "tsgate.yaml(5) lacks keys of docs/configuration.md:$missing"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
