#!/usr/bin/env bash
# make bench: IntelliNode's "forward" pipeline against a minimal C l2fwd-style
# forwarder (bench/cfwd.c), both on the same DPDK, the same vdevs, one worker
# lcore and burst 32, so the ratio measures what our Rust layer costs.
#
# Environment knobs:
#   BENCH_SECS       seconds per run                        (default 5)
#   BENCH_ROUNDS     C/Rust pairs, alternated               (default 3)
#   BENCH_MIN_RATIO  fail if forward/C is below this        (default 0: record only)
#   BENCH_PACKETS    packets in the workload pcap           (default 4096, see below)
#   INTELLINODE_BIN, PKTGEN_BIN, CFWD_BIN   override the binaries' paths
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
MIN_RATIO=${BENCH_MIN_RATIO:-0}
# net_pcap's infinite_rx copies the whole pcap into mbufs of the port's own RX
# mempool at queue setup, and both forwarders use one 8191-mbuf pool; a pcap
# with more packets than the pool can hold fails with "Not enough mbufs". 4096
# leaves room for the per-lcore caches and in-flight bursts, and is still
# thousands of flows of the realistic mix cycling through.
PACKETS=${BENCH_PACKETS:-4096}
MAX_PACKETS=7168
BURST=32
INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
CFWD=${CFWD_BIN:-target/bench/cfwd}
OUT=$BENCH_OUT
PCAP=$OUT/mix.pcap

[[ $SECS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_SECS must be a positive integer, got '$SECS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $PACKETS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_PACKETS must be a positive integer, got '$PACKETS'"
((PACKETS <= MAX_PACKETS)) ||
	bench_die "BENCH_PACKETS=$PACKETS exceeds $MAX_PACKETS: net_pcap infinite_rx must fit the whole pcap in the 8191-mbuf pool"
jq -e 'type == "number"' <<<"$MIN_RATIO" >/dev/null 2>&1 ||
	bench_die "BENCH_MIN_RATIO must be a number, got '$MIN_RATIO'"
for bin in "$INB" "$PKTGEN" "$CFWD"; do
	[[ -x $bin ]] || bench_die "missing $bin (run 'make build' first)"
done
command -v jq >/dev/null || bench_die "jq is required (run 'make deps')"

mkdir -p "$OUT"

bench_say "generating workload: pktgen mix, seed 7, $PACKETS packets -> $PCAP"
"$PKTGEN" write --workload mix --seed 7 --packets "$PACKETS" -o "$PCAP" >"$OUT/pktgen.log" 2>&1 ||
	bench_die "pktgen write failed (see $OUT/pktgen.log)"
[[ -s $PCAP ]] || bench_die "pktgen wrote no $PCAP"

# Identical EAL setup for both: main lcore 0 only sleeps/reports, lcore 1 is
# the single forwarding worker. The pcap replays forever into port 0; port 1 is
# a sink (net_null without RX), so all traffic goes 0 -> 1 and is freed by
# the null PMD. Each run has its own --file-prefix so runs never share state.
eal_args() { # PREFIX
	printf '%s\n' --no-huge -m 512 --no-pci --file-prefix "$1" -l 0,1 \
		--vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" --vdev "net_null0,no-rx=1"
}

# Guard against a wedged forwarder: generous, since EAL init with --no-huge
# and loading the pcap take a moment on a busy 2-core box.
TIMEOUT=(timeout --signal=INT --kill-after=10 $((SECS + 60)))

run_failed() { # WHAT LOG EXIT-STATUS
	echo "---- last lines of $2 ----" >&2
	tail -n 15 "$2" >&2 || true
	(($3 == 124)) && bench_die "$1 timed out (full log: $2)"
	bench_die "$1 failed with exit status $3 (full log: $2)"
}

run_c() { # ROUND -> prints mpps
	local i=$1 prefix="cfwd-$$-$1" json="$OUT/cfwd-$1.json" log="$OUT/cfwd-$1.log" eal
	mapfile -t eal < <(eal_args "$prefix")
	rm -f "$json"
	local rc=0
	"${TIMEOUT[@]}" "$CFWD" "${eal[@]}" -- --duration "$SECS" --burst "$BURST" \
		--json "$json" >"$log" 2>&1 || rc=$?
	bench_eal_cleanup "$prefix"
	((rc == 0)) || run_failed "C baseline run $i" "$log" "$rc"
	jq -e '.mpps | type == "number"' "$json" >/dev/null 2>&1 ||
		bench_die "C baseline run $i wrote no usable $json"
	jq '.mpps' "$json"
}

run_rust() { # ROUND -> prints "mpps cycles_per_packet"
	local i=$1 prefix="inb-$$-$1" json="$OUT/intellinode-$1.json" log="$OUT/intellinode-$1.log" eal
	mapfile -t eal < <(eal_args "$prefix")
	rm -f "$json"
	local rc=0
	"${TIMEOUT[@]}" "$INB" run --config bench/forward-bench.toml --duration "$SECS" \
		--stats-interval 0 --stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 || rc=$?
	bench_eal_cleanup "$prefix"
	((rc == 0)) || run_failed "intellinode run $i" "$log" "$rc"
	jq -e '(.totals.mpps | type == "number") and (.totals.cycles_per_packet | type == "number")' \
		"$json" >/dev/null 2>&1 ||
		bench_die "intellinode run $i: $json lacks numeric .totals.mpps / .totals.cycles_per_packet"
	jq -r '"\(.totals.mpps) \(.totals.cycles_per_packet)"' "$json"
}

bench_say "forward: $ROUNDS rounds x ${SECS}s each, C and Rust alternated, 1 worker lcore, burst $BURST"
c_samples=() r_samples=() cpp_samples=()
for ((i = 1; i <= ROUNDS; i++)); do
	c=$(run_c "$i")
	bench_say "round $i/$ROUNDS: C baseline   $(printf '%8.3f' "$c") Mpps"
	rust=$(run_rust "$i")
	read -r r cpp <<<"$rust"
	bench_say "round $i/$ROUNDS: intellinode  $(printf '%8.3f' "$r") Mpps  ($(printf '%.1f' "$cpp") cycles/pkt)"
	c_samples+=("$c") r_samples+=("$r") cpp_samples+=("$cpp")
done

c_med=$(printf '%s\n' "${c_samples[@]}" | bench_median)
r_med=$(printf '%s\n' "${r_samples[@]}" | bench_median)
cpp_med=$(printf '%s\n' "${cpp_samples[@]}" | bench_median)
# A baseline that forwarded nothing means the harness is broken, not that we are fast.
jq -e --argjson c "$c_med" -n '$c > 0' >/dev/null || bench_die "C baseline forwarded nothing (median $c_med Mpps)"
ratio=$(jq -n --argjson r "$r_med" --argjson c "$c_med" '$r / $c')

echo
printf '  %-28s %12s\n' "forwarder (median of $ROUNDS)" "Mpps"
printf '  %-28s %12.3f\n' "C l2fwd baseline (cfwd)" "$c_med"
printf '  %-28s %12.3f\n' "intellinode forward" "$r_med"
printf '  %-28s %12.3f\n' "ratio forward / C" "$ratio"
printf '  %-28s %12.1f\n' "intellinode cycles/packet" "$cpp_med"
echo

summary_set forward_mpps "$r_med"
summary_set c_baseline_mpps "$c_med"
summary_set forward_vs_c_ratio "$ratio"
summary_set forward_cycles_per_packet "$cpp_med"
bench_say "results merged into $BENCH_SUMMARY"

if jq -e -n --argjson r "$ratio" --argjson m "$MIN_RATIO" '$r < $m' >/dev/null; then
	bench_die "forward/C ratio $(printf '%.3f' "$ratio") is below BENCH_MIN_RATIO=$MIN_RATIO"
fi
