#!/usr/bin/env bash
# make bench, after bench/run.sh and bench/control.sh: token-aware steering.
#
# Two questions:
#  1. What does one per-flow decision (steer::Decider::decide) cost?
#     steer/examples/decision_bench.rs times 1,000,000 decisions, each on its
#     own with the TSC, for the service table of examples/steer.toml against
#     a realistic control view, over a seeded mix of token features.
#       steer_decision_p50_ns, steer_decision_p99_ns   (target p99 < 1000 ns)
#  2. What does the steer pipeline cost the worker against plain forwarding?
#     `intellinode run` with examples/steer.toml (burst 32, no idle sleep and
#     a pool that holds the pcap, as in the forward runs) on an agent workload with IPv4 token-feature TLVs, replayed forever into
#     port 0, requests steered out of ports 1 (edge) and 2 (centre), both
#     net_null sinks; alternated with the forward pipeline (port 0 -> 1) on
#     the same pcap and vdevs setup. The pcap replays in a loop, so after the
#     first pass every request packet is a flow-table hit: the steady state.
#       steer_mpps, steer_vs_forward_ratio             (target ratio >= 0.7)
#  3. How do forward and steer scale from one worker to two, on traffic
#     split by flow over two queues?
#       forward_2w_scaling, steer_2w_scaling   (steer's target >= 0.9 x forward's)
#     The in-run decision cost (the stats JSON's steer.decision_ns, first
#     pass only) is printed, not recorded.
#
# Environment knobs:
#   BENCH_SECS              seconds per appliance run                (default 5)
#   BENCH_ROUNDS            steer/forward pairs, alternated           (default 5:
#                           on a shared host one run in five is off by 10%
#                           or more, and a median of three still moves)
#   BENCH_STEER_PACKETS     packets in the agent pcap                 (default 20000)
#   BENCH_SCALE_PACKETS     packets in the scaling pcap               (default 4000)
#   BENCH_STEER_DECISIONS   decisions timed by decision_bench         (default 1000000)
#   BENCH_ENFORCE           1: fail if p99 >= 1000 ns or ratio < 0.7   (default 0: record only)
#   INTELLINODE_BIN, PKTGEN_BIN   the binaries (default target/release/...)
#   DECISION_BENCH_BIN      a prebuilt decision_bench; default: cargo run --release
#   CARGO                   cargo to run decision_bench with          (default cargo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
PACKETS=${BENCH_STEER_PACKETS:-20000}
SCALE_PACKETS=${BENCH_SCALE_PACKETS:-4000}
DECISIONS=${BENCH_STEER_DECISIONS:-1000000}
ENFORCE=${BENCH_ENFORCE:-0}
MAX_PACKETS=50000
MAX_P99_NS=1000
MIN_RATIO=0.7
INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
DECISION_BENCH=${DECISION_BENCH_BIN:-}
CARGO=${CARGO:-cargo}
STEER_TOML=examples/steer.toml
OUT=$BENCH_OUT
DIR=$OUT/steer
PCAP=$DIR/agent.pcap
STEER_CFG=$DIR/steer-bench.toml
FWD_CFG=$DIR/forward-bench.toml

[[ $SECS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_SECS must be a positive integer, got '$SECS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $PACKETS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_STEER_PACKETS must be a positive integer, got '$PACKETS'"
((PACKETS <= MAX_PACKETS)) || bench_die "BENCH_STEER_PACKETS=$PACKETS exceeds $MAX_PACKETS (the mbuf pool must hold the whole pcap within -m 512)"
[[ $SCALE_PACKETS =~ ^[1-9][0-9]*$ ]] && ((SCALE_PACKETS <= PACKETS)) || bench_die "BENCH_SCALE_PACKETS must be 1..BENCH_STEER_PACKETS, got '$SCALE_PACKETS'"
[[ $DECISIONS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_STEER_DECISIONS must be a positive integer, got '$DECISIONS'"
[[ $ENFORCE =~ ^[01]$ ]] || bench_die "BENCH_ENFORCE must be 0 or 1, got '$ENFORCE'"
for bin in "$INB" "$PKTGEN"; do
	[[ -x $bin ]] || bench_die "missing $bin (run 'make build' first, or set INTELLINODE_BIN / PKTGEN_BIN)"
done
[[ -z $DECISION_BENCH || -x $DECISION_BENCH ]] || bench_die "DECISION_BENCH_BIN=$DECISION_BENCH is not executable"
[[ -s $STEER_TOML ]] || bench_die "missing $STEER_TOML"
command -v jq >/dev/null || bench_die "jq is required (run 'make deps')"

mkdir -p "$DIR"

# ---------------------------------------------------------------------------
# 1. Decision cost, off the data plane.
# ---------------------------------------------------------------------------
dlog=$DIR/decision_bench.log
djson=$DIR/decision_bench.json
bench_say "steer decision: $DECISIONS decisions of examples/steer.toml's table, each timed with the TSC"
rc=0
if [[ -n $DECISION_BENCH ]]; then
	"$DECISION_BENCH" "$DECISIONS" >"$djson" 2>"$dlog" || rc=$?
else
	"$CARGO" run --release --quiet -p steer --example decision_bench -- "$DECISIONS" >"$djson" 2>"$dlog" || rc=$?
fi
if ((rc != 0)); then
	tail -n 15 "$dlog" >&2 || true
	bench_die "decision_bench failed with exit status $rc (full log: $dlog)"
fi
dline=$(tail -n 1 "$djson")
jq -e --argjson n "$DECISIONS" '(.decisions == $n) and ([.p50_ns, .p99_ns, .p999_ns, .mean_ns] | all(type == "number" and . > 0))' \
	<<<"$dline" >/dev/null 2>&1 || bench_die "decision_bench printed no usable JSON line (got: '$dline'; see $djson)"
read -r d_p50 d_p99 d_p999 d_mean d_edge d_centre < <(jq -r '"\(.p50_ns) \(.p99_ns) \(.p999_ns) \(.mean_ns) \(.chosen_edge // "?") \(.chosen_centre // "?")"' <<<"$dline")
bench_say "decision: p50 $d_p50 ns, p99 $d_p99 ns, p99.9 $d_p999 ns, mean $d_mean ns (edge $d_edge, centre $d_centre)"

# ---------------------------------------------------------------------------
# 2. The steer pipeline against forward, on the same agent pcap.
# ---------------------------------------------------------------------------
bench_say "generating workload: pktgen agent, IPv4 TLVs, seed 7, $PACKETS packets -> $PCAP"
"$PKTGEN" write --workload agent --tlv ipv4 --seed 7 --packets "$PACKETS" -o "$PCAP" >"$DIR/pktgen.log" 2>&1 ||
	bench_die "pktgen write failed (see $DIR/pktgen.log)"
[[ -s $PCAP ]] || bench_die "pktgen wrote no $PCAP"

# net_pcap's infinite_rx copies the whole pcap into mbufs of the RX pool at
# queue setup: size the pool for the pcap plus every ring (3 ports x 1024 RX
# + 1024 TX), the lcore caches and bursts in flight, rounded up to 2^n - 1.
# Both pipelines get the same pool so neither gains a cache advantage.
need=$((PACKETS + 3 * 2048 + 2 * 256 + 2 * 64 + 1024))
MBUFS=1
while ((MBUFS < need)); do MBUFS=$((MBUFS * 2 + 1)); done

# examples/steer.toml's services, instances and paths, with exactly the
# forward config's worker settings: burst 32, no idle sleep (the example may
# set one for its veth demo), and the pool. Its service (VIP 10.0.100.1:8000)
# is what pktgen's agent workload addresses; the run checks that flows were
# steered.
grep -Eq '^[[:space:]]*\[ports\]' "$STEER_TOML" &&
	bench_die "$STEER_TOML has a [ports] table; bench/steer.sh must be taught to merge its mbufs"
{
	echo "# Written by bench/steer.sh from $STEER_TOML: burst_size, idle_sleep_us and [ports] set by the bench."
	echo "burst_size = 32"
	echo "idle_sleep_us = 0"
	sed -E '/^[[:space:]]*(burst_size|idle_sleep_us)[[:space:]]*=/d' "$STEER_TOML"
	printf '\n[ports]\nmbufs = %d\n' "$MBUFS"
} >"$STEER_CFG"
cat >"$FWD_CFG" <<EOF
# Written by bench/steer.sh: bench/forward-bench.toml with the steer bench's pool.
pipeline = "forward"
burst_size = 32
idle_sleep_us = 0

[ports]
mbufs = $MBUFS

[[pairs]]
ports = [0, 1]
EOF

# bench/run.sh's EAL setup: main lcore 0, one worker on lcore 1; the pcap
# replays forever into port 0; ports 1 (and 2 for steer) are net_null sinks.
eal_args() { # PREFIX NULL-PORTS
	printf '%s\n' --no-huge -m 512 --no-pci --file-prefix "$1" -l 0,1 \
		--vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1"
	local p
	for ((p = 1; p <= $2; p++)); do
		printf '%s\n' --vdev "net_null$p,no-rx=1"
	done
}
TIMEOUT=(timeout --signal=INT --kill-after=10 $((SECS + 60)))

run_failed() { # WHAT LOG EXIT-STATUS
	echo "---- last lines of $2 ----" >&2
	tail -n 15 "$2" >&2 || true
	(($3 == 124)) && bench_die "$1 timed out (full log: $2)"
	bench_die "$1 failed with exit status $3 (full log: $2)"
}

# One appliance run. Prints "mpps cycles_per_packet" for forward and
# "mpps cycles_per_packet decision_p50 decision_p99 decisions new_flows" for steer.
run_pipeline() { # ROUND forward|steer
	local i=$1 mode=$2 prefix="steer-$$-$2-$1" json="$DIR/$2-$1.json" log="$DIR/$2-$1.log" eal cfg nulls
	if [[ $mode == steer ]]; then cfg=$STEER_CFG nulls=2; else cfg=$FWD_CFG nulls=1; fi
	mapfile -t eal < <(eal_args "$prefix" "$nulls")
	rm -f "$json"
	local rc=0
	"${TIMEOUT[@]}" "$INB" run --config "$cfg" --duration "$SECS" \
		--stats-interval 0 --stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 || rc=$?
	bench_eal_cleanup "$prefix"
	((rc == 0)) || run_failed "intellinode $mode run $i" "$log" "$rc"
	jq -e '(.totals.mpps | type == "number") and (.totals.cycles_per_packet | type == "number")' \
		"$json" >/dev/null 2>&1 ||
		bench_die "intellinode $mode run $i: $json lacks numeric .totals.mpps / .totals.cycles_per_packet"
	jq -e '.totals.mpps > 0' "$json" >/dev/null ||
		bench_die "intellinode $mode run $i forwarded nothing (see $json, $log)"
	if [[ $mode == forward ]]; then
		jq -r '"\(.totals.mpps) \(.totals.cycles_per_packet)"' "$json"
		return
	fi
	# The run must have steered: new flows decided, both sinks fed, and
	# no flow turned away (a full table or no instance would drop packets
	# every pass and measure something else than the steady state).
	local check
	check=$(jq -r '
		if (.steer | type) != "object" then "no .steer section in the stats JSON"
		elif (.steer.decision_ns.samples // 0) == 0 then "no decision was made (does the pcap address the service in \"'"$STEER_TOML"'\"?)"
		elif (.steer.flows.new // 0) == 0 then "no flow entered the flow table"
		elif (.steer.flows.table_full // 0) > 0 then "the flow table filled up (\(.steer.flows.table_full) flows)"
		elif ([.steer.no_choice[]] | add // 0) > 0 then "decisions found no instance: \(.steer.no_choice)"
		else "ok" end' "$json")
	[[ $check == ok ]] || bench_die "intellinode steer run $i: $check (see $json)"
	jq -r '"\(.totals.mpps) \(.totals.cycles_per_packet) \(.steer.decision_ns.p50) \(.steer.decision_ns.p99) \(.steer.decision_ns.samples) \(.steer.flows.new)"' "$json"
}

bench_say "steer vs forward: $ROUNDS rounds x ${SECS}s each, alternated, 1 worker lcore, burst 32, $MBUFS mbufs"
s_mpps=() f_mpps=() s_cpp=() f_cpp=() s_p50=() s_p99=()
for ((i = 1; i <= ROUNDS; i++)); do
	# Capture first: a failure inside a here-string's substitution would
	# not stop the script.
	out=$(run_pipeline "$i" steer)
	read -r m cpp p50 p99 n flows <<<"$out"
	bench_say "round $i/$ROUNDS: steer    $(printf '%8.3f' "$m") Mpps  ($(printf '%.1f' "$cpp") cycles/pkt)  in-run decision p50 $p50 ns, p99 $p99 ns ($n decisions, $flows flows)"
	s_mpps+=("$m") s_cpp+=("$cpp") s_p50+=("$p50") s_p99+=("$p99")
	out=$(run_pipeline "$i" forward)
	read -r m cpp <<<"$out"
	bench_say "round $i/$ROUNDS: forward  $(printf '%8.3f' "$m") Mpps  ($(printf '%.1f' "$cpp") cycles/pkt)"
	f_mpps+=("$m") f_cpp+=("$cpp")
done

# ---------------------------------------------------------------------------
# 3. Scaling: the same pipelines on two workers (--lcores 0@0,1@1,2@0: the
#    main lcore shares CPU 0 with worker 2). The traffic is split by flow,
#    as RSS would split it on a NIC configured as docs/architecture.md says:
#    an agent pcap from 64 hosts (seed 7) is split over port 0's two queues
#    by `pktgen rss-split` (the Toeplitz hash of the source address under
#    RSS_KEY, the key the steer config is given); with one worker the whole
#    pcap replays into its one queue. Flows whose owner is the other worker
#    would be handed over (lcores[].handoffs); with the split by the key
#    there are none. The pcap is small (SCALE_PACKETS) for the reason
#    bench/tensor.sh gives: net_pcap replays from a ring of the whole pcap,
#    and a ring that misses the caches where its halves do not makes
#    forward "scale" superlinearly.
# ---------------------------------------------------------------------------
RSS_KEY=6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa
SCALE_PCAP=$DIR/agent-hosts.pcap
"$PKTGEN" write --workload agent --tlv ipv4 --agent-hosts 64 --seed 7 --packets "$SCALE_PACKETS" -o "$SCALE_PCAP" >>"$DIR/pktgen.log" 2>&1 ||
	bench_die "pktgen write --agent-hosts failed (see $DIR/pktgen.log)"
"$PKTGEN" rss-split --queues 2 --field source --key "$RSS_KEY" -o "$DIR/agent-hosts" "$SCALE_PCAP" >>"$DIR/pktgen.log" 2>&1 ||
	bench_die "pktgen rss-split failed (see $DIR/pktgen.log)"
Q0=$DIR/agent-hosts-q0.pcap Q1=$DIR/agent-hosts-q1.pcap
bench_say "scaling traffic: $(grep '^queue' "$DIR/pktgen.log" | tr '\n' ';' | sed 's/;$//')"
scale_cfg() { # forward|steer -> config with a pool for the replayed pcaps (and the RSS key)
	local src=$FWD_CFG
	[[ $1 == steer ]] && src=$STEER_CFG
	sed -E "s/^mbufs = .*/mbufs = $((MBUFS * 2 + 1))/" "$src" >"$DIR/$1-scale.toml"
	if [[ $1 == steer ]]; then
		grep -q '^\[steer\]' "$DIR/$1-scale.toml" || bench_die "$STEER_TOML has no [steer] section"
		sed -i "s/^\[steer\]/[steer]\nrss_key = \"$RSS_KEY\"/" "$DIR/$1-scale.toml"
	fi
	echo "$DIR/$1-scale.toml"
}
run_scaled() { # ROUND forward|steer WORKERS -> mpps handoffs
	local i=$1 mode=$2 w=$3 prefix="steer-$$-scale-$2-$3-$1" json="$DIR/scale-$2-$3w-$1.json" log="$DIR/scale-$2-$3w-$1.log"
	local cfg nulls p rx lcores
	cfg=$(scale_cfg "$mode")
	if [[ $mode == steer ]]; then nulls=2; else nulls=1; fi
	if ((w == 1)); then
		rx="net_pcap0,rx_pcap=$SCALE_PCAP,infinite_rx=1" lcores=0,1
		local eal=(--no-huge -m 512 --no-pci --file-prefix "$prefix" -l "$lcores" --vdev "$rx")
	else
		rx="net_pcap0,rx_pcap=$Q0,rx_pcap=$Q1,infinite_rx=1"
		local eal=(--no-huge -m 512 --no-pci --file-prefix "$prefix" --lcores 0@0,1@1,2@0 --vdev "$rx")
	fi
	for ((p = 1; p <= nulls; p++)); do eal+=(--vdev "net_null$p,no-rx=1"); done
	local rc=0
	"${TIMEOUT[@]}" "$INB" run --config "$cfg" --duration "$SECS" \
		--stats-interval 0 --stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 || rc=$?
	bench_eal_cleanup "$prefix"
	((rc == 0)) || run_failed "intellinode $mode on $w worker(s), run $i" "$log" "$rc"
	jq -e '.totals.mpps > 0 and .totals.balanced' "$json" >/dev/null ||
		bench_die "intellinode $mode on $w worker(s), run $i: nothing forwarded or unbalanced (see $json)"
	jq -r '"\(.totals.mpps) \([.lcores[].handoffs] | add)"' "$json"
}
bench_say "scaling: forward and steer on 1 and 2 workers, $ROUNDS rounds x ${SECS}s each"
f1=() f2=() s1=() s2=()
for ((i = 1; i <= ROUNDS; i++)); do
	for mode in forward steer; do
		read -r m1 _ < <(run_scaled "$i" "$mode" 1)
		read -r m2 h2 < <(run_scaled "$i" "$mode" 2)
		bench_say "round $i/$ROUNDS: $mode  1 worker $(printf '%7.3f' "$m1") Mpps, 2 workers $(printf '%7.3f' "$m2") Mpps ($h2 handoffs)"
		if [[ $mode == forward ]]; then f1+=("$m1") f2+=("$m2"); else s1+=("$m1") s2+=("$m2"); fi
	done
done

median() { printf '%s\n' "$@" | bench_median; }
steer_med=$(median "${s_mpps[@]}")
fwd_med=$(median "${f_mpps[@]}")
steer_cpp=$(median "${s_cpp[@]}")
fwd_cpp=$(median "${f_cpp[@]}")
run_p50=$(median "${s_p50[@]}")
run_p99=$(median "${s_p99[@]}")
ratio=$(jq -n --argjson s "$steer_med" --argjson f "$fwd_med" '$s / $f')
fwd_scaling=$(jq -n --argjson a "$(median "${f2[@]}")" --argjson b "$(median "${f1[@]}")" '$a / $b')
steer_scaling=$(jq -n --argjson a "$(median "${s2[@]}")" --argjson b "$(median "${s1[@]}")" '$a / $b')

echo
printf '  %-42s %12s\n' "steering (median of $ROUNDS)" "value"
printf '  %-42s %12s  (target < %s)\n' "decision p50 / p99 ns (decision_bench)" "$d_p50 / $d_p99" "$MAX_P99_NS"
printf '  %-42s %12s\n' "decision p99.9 / mean ns" "$d_p999 / $(printf '%.1f' "$d_mean")"
printf '  %-42s %12s\n' "decision p50 / p99 ns (in the run)" "$run_p50 / $run_p99"
printf '  %-42s %12.3f  (%.1f cycles/pkt)\n' "steer Mpps" "$steer_med" "$steer_cpp"
printf '  %-42s %12.3f  (%.1f cycles/pkt)\n' "forward Mpps (same pcap)" "$fwd_med" "$fwd_cpp"
printf '  %-42s %12.3f  (target >= %s)\n' "ratio steer / forward" "$ratio" "$MIN_RATIO"
printf '  %-42s %12.3f\n' "forward: 2 workers / 1 worker" "$fwd_scaling"
printf '  %-42s %12.3f  (target >= 0.9 x forward'"'"'s)\n' "steer: 2 workers / 1 worker" "$steer_scaling"
echo

summary_set steer_decision_p50_ns "$d_p50"
summary_set steer_decision_p99_ns "$d_p99"
summary_set steer_mpps "$steer_med"
summary_set steer_vs_forward_ratio "$ratio"
summary_set forward_2w_scaling "$fwd_scaling"
summary_set steer_2w_scaling "$steer_scaling"
for key in steer_decision_p50_ns steer_decision_p99_ns steer_mpps steer_vs_forward_ratio forward_2w_scaling steer_2w_scaling; do
	jq -e --arg k "$key" '.[$k] | type == "number"' "$BENCH_SUMMARY" >/dev/null 2>&1 ||
		bench_die "$BENCH_SUMMARY lacks $key after merging"
done
bench_say "results merged into $BENCH_SUMMARY"

if ((ENFORCE)); then
	fails=()
	jq -e -n --argjson p "$d_p99" --argjson m "$MAX_P99_NS" '$p >= $m' >/dev/null &&
		fails+=("decision p99 ${d_p99} ns is not under ${MAX_P99_NS} ns")
	jq -e -n --argjson r "$ratio" --argjson m "$MIN_RATIO" '$r < $m' >/dev/null &&
		fails+=("steer/forward ratio $(printf '%.3f' "$ratio") is below $MIN_RATIO")
	if ((${#fails[@]})); then
		msg=$(printf '%s; ' "${fails[@]}")
		bench_die "${msg%; } (BENCH_ENFORCE=1)"
	fi
fi
