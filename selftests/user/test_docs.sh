#!/bin/bash
# The bash completion (`svcplane completion bash`) and the man page
# (`svcplane man`, svcplane.8) against `--help`: every command that
# `svcplane --help` lists, and every option its `svcplane COMMAND --help`
# prints, must be in both. The three are printed from the same option
# tables (user/cli.c); this checks it from the outside, so a command or an
# option documented by hand beside its table fails here. Also: the
# completion completes (sourced in bash, as bash-completion would), and the
# man page formats without warnings (groff -ww).
# Prints one PASS:/FAIL: line per case.
set -u
OUT=${OUT:-build}
BIN=$OUT/svcplane
T=$(mktemp -d /tmp/sp$$-docs.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
pass() { echo "PASS: docs/$1"; }
fail() { echo "FAIL: docs/$1: $2"; fails=$((fails + 1)); }

[ -x "$BIN" ] || { fail setup "no $BIN (build first: make)"; exit 1; }
"$BIN" completion bash >"$T/svcplane.bash" || fail setup "svcplane completion bash exited $?"
"$BIN" man >"$T/svcplane.8" || fail setup "svcplane man exited $?"

# The commands `svcplane --help` lists (the lines after "Commands:").
mapfile -t cmds < <("$BIN" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ ${#cmds[@]} -ge 9 ] || fail setup "svcplane --help lists ${#cmds[@]} commands: ${cmds[*]}"

# help_opts CMD: every option an option line of `svcplane CMD --help` names
# ("  -c, --config FILE ..." or "      --dsr ..."): "-c --config", "--dsr".
help_opts() {
	"$BIN" "$1" --help | sed -nE 's/^ +(-[A-Za-z0-9], )?(--[a-z0-9][a-z0-9-]*).*/\1\2/p' | tr -d ','
}

# completion_opts CMD: the words the completion offers after "svcplane CMD -".
completion_opts() {
	(
		# shellcheck disable=SC1091
		. "$T/svcplane.bash"
		COMP_WORDS=(svcplane "$1" -) COMP_CWORD=2
		_svcplane
		printf '%s\n' "${COMPREPLY[@]}"
	)
}

# man_section CMD: the man page's part for CMD (its .SS to the next).
man_section() {
	awk -v c="svcplane $(sed 's/-/\\\\-/g' <<<"$1") " '
		/^\.SS / { on = index($0, c) > 0; next } /^\.SH / { on = 0 } on' "$T/svcplane.8"
}

top=$(
	. "$T/svcplane.bash"
	COMP_WORDS=(svcplane "") COMP_CWORD=1
	_svcplane
	printf '%s\n' "${COMPREPLY[@]}"
)
miss_c="" miss_m="" nopts=0
for c in "${cmds[@]}"; do
	grep -qx -- "$c" <<<"$top" || miss_c+=" $c(command)"
	sect=$(man_section "$c")
	[ -n "$sect" ] || miss_m+=" $c(command)"
	comp=$(completion_opts "$c")
	for o in $(help_opts "$c"); do
		nopts=$((nopts + 1))
		grep -qx -- "$o" <<<"$comp" || miss_c+=" $c:$o"
		# In the man page: \fB\-c\fR or \fB\-\-config\fR.
		grep -qF -- "\\fB$(sed 's/-/\\-/g' <<<"$o")\\fR" <<<"$sect" || miss_m+=" $c:$o"
	done
done
echo "    ${#cmds[@]} commands, $nopts options in --help"
if [ $nopts -lt 60 ]; then
	fail help-parsed "only $nopts options read from the commands' --help: the parser here is broken"
else
	pass help-parsed
fi
if [ -z "$miss_c" ]; then pass completion-has-every-option; else
	fail completion-has-every-option "in --help, not completed:$miss_c"
fi
if [ -z "$miss_m" ]; then pass man-has-every-option; else
	fail man-has-every-option "in --help, not in svcplane.8:$miss_m"
fi

# offer WORDS...: what the completion offers for the last word.
offer() {
	(
		. "$T/svcplane.bash"
		COMP_WORDS=(svcplane "$@") COMP_CWORD=$#
		_svcplane
		[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
	)
}
touch "$T/conf.yaml"
got1=$(offer chec) got2=$(offer run --xdp-m) got3=$(offer run --xdp-mode "")
got4=$(cd "$T" && offer check-config conf) got5=$(offer run --node-name "")
if [ "$got1" = "check-config " ] && [ "$got2" = "--xdp-mode " ] &&
	[ "$got3" = "auto generic native " ] && [ "$got4" = "conf.yaml " ] && [ -z "$got5" ]; then
	pass completion-completes
else
	fail completion-completes "chec -> '$got1', run --xdp-m -> '$got2', run --xdp-mode '' -> '$got3', check-config conf -> '$got4', run --node-name '' -> '$got5'"
fi

if ! command -v groff >/dev/null; then
	fail man-formats "groff is not installed (scripts/deps.sh installs groff-base)"
else
	warn=$(LC_ALL=C groff -man -ww -z -Tutf8 "$T/svcplane.8" 2>&1)
	lines=$(LC_ALL=C groff -man -Tutf8 "$T/svcplane.8" 2>/dev/null | wc -l)
	if [ -z "$warn" ] && [ "$lines" -gt 100 ]; then pass man-formats; else
		fail man-formats "groff: ${warn:-no warning}; $lines lines"
	fi
fi
[ $fails -eq 0 ]
