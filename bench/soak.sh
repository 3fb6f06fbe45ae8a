#!/usr/bin/env bash
# make soak: every pipeline (forward, steer, tensor) at full rate for
# SOAK_SECS each (10 minutes by default), with sealed control updates
# streaming the whole time, checking that nothing leaks or goes uncounted.
#
# Each pipeline runs on bench/run.sh's setup (main lcore 0, one worker on
# lcore 1, no idle sleep, a pcap replayed forever into port 0, net_null
# sinks) with a [control] section; `intellinode ctl stream` sends
# SOAK_CONTROL_RATE sealed messages per second: PATH_STATE for forward and
# tensor, PATH_STATE and NODE_STATE for steer's paths and nodes. Workloads:
# pktgen mix (forward), agent with IPv4 token-feature TLVs through
# examples/steer.toml (steer), RoCEv2 into a two-path Geneve overlay with
# signed metadata (tensor).
#
# Every SOAK_SAMPLE_SECS it samples the appliance's resident memory (VmRSS
# in /proc/PID/status) and its stats (`ctl query stats`), and asserts:
#   - rx = tx + drops throughout: in every sample, |rx - tx - drops| is at
#     most the mbufs the appliance can hold (the pool's size), since a
#     packet inside it holds an mbuf, and rx grew since the last sample
#     (traffic kept flowing); at exit, exactly (totals.balanced);
#   - resident memory is flat: after SOAK_WARMUP_SECS, no sample exceeds
#     the first post-warm-up sample by more than SOAK_RSS_SLACK_KB;
#   - the pool's in-use count returns to its baseline: mbufs in use with
#     the workers stopped and drained equal those in use with the ports
#     started and no worker running yet (the stats JSON's
#     mempool.in_use_at_start / in_use_at_end);
#   - every streamed update was accepted and none rejected.
# Results go to $SOAK_OUT/summary.json (one object per pipeline, with the
# samples in $SOAK_OUT/<pipeline>/samples.jsonl) and a table on stdout.
#
# Environment knobs:
#   SOAK_SECS           seconds per pipeline                       (default 600)
#   SOAK_PIPELINES      which pipelines                            (default "forward steer tensor")
#   SOAK_SAMPLE_SECS    seconds between samples                    (default 10)
#   SOAK_WARMUP_SECS    seconds before the RSS baseline            (default SOAK_SECS/5, at most 60)
#   SOAK_RSS_SLACK_KB   allowed RSS growth after warm-up, KiB      (default 4096)
#   SOAK_CONTROL_RATE   control updates per second                 (default 1000)
#   SOAK_CONTROL_PORT   UDP port of the control socket             (default 17480)
#   SOAK_PACKETS        packets in each workload pcap              (default 20000)
#   SOAK_OUT            output directory                           (default target/soak)
#   INTELLINODE_BIN, PKTGEN_BIN   the binaries (default target/release/...)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

soak_say() { printf 'soak: %s\n' "$*"; }
soak_die() {
	printf 'soak: error: %s\n' "$*" >&2
	exit 1
}

SECS=${SOAK_SECS:-600}
PIPELINES=${SOAK_PIPELINES:-forward steer tensor}
SAMPLE=${SOAK_SAMPLE_SECS:-10}
RSS_SLACK_KB=${SOAK_RSS_SLACK_KB:-4096}
RATE=${SOAK_CONTROL_RATE:-1000}
PORT=${SOAK_CONTROL_PORT:-17480}
PACKETS=${SOAK_PACKETS:-20000}
OUT=${SOAK_OUT:-target/soak}
INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
MAX_PACKETS=50000

[[ $SECS =~ ^[1-9][0-9]*$ ]] || soak_die "SOAK_SECS must be a positive integer, got '$SECS'"
[[ $SAMPLE =~ ^[1-9][0-9]*$ ]] || soak_die "SOAK_SAMPLE_SECS must be a positive integer, got '$SAMPLE'"
WARMUP=${SOAK_WARMUP_SECS:-$((SECS / 5 < 60 ? SECS / 5 : 60))}
[[ $WARMUP =~ ^[0-9]+$ ]] || soak_die "SOAK_WARMUP_SECS must be a whole number of seconds, got '$WARMUP'"
((WARMUP + 2 * SAMPLE <= SECS)) ||
	soak_die "SOAK_SECS=$SECS leaves no room for two samples after the ${WARMUP}s warm-up (SOAK_SAMPLE_SECS=$SAMPLE)"
[[ $RSS_SLACK_KB =~ ^[0-9]+$ ]] || soak_die "SOAK_RSS_SLACK_KB must be a whole number, got '$RSS_SLACK_KB'"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || soak_die "SOAK_CONTROL_RATE must be a positive integer, got '$RATE'"
if ! [[ $PORT =~ ^[1-9][0-9]*$ ]] || ((PORT > 65535)); then
	soak_die "SOAK_CONTROL_PORT must be a UDP port number, got '$PORT'"
fi
[[ $PACKETS =~ ^[1-9][0-9]*$ ]] || soak_die "SOAK_PACKETS must be a positive integer, got '$PACKETS'"
((PACKETS <= MAX_PACKETS)) || soak_die "SOAK_PACKETS=$PACKETS exceeds $MAX_PACKETS (the pool must hold the pcap within -m 512)"
for p in $PIPELINES; do
	[[ $p =~ ^(forward|steer|tensor)$ ]] || soak_die "SOAK_PIPELINES: unknown pipeline '$p' (forward, steer, tensor)"
done
for bin in "$INB" "$PKTGEN"; do
	[[ -x $bin ]] || soak_die "missing $bin (run 'make build' first, or set INTELLINODE_BIN / PKTGEN_BIN)"
done
command -v jq >/dev/null || soak_die "jq is required (run 'make deps')"
[[ -r /proc/self/status ]] || soak_die "/proc is needed to read the appliance's resident memory"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.json
echo '{}' >"$SUMMARY"

# net_pcap's infinite_rx copies the whole pcap into mbufs at queue setup:
# the pool holds it, three ports' rings, the lcore caches and bursts in
# flight, rounded up to 2^n - 1 (as bench/steer.sh and bench/tensor.sh).
need=$((PACKETS + 3 * 2048 + 2 * 256 + 2 * 64 + 1024))
MBUFS=1
while ((MBUFS < need)); do MBUFS=$((MBUFS * 2 + 1)); done

# The config of PIPELINE (into DIR/PIPELINE.toml), the pcap it replays,
# and the ctl stream's targets. Prints "PCAP PORTS STREAM-ARGS".
prepare() { # PIPELINE DIR
	local p=$1 dir=$2 pcap=$2/input.pcap workload
	case $p in
	forward) workload=(--workload mix) ;;
	steer) workload=(--workload agent --tlv ipv4) ;;
	tensor) workload=(--workload roce) ;;
	esac
	"$PKTGEN" write "${workload[@]}" --seed 7 --packets "$PACKETS" -o "$pcap" >"$dir/pktgen.log" 2>&1 ||
		soak_die "$p: pktgen write failed (see $dir/pktgen.log)"
	rm -f "$dir/orch.key" "$dir/query.key" "$dir/overlay.key"
	"$INB" ctl keygen "$dir/orch.key" >/dev/null || soak_die "$p: ctl keygen failed"
	"$INB" ctl keygen "$dir/query.key" >/dev/null || soak_die "$p: ctl keygen failed"
	# Two peers: every ctl process numbers its messages from its start
	# time, so a query process and the stream under one peer id would
	# push each other out of the replay window.
	local control="
[control]
listen = \"127.0.0.1:$PORT\"
max_state_age_ms = 1000

[[control.peers]]
id = 1
name = \"soak-stream\"
key_file = \"orch.key\"
roles = [\"state\"]

[[control.peers]]
id = 2
name = \"soak-query\"
key_file = \"query.key\"
roles = [\"query\"]"
	# TOML: the top-level keys first, then the tables.
	{
		echo "# Written by bench/soak.sh."
		case $p in
		forward) echo 'pipeline = "forward"' ;;
		tensor) echo 'pipeline = "tensor"' ;;
		# examples/steer.toml's top-level keys, without its worker settings.
		steer) sed -E '/^[[:space:]]*(burst_size|idle_sleep_us)[[:space:]]*=/d' examples/steer.toml |
			awk '/^[[:space:]]*\[/ {exit} {print}' ;;
		esac
		printf 'burst_size = 32\nidle_sleep_us = 0\n[ports]\nmbufs = %d\n' "$MBUFS"
		case $p in
		forward) printf '[[pairs]]\nports = [0, 1]\n' ;;
		steer) awk 'BEGIN {top = 1} /^[[:space:]]*\[/ {top = 0} !top' examples/steer.toml ;;
		tensor)
			"$INB" ctl keygen "$dir/overlay.key" >/dev/null || soak_die "tensor: ctl keygen failed"
			cat <<-EOF
				[[pairs]]
				ports = [0, 1]
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
			;;
		esac
		echo "$control"
	} >"$dir/$p.toml"
	case $p in
	forward) echo "$pcap 1 --paths 1,2,3" ;;
	steer) echo "$pcap 2 --paths 1,2 --nodes 1,2" ;;
	tensor) echo "$pcap 2 --paths 1,2" ;;
	esac
}

ctl_cmd() { # DIR ARGS...
	local dir=$1
	shift
	"$INB" ctl --server "127.0.0.1:$PORT" --key-file "$dir/query.key" --key-id 2 --json "$@"
}

failures=()
fail() { # PIPELINE MESSAGE
	soak_say "$1: FAILED: $2"
	failures+=("$1: $2")
}

soak_one() { # PIPELINE
	local p=$1 dir=$OUT/$1 prefix="soak-$$-$1"
	mkdir -p "$dir"
	local pcap nulls stream_args
	read -r pcap nulls stream_args < <(prepare "$p" "$dir")
	[[ -n $pcap ]] || soak_die "$p: could not prepare the run"
	local eal=(--no-huge -m 512 --no-pci --file-prefix "$prefix" -l 0,1
		--vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1")
	local n
	for ((n = 1; n <= nulls; n++)); do eal+=(--vdev "net_null$n,no-rx=1"); done
	local json=$dir/stats.json log=$dir/run.log samples=$dir/samples.jsonl
	rm -f "$json" "$samples" "$dir/stream.json"
	if command -v ss >/dev/null && [[ -n $(ss -Hlun "sport = :$PORT" 2>/dev/null) ]]; then
		soak_die "UDP port $PORT is already in use; set SOAK_CONTROL_PORT to a free one"
	fi

	soak_say "$p: ${SECS}s at full rate, $RATE control updates/s ($stream_args), sampling every ${SAMPLE}s"
	"$INB" run --config "$dir/$p.toml" --duration "$SECS" --stats-interval 0 \
		--stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 &
	local pid=$!
	RUN_PID=$pid STREAM_PID=""
	# Whatever happens below, do not leave the appliance spinning a core.
	trap 'kill -INT $RUN_PID $STREAM_PID 2>/dev/null || true; bench_eal_cleanup "'"$prefix"'"' EXIT
	local waited=0
	until grep -q 'running for' "$log" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 15 "$log" >&2 || true
			soak_die "$p: intellinode exited before running (log: $log)"
		fi
		((waited++ < 6000)) || soak_die "$p: intellinode did not start within 60 s (log: $log)"
		sleep 0.01
	done
	local started
	started=$(date +%s.%N)
	# The stream ends a second before the appliance does, so every update
	# reaches a running control thread. Pinned with the control thread on
	# CPU 0, away from the worker (see bench/control.sh).
	# shellcheck disable=SC2086
	taskset -c 0 "$INB" ctl --server "127.0.0.1:$PORT" --key-file "$dir/orch.key" --key-id 1 --json \
		stream --rate "$RATE" --duration $((SECS - 1)) $stream_args >"$dir/stream.json" 2>"$dir/stream.log" &
	local stream_pid=$!
	STREAM_PID=$stream_pid

	# Samples: time, RSS, rx/tx/drops summed over ports, mbufs in use; the
	# last one at least a second before the appliance starts to stop.
	local k t rss stats rx last_rx=-1 flowing=1
	for ((k = 1; k * SAMPLE <= SECS - 1; k++)); do
		sleep "$(awk -v s="$started" -v n="$(date +%s.%N)" -v at=$((k * SAMPLE)) \
			'BEGIN { d = s + at - n; printf "%.3f", (d > 0 ? d : 0) }')"
		kill -0 "$pid" 2>/dev/null || break
		t=$(awk -v s="$started" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
		rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
		stats=$(ctl_cmd "$dir" --timeout-ms 2000 query stats 2>>"$dir/query.log") || {
			fail "$p" "ctl query stats failed at ${t}s (see $dir/query.log)"
			break
		}
		jq -c --argjson t "$t" --argjson rss "$rss" '{
			t: $t, rss_kb: $rss,
			rx: ([.ports[].rx_packets] | add), tx: ([.ports[].tx_packets] | add),
			drops: ([.ports[].drops_total] | add),
			mbufs_in_use: .mempool.in_use, mbufs: .mempool.size
		} | .gap = .rx - .tx - .drops' <<<"$stats" >>"$samples"
		rx=$(tail -n 1 "$samples" | jq '.rx')
		((rx > last_rx)) || flowing=0
		last_rx=$rx
	done

	local rc=0
	wait "$pid" || rc=$?
	wait "$stream_pid" || fail "$p" "ctl stream failed: $(head -n 1 "$dir/stream.log")"
	trap - EXIT
	bench_eal_cleanup "$prefix"
	if ((rc != 0)); then
		tail -n 15 "$log" >&2 || true
		fail "$p" "intellinode exited with status $rc (log: $log)"
		return
	fi
	[[ -s $json ]] || {
		fail "$p" "no stats JSON at $json"
		return
	}
	((flowing)) || fail "$p" "rx stopped growing between two samples (traffic stalled)"

	# One line per check; the summary keeps the numbers.
	local result
	result=$(jq -n --slurpfile run "$json" --slurpfile stream "$dir/stream.json" \
		--slurpfile samples <(cat "$samples" 2>/dev/null || true) \
		--arg p "$p" --argjson warm "$WARMUP" --argjson slack "$RSS_SLACK_KB" --argjson secs "$SECS" '
		$run[0] as $r | ($stream[0] // {}) as $s | $samples as $ss
		| ([$ss[] | select(.t >= $warm)]) as $after
		| ($after[0].rss_kb // null) as $rss0
		| {
			pipeline: $p, secs: $secs, date: (now | todate),
			mpps: $r.totals.mpps, rx_packets: $r.totals.rx_packets, tx_packets: $r.totals.tx_packets,
			drops: $r.totals.drops_total, balanced_at_exit: $r.totals.balanced,
			samples: ($ss | length),
			max_abs_gap: ([$ss[].gap | fabs] | max // null),
			gap_bound: $r.mempool.size,
			rss_first_kb: ($ss[0].rss_kb // null),
			rss_after_warmup_kb: $rss0,
			rss_max_after_warmup_kb: ([$after[].rss_kb] | max // null),
			rss_growth_kb: (if $rss0 == null then null else ([$after[].rss_kb] | max) - $rss0 end),
			rss_slack_kb: $slack,
			mbufs: $r.mempool.size,
			mbufs_in_use_at_start: $r.mempool.in_use_at_start,
			mbufs_in_use_at_end: $r.mempool.in_use_at_end,
			mbufs_in_use_max_sampled: ([$ss[].mbufs_in_use] | max // null),
			updates_sent: ($s.sent // 0),
			updates_accepted: (($r.control.accepted.path_state // 0) + ($r.control.accepted.node_state // 0)),
			control_rejected: $r.control.rejected_total,
			stream_errors: ($s.errors // null)
		}')
	jq -S --arg p "$p" --argjson v "$result" '.[$p] = $v' "$SUMMARY" >"$SUMMARY.tmp" && mv "$SUMMARY.tmp" "$SUMMARY"

	local problem
	while IFS= read -r problem; do
		[[ -n $problem ]] && fail "$p" "$problem"
	done < <(jq -r '
		(if .balanced_at_exit != true then "rx \(.rx_packets) != tx \(.tx_packets) + drops \(.drops) at exit" else empty end),
		(if .samples < 2 then "only \(.samples) stats samples (need at least 2)" else empty end),
		(if .max_abs_gap != null and .max_abs_gap > .gap_bound then "a sample had rx - tx - drops = \(.max_abs_gap), more than the \(.gap_bound) mbufs the appliance can hold" else empty end),
		(if .rss_growth_kb == null then "no RSS sample after the warm-up" elif .rss_growth_kb > .rss_slack_kb then "resident memory grew \(.rss_growth_kb) KiB after the warm-up (bound \(.rss_slack_kb) KiB)" else empty end),
		(if .mbufs_in_use_at_end != .mbufs_in_use_at_start then "mbufs in use \(.mbufs_in_use_at_end) at the end, \(.mbufs_in_use_at_start) at the start" else empty end),
		(if .mpps <= 0 then "no traffic" else empty end),
		(if .stream_errors != 0 then "ctl stream reported \(.stream_errors) send errors" else empty end),
		(if .updates_sent == 0 then "no control update was streamed" else empty end),
		(if .control_rejected != 0 then "the control plane rejected \(.control_rejected) datagrams" else empty end),
		(if .updates_accepted < .updates_sent then "only \(.updates_accepted) of \(.updates_sent) streamed updates were accepted" else empty end)
	' <<<"$result")
	jq -r '"soak: \(.pipeline): \(.mpps * 1000 | round / 1000) Mpps, \(.samples) samples, max |rx-tx-drops| \(.max_abs_gap),"
		+ " RSS \(.rss_after_warmup_kb) -> max \(.rss_max_after_warmup_kb) KiB (+\(.rss_growth_kb)),"
		+ " mbufs in use \(.mbufs_in_use_at_start) -> \(.mbufs_in_use_at_end) (max sampled \(.mbufs_in_use_max_sampled) of \(.mbufs)),"
		+ " \(.updates_accepted)/\(.updates_sent) updates accepted"' <<<"$result"
}

soak_say "pipelines: $PIPELINES; ${SECS}s each; warm-up ${WARMUP}s; RSS bound +${RSS_SLACK_KB} KiB; results in $SUMMARY"
for p in $PIPELINES; do
	soak_one "$p"
done

if ((${#failures[@]})); then
	printf 'soak: FAILED:\n' >&2
	printf '  %s\n' "${failures[@]}" >&2
	exit 1
fi
soak_say "passed: every pipeline balanced throughout, flat RSS, the pool back to its baseline"
