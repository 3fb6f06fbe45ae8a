# shellcheck shell=bash
# Helpers shared by the bench/*.sh drivers. Source it from the repo root:
#
#   source bench/lib.sh
#   summary_set forward_mpps 12.3        # numbers only (JSON numbers)
#   summary_set_str forward_note "..."   # strings
#
# target/bench/summary.json is shared by every benchmark: each one updates only
# its own keys, so a later bench never wipes an earlier one's results.

BENCH_OUT=${BENCH_OUT:-target/bench}
BENCH_SUMMARY=${BENCH_SUMMARY:-$BENCH_OUT/summary.json}

bench_say() { printf 'bench: %s\n' "$*"; }
bench_die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

# Merge one key into the summary, atomically (write a temp file, then rename),
# so an interrupted bench cannot leave a half-written summary behind.
_summary_merge() { # KEY JQ-ARG-FLAG VALUE
	local key=$1 flag=$2 value=$3 base tmp
	mkdir -p "$(dirname "$BENCH_SUMMARY")"
	base='{}'
	if [[ -s $BENCH_SUMMARY ]]; then
		# Refuse to overwrite a file we cannot parse: it holds other benches' data.
		jq -e 'type == "object"' "$BENCH_SUMMARY" >/dev/null 2>&1 ||
			bench_die "$BENCH_SUMMARY is not a JSON object; fix or delete it"
		base=$(cat "$BENCH_SUMMARY")
	fi
	tmp=$(mktemp "$BENCH_SUMMARY.XXXXXX")
	if ! jq -S --arg k "$key" "$flag" v "$value" '.[$k] = $v' <<<"$base" >"$tmp"; then
		rm -f "$tmp"
		bench_die "cannot set $key=$value in $BENCH_SUMMARY"
	fi
	mv -f "$tmp" "$BENCH_SUMMARY"
}

# summary_set KEY NUMBER: the value must be a JSON number (e.g. 12.5, 3).
summary_set() {
	[[ $# -eq 2 ]] || bench_die "usage: summary_set KEY NUMBER"
	jq -e 'type == "number"' <<<"$2" >/dev/null 2>&1 ||
		bench_die "summary_set $1: '$2' is not a number"
	_summary_merge "$1" --argjson "$2"
}

# summary_set_str KEY STRING
summary_set_str() {
	[[ $# -eq 2 ]] || bench_die "usage: summary_set_str KEY STRING"
	_summary_merge "$1" --arg "$2"
}

# Median of the numbers on stdin, one per line (mean of the middle two when
# the count is even). Used to damp run-to-run noise on a 2-core box.
bench_median() {
	jq -s 'sort | if length == 0 then error("no samples")
		elif length % 2 == 1 then .[(length - 1) / 2]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end'
}

# DPDK leaves /var/run/dpdk/<prefix> (or $XDG_RUNTIME_DIR/dpdk/<prefix>) behind
# even with --no-huge; remove ours so repeated benches don't accumulate them.
bench_eal_cleanup() { # PREFIX
	local p=$1
	[[ -n $p ]] || return 0
	rm -rf "/var/run/dpdk/$p" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$p" 2>/dev/null || true
}
