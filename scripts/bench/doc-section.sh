#!/bin/bash
# doc-section.sh NUM FILE DOC: put FILE (a section that starts with "## NUM. ")
# into DOC: in place of DOC's section NUM if it has one, else before its first
# numbered section with a higher number, else at the end. So the parts of
# `make bench` that add sections (bench.sh's multinode part, extra.sh,
# pkt-compare.sh) keep DOC in order whichever ran last.
set -eu
NUM=$1 FILE=$2 DOC=$3
TMP=$(mktemp "$DOC.XXXXXX")
trap 'rm -f "$TMP"' EXIT
awk -v num="$NUM" -v sec="$FILE" '
	function put(   l) { while ((getline l < sec) > 0) print l; done = 1 }
	/^## [0-9]+\. / {
		n = $2 + 0
		if (skip) { skip = 0; print "" }
		if (!done && n == num) { put(); skip = 1; next }
		if (!done && n > num) { put(); print "" }
	}
	/^## / && !/^## [0-9]+\. / && skip { skip = 0; print "" }
	!skip { print }
	END { if (!done) { print ""; put() } }' "$DOC" >"$TMP"
cat "$TMP" >"$DOC"
