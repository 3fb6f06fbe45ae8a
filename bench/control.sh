#!/usr/bin/env bash
# make bench, after bench/run.sh: the control plane under load.
#
# Same forward pipeline, vdevs, lcores and burst as bench/run.sh, but with a
# [control] section, and `intellinode ctl stream` sending sealed PATH_STATE
# updates at BENCH_CONTROL_RATE (10,000/s) while the pcap replays. It records
#   forward_mpps_under_updates   Mpps while the updates stream in
#   forward_under_updates_ratio  that / forward_mpps (bench/run.sh, this run)
#   control_visible_p50_us/p99_us  update -> visible in the worker's next burst
# and, alternated with those rounds, the same run with [control] configured
# but no updates (forward_mpps_control_idle), which separates what a
# configured control plane costs the worker from what the updates cost.
#
# CPU placement (2 vCPUs): EAL pins the main lcore, and the control thread it
# spawns, to CPU 0 and the worker to CPU 1. The ctl client is pinned to CPU 0
# as well (taskset -c 0): sealing 10,000 datagrams/s and the loopback softirq
# they trigger then share CPU 0 with the control thread and the OS, and never
# take cycles from the forwarding core. An appliance's orchestrator runs on
# another machine; what this bench must not do is bill the client's work to
# the worker.
#
# Timing: the stream starts as soon as the appliance prints "running for"
# (its workers are forwarding by then) and ends 0.2 s before the appliance
# stops, so with BENCH_SECS=5 it covers ~96% of the forwarding window that
# .totals.mpps averages over; the coverage is measured and reported
# (control_stream_coverage).
#
# Environment knobs:
#   BENCH_SECS          seconds per run                          (default 5)
#   BENCH_ROUNDS        rounds; each is an idle and a stream run (default 3)
#   BENCH_CONTROL_RATE  updates per second                       (default 10000)
#   BENCH_CONTROL_IDLE  1: also run the [control]-but-idle rounds (default 1)
#   BENCH_CONTROL_PORT  UDP port of the control socket            (default 17470)
#   BENCH_ENFORCE       1: fail if p99 >= 1000 us or ratio < 0.95 (default 0: record only)
#   INTELLINODE_BIN     override the binary's path
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
RATE=${BENCH_CONTROL_RATE:-10000}
IDLE=${BENCH_CONTROL_IDLE:-1}
PORT=${BENCH_CONTROL_PORT:-17470}
ENFORCE=${BENCH_ENFORCE:-0}
MAX_P99_US=1000
MIN_RATIO=0.95
INB=${INTELLINODE_BIN:-target/release/intellinode}
OUT=$BENCH_OUT
PCAP=$OUT/mix.pcap
DIR=$OUT/control
KEY=$DIR/bench.key
CFG=$DIR/control-bench.toml
# The worker runs on CPU 1; the client shares CPU 0 with the main lcore and
# the control thread (see above).
CLIENT_CPU=0

[[ $SECS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_SECS must be a positive integer, got '$SECS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_CONTROL_RATE must be a positive integer, got '$RATE'"
[[ $IDLE =~ ^[01]$ ]] || bench_die "BENCH_CONTROL_IDLE must be 0 or 1, got '$IDLE'"
[[ $ENFORCE =~ ^[01]$ ]] || bench_die "BENCH_ENFORCE must be 0 or 1, got '$ENFORCE'"
if ! [[ $PORT =~ ^[1-9][0-9]*$ ]] || ((PORT > 65535)); then
	bench_die "BENCH_CONTROL_PORT must be a UDP port number, got '$PORT'"
fi
[[ -x $INB ]] || bench_die "missing $INB (run 'make build' first)"
command -v jq >/dev/null || bench_die "jq is required (run 'make deps')"
command -v taskset >/dev/null || bench_die "taskset is required to pin the ctl client (util-linux)"
[[ -s $PCAP ]] || bench_die "missing $PCAP: run bench/run.sh first (make bench runs both)"
jq -e '.forward_mpps | type == "number" and . > 0' "$BENCH_SUMMARY" >/dev/null 2>&1 ||
	bench_die "$BENCH_SUMMARY has no forward_mpps: run bench/run.sh first (make bench runs both)"
FORWARD=$(jq '.forward_mpps' "$BENCH_SUMMARY")
# The ratio is only meaningful against a forward_mpps measured just before,
# on the same machine in the same state; make bench guarantees that.
if [[ -z $(find "$OUT" -maxdepth 1 -name 'intellinode-*.json' -mmin -15 2>/dev/null) ]]; then
	bench_say "warning: forward_mpps in $BENCH_SUMMARY is older than 15 minutes; run 'make bench' for a fair ratio"
fi
if command -v ss >/dev/null && [[ -n $(ss -Hlun "sport = :$PORT" 2>/dev/null) ]]; then
	bench_die "UDP port $PORT is already in use; set BENCH_CONTROL_PORT to a free one"
fi

# A fresh key every run (keygen refuses to overwrite; mode 0600), and the
# config beside it, so key_file can be relative to the config.
mkdir -p "$DIR"
rm -f "$KEY"
"$INB" ctl keygen "$KEY" >"$DIR/keygen.log" 2>&1 || bench_die "ctl keygen $KEY failed (see $DIR/keygen.log)"
cat >"$CFG" <<EOF
# Written by bench/control.sh: bench/forward-bench.toml plus a control plane.
pipeline = "forward"
burst_size = 32

[[pairs]]
ports = [0, 1]

[control]
listen = "127.0.0.1:$PORT"
max_state_age_ms = 1000

[[control.peers]]
id = 1
name = "bench"
key_file = "bench.key"
roles = ["state", "policy", "query"]
EOF

# Exactly bench/run.sh's EAL setup.
eal_args() { # PREFIX
	printf '%s\n' --no-huge -m 512 --no-pci --file-prefix "$1" -l 0,1 \
		--vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" --vdev "net_null0,no-rx=1"
}
TIMEOUT=(timeout --signal=INT --kill-after=10 $((SECS + 60)))
# The stream must end inside the forwarding window: it starts a few ms after
# the appliance reports it is running and stops this long before its end.
END_MARGIN=0.2

run_failed() { # WHAT LOG EXIT-STATUS
	echo "---- last lines of $2 ----" >&2
	tail -n 15 "$2" >&2 || true
	(($3 == 124)) && bench_die "$1 timed out (full log: $2)"
	bench_die "$1 failed with exit status $3 (full log: $2)"
}

# One appliance run; MODE is idle (no updates) or stream. Prints
# "mpps cycles_per_packet p50 p99 samples rate coverage" (latency fields
# and rate are null in idle mode).
run_control() { # ROUND MODE
	local i=$1 mode=$2 prefix="ctl-$$-$2-$1" json="$DIR/$2-$1.json" log="$DIR/$2-$1.log"
	local sjson="$DIR/$2-$1.stream.json" slog="$DIR/$2-$1.stream.log" eal pid
	mapfile -t eal < <(eal_args "$prefix")
	rm -f "$json" "$sjson"
	"${TIMEOUT[@]}" "$INB" run --config "$CFG" --duration "$SECS" \
		--stats-interval 0 --stats-json "$json" -- "${eal[@]}" >"$log" 2>&1 &
	pid=$!
	# If this run fails half-way, stop the appliance rather than leave it
	# spinning a core (this function runs in its own subshell).
	trap 'kill -INT "$pid" 2>/dev/null || true; bench_eal_cleanup "$prefix"' EXIT

	local waited=0
	until grep -q 'running for' "$log" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			local rc=0
			wait "$pid" || rc=$?
			trap - EXIT
			bench_eal_cleanup "$prefix"
			run_failed "intellinode ($mode) run $i" "$log" "$rc"
		fi
		((waited++ < 6000)) || bench_die "intellinode ($mode) run $i did not start within 60 s (log: $log)"
		sleep 0.01
	done
	if [[ $mode == stream ]]; then
		# The log was last written when the appliance printed its header,
		# i.e. when forwarding started; end the stream END_MARGIN before
		# the appliance stops, however late this loop noticed the start.
		local started now secs
		started=$(stat -c %.9Y "$log")
		now=$(date +%s.%N)
		secs=$(jq -n --argjson t "$started" --argjson n "$now" --argjson d "$SECS" --argjson m "$END_MARGIN" \
			'$t + $d - $m - $n | . * 1000 | floor / 1000')
		jq -e -n --argjson s "$secs" --argjson d "$SECS" '$s >= $d / 2' >/dev/null ||
			bench_die "control stream run $i: noticed the appliance's start too late to stream for at least half of its ${SECS}s (machine busy?)"
		taskset -c "$CLIENT_CPU" "$INB" ctl --server "127.0.0.1:$PORT" --key-file "$KEY" --key-id 1 --json \
			stream --rate "$RATE" --duration "$secs" --paths 1,2,3 >"$sjson" 2>"$slog" ||
			bench_die "ctl stream ($mode run $i) failed: $(head -n 1 "$slog")"
	fi
	local rc=0
	wait "$pid" || rc=$?
	trap - EXIT
	bench_eal_cleanup "$prefix"
	((rc == 0)) || run_failed "intellinode ($mode) run $i" "$log" "$rc"
	jq -e '(.totals.mpps | type == "number") and (.totals.cycles_per_packet | type == "number")
		and (.control | type == "object") and (.duration_secs > 0)' "$json" >/dev/null 2>&1 ||
		bench_die "intellinode ($mode) run $i: $json lacks .totals.mpps / .control / .duration_secs"
	if [[ $mode == idle ]]; then
		jq -r '"\(.totals.mpps) \(.totals.cycles_per_packet) null null 0 null null"' "$json"
		return
	fi
	jq -e '(.sent | type == "number") and (.secs | type == "number")' "$sjson" >/dev/null 2>&1 ||
		bench_die "ctl stream ($mode run $i) wrote no usable summary to $sjson"
	# The updates must all have arrived and been applied, or the run did not
	# measure what it claims.
	local check
	check=$(jq -r --slurpfile s "$sjson" '
		($s[0].sent) as $sent | (.control.accepted.path_state) as $acc
		| if $s[0].errors > 0 then "ctl stream had \($s[0].errors) send errors (did the stream outlive the appliance?)"
		elif .control.rejected_total > 0 then "the control thread rejected \(.control.rejected_total) datagrams: \(.control.rejected | with_entries(select(.value > 0)))"
		elif $acc < $sent then "only \($acc) of \($sent) streamed updates were accepted (datagrams lost on loopback?)"
		elif .control.visible_latency_us.samples == 0 then "the worker saw no control-state version (no traffic flowing?)"
		else "ok" end' "$json")
	[[ $check == ok ]] || bench_die "control stream run $i: $check (see $json)"
	jq -r --slurpfile s "$sjson" '
		"\(.totals.mpps) \(.totals.cycles_per_packet) \(.control.visible_latency_us.p50)" +
		" \(.control.visible_latency_us.p99) \(.control.visible_latency_us.samples)" +
		" \($s[0].rate) \($s[0].secs / .duration_secs)"' "$json"
}

median() { printf '%s\n' "$@" | bench_median; }

if ((IDLE)); then runs="an idle run and a $RATE updates/s run alternated"; else runs="$RATE updates/s"; fi
bench_say "control: $ROUNDS rounds x ${SECS}s, $runs; worker on CPU 1, control thread and ctl client on CPU $CLIENT_CPU"
idle_mpps=() s_mpps=() s_cpp=() s_p50=() s_p99=() s_rate=() s_cov=()
for ((i = 1; i <= ROUNDS; i++)); do
	if ((IDLE)); then
		# Capture first: a failure inside a here-string's substitution would
		# not stop the script.
		out=$(run_control "$i" idle)
		read -r m cpp _ <<<"$out"
		bench_say "round $i/$ROUNDS: [control], no updates    $(printf '%8.3f' "$m") Mpps  ($(printf '%.1f' "$cpp") cycles/pkt)"
		idle_mpps+=("$m")
	fi
	out=$(run_control "$i" stream)
	read -r m cpp p50 p99 n rate cov <<<"$out"
	bench_say "round $i/$ROUNDS: [control], $RATE updates/s $(printf '%8.3f' "$m") Mpps  ($(printf '%.1f' "$cpp") cycles/pkt)  visible p50 $p50 us, p99 $p99 us ($n samples)  $(printf '%.0f' "$rate")/s over $(printf '%.0f' "$(jq -n "$cov * 100")")% of the window"
	s_mpps+=("$m") s_cpp+=("$cpp") s_p50+=("$p50") s_p99+=("$p99") s_rate+=("$rate") s_cov+=("$cov")
done

mpps=$(median "${s_mpps[@]}")
cpp=$(median "${s_cpp[@]}")
p50=$(median "${s_p50[@]}")
p99=$(median "${s_p99[@]}")
p99_worst=$(printf '%s\n' "${s_p99[@]}" | jq -s 'max')
rate=$(median "${s_rate[@]}")
cov=$(median "${s_cov[@]}")
ratio=$(jq -n --argjson m "$mpps" --argjson f "$FORWARD" '$m / $f')

echo
printf '  %-40s %10s %10s\n' "control plane (median of $ROUNDS)" "value" "vs fwd"
printf '  %-40s %10.3f %10s\n' "forward, no [control] (bench/run.sh) Mpps" "$FORWARD" ""
if ((IDLE)); then
	idle=$(median "${idle_mpps[@]}")
	printf '  %-40s %10.3f %10.3f\n' "forward, [control], no updates Mpps" "$idle" \
		"$(jq -n --argjson m "$idle" --argjson f "$FORWARD" '$m / $f')"
fi
printf '  %-40s %10.3f %10.3f  (target >= %s)\n' "forward, $RATE updates/s Mpps" "$mpps" "$ratio" "$MIN_RATIO"
printf '  %-40s %10.1f\n' "  cycles/packet" "$cpp"
printf '  %-40s %10.0f\n' "  updates/s achieved" "$rate"
printf '  %-40s %10.2f\n' "  stream coverage of forwarding window" "$cov"
printf '  %-40s %10s\n' "update-to-visible p50 us" "$p50"
printf '  %-40s %10s  (target < %s; worst round %s)\n' "update-to-visible p99 us" "$p99" "$MAX_P99_US" "$p99_worst"
echo

summary_set control_visible_p50_us "$p50"
summary_set control_visible_p99_us "$p99"
summary_set forward_mpps_under_updates "$mpps"
summary_set forward_under_updates_ratio "$ratio"
summary_set control_update_rate "$rate"
summary_set control_stream_coverage "$cov"
if ((IDLE)); then
	summary_set forward_mpps_control_idle "$idle"
fi
bench_say "results merged into $BENCH_SUMMARY"

if ((ENFORCE)); then
	fails=()
	jq -e -n --argjson p "$p99" --argjson m "$MAX_P99_US" '$p >= $m' >/dev/null &&
		fails+=("update-to-visible p99 ${p99} us is not under ${MAX_P99_US} us")
	jq -e -n --argjson r "$ratio" --argjson m "$MIN_RATIO" '$r < $m' >/dev/null &&
		fails+=("forward under updates is $(printf '%.3f' "$ratio") of forward_mpps, below $MIN_RATIO")
	if ((${#fails[@]})); then
		msg=$(printf '%s; ' "${fails[@]}")
		bench_die "${msg%; } (BENCH_ENFORCE=1)"
	fi
fi
