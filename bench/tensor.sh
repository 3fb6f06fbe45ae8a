#!/usr/bin/env bash
# make bench, after bench/steer.sh: tensor-aware scheduling (issue 5).
#
# Two questions:
#  1. How well does the predictor core forecast? tensor/examples/
#     predictor_accuracy.rs replays generated training traces (iteration
#     bursts with jitter, background traffic, period changes) through
#     tensor::predict::PredictorCore and compares its 1 ms and 5 ms load
#     forecasts with the last-value baseline.
#       predictor_mae_1ms, predictor_mae_1ms_last_value   (model must be >= 30% better)
#  2. What does the tensor pipeline cost the worker against plain forwarding?
#     `intellinode run` with pipeline = "tensor" in route mode (ICRC check,
#     QP table and state machine, semantic heuristics, feature FIFO to the
#     pinned predictor thread, strict bands + WDRR egress) on pktgen's roce
#     training workload, replayed forever into port 0, out of port 1 (a
#     net_null sink); alternated with forward on the same pcap.
#       tensor_mpps, tensor_vs_forward_ratio  (target ratio >= 0.6; the
#                                             shipped defaults, which check one
#                                             host packet's ICRC in 16)
#       tensor_full_icrc_mpps, tensor_full_icrc_vs_forward_ratio
#                                             the same with every ICRC checked
#                                             (icrc_check_every = 1)
#       feature_fifo_drop_rate                (FIFO records refused / offered, at that load)
#     The overlay's cost (Geneve + TLVs + AES-CMAC per packet, two paths)
#     is measured the same way and recorded as tensor_overlay_mpps.
#  3. Does it scale? tensor and forward on one and two workers
#     (--lcores 0@0,1@1,2@0), on a smaller seed-7 roce pcap split by QP as
#     RSS would split it (see section 3 below); with one worker the whole
#     pcap replays into its one queue. QPs whose owner is the other worker
#     would be handed over (lcores[].handoffs); split by the key, none are.
#       tensor_2w_scaling        Mpps on 2 workers / Mpps on 1 (target >= 0.9 x forward's)
#       tensor_forward_2w_scaling  forward's, measured in the same run
#
# Environment knobs:
#   BENCH_SECS, BENCH_ROUNDS        as bench/steer.sh (defaults 5 and 5)
#   BENCH_TENSOR_PACKETS            packets in the roce pcap (default 20000)
#   BENCH_SCALE_PACKETS             packets in the scaling pcap (default 4000)
#   BENCH_ENFORCE                   1: fail if a target is missed (default 0)
#   INTELLINODE_BIN, PKTGEN_BIN, CARGO
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
PACKETS=${BENCH_TENSOR_PACKETS:-20000}
SCALE_PACKETS=${BENCH_SCALE_PACKETS:-4000}
ENFORCE=${BENCH_ENFORCE:-0}
MIN_RATIO=0.6
INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
CARGO=${CARGO:-cargo}
DIR=$BENCH_OUT/tensor
PCAP=$DIR/roce.pcap

[[ $SECS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_SECS must be a positive integer, got '$SECS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $PACKETS =~ ^[1-9][0-9]*$ ]] && ((PACKETS <= 50000)) || bench_die "BENCH_TENSOR_PACKETS must be 1..50000, got '$PACKETS'"
[[ $SCALE_PACKETS =~ ^[1-9][0-9]*$ ]] && ((SCALE_PACKETS <= PACKETS)) || bench_die "BENCH_SCALE_PACKETS must be 1..BENCH_TENSOR_PACKETS, got '$SCALE_PACKETS'"
for bin in "$INB" "$PKTGEN"; do
	[[ -x $bin ]] || bench_die "missing $bin (run 'make build' first)"
done
command -v jq >/dev/null || bench_die "jq is required (run 'make deps')"
mkdir -p "$DIR"

# ---------------------------------------------------------------------------
# 1. Predictor accuracy, off the data plane.
# ---------------------------------------------------------------------------
plog=$DIR/predictor_accuracy.log
pjson=$DIR/predictor_accuracy.json
bench_say "predictor accuracy: generated training traces, model vs last value"
"$CARGO" run --release --quiet -p tensor --example predictor_accuracy >"$pjson" 2>"$plog" ||
	{ tail -n 20 "$plog" >&2; bench_die "predictor_accuracy failed (log: $plog)"; }
pline=$(tail -n 1 "$pjson")
jq -e '(.predictor_mae_1ms | type == "number") and (.predictor_mae_1ms_last_value | type == "number")' <<<"$pline" >/dev/null ||
	bench_die "predictor_accuracy printed no usable JSON (got '$pline')"
cat "$plog" >&2

# ---------------------------------------------------------------------------
# 2. The tensor pipeline against forward, on the same roce pcap.
# ---------------------------------------------------------------------------
bench_say "generating workload: pktgen roce, seed 7, $PACKETS packets -> $PCAP"
"$PKTGEN" write --workload roce --seed 7 --packets "$PACKETS" -o "$PCAP" >"$DIR/pktgen.log" 2>&1 ||
	bench_die "pktgen write failed (see $DIR/pktgen.log)"
need=$((PACKETS + 3 * 2048 + 2 * 256 + 2 * 64 + 1024))
MBUFS=1
while ((MBUFS < need)); do MBUFS=$((MBUFS * 2 + 1)); done
KEY=$DIR/overlay.key
rm -f "$KEY"
"$INB" ctl keygen "$KEY" >/dev/null || bench_die "intellinode ctl keygen $KEY failed"

common="burst_size = 32
idle_sleep_us = 0
[ports]
mbufs = $MBUFS
[[pairs]]
ports = [0, 1]"
cat >"$DIR/forward.toml" <<EOF
pipeline = "forward"
$common
EOF
cat >"$DIR/tensor.toml" <<EOF
pipeline = "tensor"
$common
[tensor]
host_port = 0
EOF
cat >"$DIR/tensor-full-icrc.toml" <<EOF
pipeline = "tensor"
$common
[tensor]
host_port = 0
icrc_check_every = 1
EOF
cat >"$DIR/overlay.toml" <<EOF
pipeline = "tensor"
$common
[tensor]
host_port = 0
local_ip = "192.0.2.1"
key_file = "overlay.key"
[[tensor.paths]]
id = 1
port = 1
next_hop_mac = "02:00:00:00:01:01"
remote_ip = "192.0.2.2"
capacity_mbps = 100000
[[tensor.paths]]
id = 2
port = 2
next_hop_mac = "02:00:00:00:02:01"
remote_ip = "192.0.2.2"
capacity_mbps = 100000
EOF

TIMEOUT=(timeout --signal=INT --kill-after=10 $((SECS + 60)))
run_pipeline() { # ROUND forward|tensor|tensor-full-icrc|overlay
	local i=$1 mode=$2 prefix="tensor-$$-$2-$1" json="$DIR/$2-$1.json" log="$DIR/$2-$1.log" rc=0
	local eal=(--no-huge -m 512 --no-pci --file-prefix "$prefix" -l 0,1
		--vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" --vdev "net_null1,no-rx=1")
	[[ $mode == overlay ]] && eal+=(--vdev "net_null2,no-rx=1")
	rm -f "$json"
	"${TIMEOUT[@]}" "$INB" run --config "$DIR/$mode.toml" --duration "$SECS" \
		--stats-interval 0 --stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 || rc=$?
	bench_eal_cleanup "$prefix"
	if ((rc != 0)); then
		tail -n 15 "$log" >&2 || true
		bench_die "intellinode $mode run $i failed with exit status $rc (log: $log)"
	fi
	jq -e '.totals.mpps > 0' "$json" >/dev/null || bench_die "intellinode $mode run $i moved nothing (see $json)"
	if [[ $mode == forward ]]; then
		jq -r '"\(.totals.mpps) \(.totals.cycles_per_packet) 0"' "$json"
	else
		jq -e '.tensor.events.qp_new > 0 and .tensor.events.icrc_checked > 0' "$json" >/dev/null ||
			bench_die "intellinode $mode run $i classified no QP (see $json)"
		jq -r '"\(.totals.mpps) \(.totals.cycles_per_packet) \(.tensor.feature_fifo_drop_rate)"' "$json"
	fi
}

t_mpps=() f_mpps=() o_mpps=() full_mpps=() drops=()
for ((i = 1; i <= ROUNDS; i++)); do
	out=$(run_pipeline "$i" tensor)
	read -r m cpp d <<<"$out"
	bench_say "round $i/$ROUNDS: tensor   $(printf '%8.3f' "$m") Mpps ($(printf '%.1f' "$cpp") cycles/pkt), feature FIFO drop rate $d"
	t_mpps+=("$m") drops+=("$d")
	out=$(run_pipeline "$i" tensor-full-icrc)
	read -r m cpp d <<<"$out"
	bench_say "round $i/$ROUNDS: tensor, every ICRC checked $(printf '%8.3f' "$m") Mpps ($(printf '%.1f' "$cpp") cycles/pkt)"
	full_mpps+=("$m")
	out=$(run_pipeline "$i" overlay)
	read -r m cpp d <<<"$out"
	bench_say "round $i/$ROUNDS: overlay  $(printf '%8.3f' "$m") Mpps ($(printf '%.1f' "$cpp") cycles/pkt)"
	o_mpps+=("$m")
	out=$(run_pipeline "$i" forward)
	read -r m cpp d <<<"$out"
	bench_say "round $i/$ROUNDS: forward  $(printf '%8.3f' "$m") Mpps ($(printf '%.1f' "$cpp") cycles/pkt)"
	f_mpps+=("$m")
done
# ---------------------------------------------------------------------------
# 3. Scaling: tensor and forward on one and two workers. The traffic is
#    split by flow as RSS would split it on a NIC configured as
#    docs/architecture.md says for tensor: a seed-7 RoCEv2 pcap over port
#    0's two queues by `pktgen rss-split --field ports` (the Toeplitz hash of
#    the UDP 4-tuple under RSS_KEY, the key the tensor config is given); with
#    one worker the whole pcap replays into its one queue.
#    The scaling pcap is small (SCALE_PACKETS) on purpose: net_pcap's
#    infinite_rx copies every frame out of a ring of the whole pcap, and a
#    20000-frame ring (21 MB of RoCE frames) misses the caches where its two
#    halves, one per worker, nearly fit; forward then "scales" 2.4-3.6x from
#    one worker to two, which measures the replay, not the pipelines. With
#    4000 frames both fit, and forward scales by the CPUs it gets.
# ---------------------------------------------------------------------------
RSS_KEY=6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa
SCALE_PCAP=$DIR/roce-scale.pcap
"$PKTGEN" write --workload roce --seed 7 --packets "$SCALE_PACKETS" -o "$SCALE_PCAP" >>"$DIR/pktgen.log" 2>&1 ||
	bench_die "pktgen write failed (see $DIR/pktgen.log)"
"$PKTGEN" rss-split --queues 2 --field ports --key "$RSS_KEY" -o "$DIR/roce-scale" "$SCALE_PCAP" >>"$DIR/pktgen.log" 2>&1 ||
	bench_die "pktgen rss-split failed (see $DIR/pktgen.log)"
Q0=$DIR/roce-scale-q0.pcap Q1=$DIR/roce-scale-q1.pcap
bench_say "scaling traffic: $(grep '^queue' "$DIR/pktgen.log" | tail -n 2 | tr '\n' ';' | sed 's/;$//')"
for mode in forward tensor; do
	sed -E "s/^mbufs = .*/mbufs = $((MBUFS * 2 + 1))/" "$DIR/$mode.toml" >"$DIR/$mode-scale.toml"
done
grep -q '^\[tensor\]' "$DIR/tensor-scale.toml" || bench_die "$DIR/tensor.toml has no [tensor] section"
sed -i "s/^\[tensor\]/[tensor]\nrss_key = \"$RSS_KEY\"/" "$DIR/tensor-scale.toml"
run_scaled() { # ROUND forward|tensor WORKERS -> mpps handoffs
	local i=$1 mode=$2 w=$3 prefix="tensor-$$-scale-$2-$3-$1" json="$DIR/scale-$2-$3w-$1.json" log="$DIR/scale-$2-$3w-$1.log" rc=0
	local eal=(--no-huge -m 512 --no-pci --file-prefix "$prefix")
	if ((w == 1)); then
		eal+=(-l 0,1 --vdev "net_pcap0,rx_pcap=$SCALE_PCAP,infinite_rx=1")
	else
		eal+=(--lcores 0@0,1@1,2@0 --vdev "net_pcap0,rx_pcap=$Q0,rx_pcap=$Q1,infinite_rx=1")
	fi
	eal+=(--vdev "net_null1,no-rx=1")
	rm -f "$json"
	"${TIMEOUT[@]}" "$INB" run --config "$DIR/$mode-scale.toml" --duration "$SECS" \
		--stats-interval 0 --stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 || rc=$?
	bench_eal_cleanup "$prefix"
	if ((rc != 0)); then
		tail -n 15 "$log" >&2 || true
		bench_die "intellinode $mode on $w worker(s), run $i failed with exit status $rc (log: $log)"
	fi
	jq -e '.totals.mpps > 0 and .totals.balanced' "$json" >/dev/null ||
		bench_die "intellinode $mode on $w worker(s), run $i: nothing forwarded or unbalanced (see $json)"
	jq -r '"\(.totals.mpps) \([.lcores[].handoffs] | add)"' "$json"
}
bench_say "scaling: forward and tensor on 1 and 2 workers, $ROUNDS rounds x ${SECS}s each"
sf1=() sf2=() st1=() st2=()
for ((i = 1; i <= ROUNDS; i++)); do
	for mode in forward tensor; do
		read -r m1 _ < <(run_scaled "$i" "$mode" 1)
		read -r m2 h2 < <(run_scaled "$i" "$mode" 2)
		bench_say "round $i/$ROUNDS: $mode  1 worker $(printf '%7.3f' "$m1") Mpps, 2 workers $(printf '%7.3f' "$m2") Mpps ($h2 handoffs)"
		if [[ $mode == forward ]]; then sf1+=("$m1") sf2+=("$m2"); else st1+=("$m1") st2+=("$m2"); fi
	done
done

median() { printf '%s\n' "$@" | bench_median; }
fwd_scaling=$(jq -n --argjson a "$(median "${sf2[@]}")" --argjson b "$(median "${sf1[@]}")" '$a / $b')
tensor_scaling=$(jq -n --argjson a "$(median "${st2[@]}")" --argjson b "$(median "${st1[@]}")" '$a / $b')
t_med=$(median "${t_mpps[@]}")
o_med=$(median "${o_mpps[@]}")
full_med=$(median "${full_mpps[@]}")
f_med=$(median "${f_mpps[@]}")
d_med=$(median "${drops[@]}")
ratio=$(jq -n --argjson t "$t_med" --argjson f "$f_med" '$t / $f')
full_ratio=$(jq -n --argjson t "$full_med" --argjson f "$f_med" '$t / $f')
read -r mae1 mae1lv mae5 mae5lv < <(jq -r '"\(.predictor_mae_1ms) \(.predictor_mae_1ms_last_value) \(.predictor_mae_5ms) \(.predictor_mae_5ms_last_value)"' <<<"$pline")
gain=$(jq -n --argjson m "$mae1" --argjson l "$mae1lv" '1 - $m / $l')

echo
printf '  %-44s %14s\n' "tensor scheduling (median of $ROUNDS)" "value"
printf '  %-44s %14.3f\n' "tensor Mpps (route mode)" "$t_med"
printf '  %-44s %14.3f\n' "tensor Mpps (overlay, 2 paths, CMAC)" "$o_med"
printf '  %-44s %14.3f\n' "forward Mpps (same pcap)" "$f_med"
printf '  %-44s %14.3f  (target >= %s)\n' "ratio tensor / forward" "$ratio" "$MIN_RATIO"
printf '  %-44s %14.3f\n' "tensor Mpps, every ICRC checked" "$full_med"
printf '  %-44s %14.3f\n' "ratio with every ICRC checked / forward" "$full_ratio"
printf '  %-44s %14s\n' "feature FIFO drop rate" "$d_med"
printf '  %-44s %14.0f\n' "predictor MAE 1 ms (bit/s)" "$mae1"
printf '  %-44s %14.0f\n' "last-value MAE 1 ms (bit/s)" "$mae1lv"
printf '  %-44s %14.3f  (target >= 0.30)\n' "improvement over last value at 1 ms" "$gain"
printf '  %-44s %14s\n' "predictor / last value MAE 5 ms" "$mae5 / $mae5lv"
printf '  %-44s %14.3f\n' "forward: 2 workers / 1 worker" "$fwd_scaling"
printf '  %-44s %14.3f  (target >= 0.9 x forward'"'"'s)\n' "tensor: 2 workers / 1 worker" "$tensor_scaling"
echo

summary_set tensor_mpps "$t_med"
summary_set tensor_overlay_mpps "$o_med"
summary_set tensor_vs_forward_ratio "$ratio"
summary_set tensor_full_icrc_mpps "$full_med"
summary_set tensor_full_icrc_vs_forward_ratio "$full_ratio"
summary_set feature_fifo_drop_rate "$d_med"
summary_set predictor_mae_1ms "$mae1"
summary_set predictor_mae_1ms_last_value "$mae1lv"
summary_set predictor_mae_5ms "$mae5"
summary_set predictor_mae_5ms_last_value "$mae5lv"
summary_set tensor_2w_scaling "$tensor_scaling"
summary_set tensor_forward_2w_scaling "$fwd_scaling"
bench_say "results merged into $BENCH_SUMMARY"

if ((ENFORCE)); then
	fails=()
	jq -e -n --argjson r "$ratio" --argjson m "$MIN_RATIO" '$r < $m' >/dev/null &&
		fails+=("tensor/forward ratio $(printf '%.3f' "$ratio") is below $MIN_RATIO")
	jq -e -n --argjson t "$tensor_scaling" --argjson f "$fwd_scaling" '$t < 0.9 * $f' >/dev/null &&
		fails+=("tensor scaling $(printf '%.3f' "$tensor_scaling") is below 0.9 x forward's $(printf '%.3f' "$fwd_scaling")")
	jq -e -n --argjson g "$gain" '$g < 0.3' >/dev/null &&
		fails+=("predictor beats last value by only $(printf '%.3f' "$gain")")
	if ((${#fails[@]})); then
		msg=$(printf '%s; ' "${fails[@]}")
		bench_die "${msg%; } (BENCH_ENFORCE=1)"
	fi
fi
