#!/usr/bin/env bash
# The man page renders cleanly at 80 columns: every option tag on one line
# (a .TP tag spread over several macro lines spills into the body), no
# word hyphenated across lines, and groff finds nothing to warn about.
. "$(dirname "$0")/lib.sh"
page="$OPS_ROOT/docs/apexops.1"

warn=$(groff -man -ww -z "$page" 2>&1)
assert_eq "groff reports no warnings" "" "$warn"
text=$(MANWIDTH=80 man -l "$page" 2>/dev/null | col -b)
for tag in "migrate up [--to VERSION] [--dry-run]" \
	"migrate down [N|all] [--execute]" \
	"purge (alias purge-old-usage)" \
	"sandbox revenue TIER" \
	"db start|stop|status|url"; do
	n=$(printf '%s\n' "$text" | grep -cxF "       $tag")
	assert_eq "the tag '$tag' is a line of its own" 1 "$n"
done
n=$(printf '%s\n' "$text" | grep -c '‐$')
assert_eq "no word is hyphenated at a line end" 0 "$n"
long=$(printf '%s\n' "$text" | awk 'length > 80' | head -3)
assert_eq "no line is wider than 80 columns" "" "$long"
done_testing
