#!/usr/bin/env bash
# make eval: the real appliance between agents and an emulated inference
# cluster, three steering policies at three loads, and a report.
#
#   NAME-agent           NAME (intellinode)        NAME-line          NAME-edge
#   pktgen agent ─veth─ port 0    port 1 ─veth─ [pktgen wire] ─veth─ pktgen serve (small, near)
#                                 port 2 ─veth─ [pktgen wire] ─veth─ pktgen serve (large, far)
#                                              NAME-inet          NAME-centre
#   nodes ──management veths──► the appliance's control plane (NODE_STATE)
#
# The cluster (node rates, batch slots, KV capacity, path delay, jitter and
# loss, the request mix) and its capacity come from `intellisim plan`, the
# same description the simulator runs, so emulation and simulation share
# one source. For each policy (FIFO + round robin, least queue, IntelliNode)
# and load (50, 80, 95% of capacity, plus a nearly idle run for IntelliNode)
# the nodes and the appliance start fresh, the agent sends the same seeded
# open-loop Poisson load, and everything stops by itself. Then
# `intellisim eval` simulates the same runs, `intellisim scale` runs the
# decision at 1,000 nodes with failures, `intellisim uplink` puts the
# cluster behind one busy egress port, `intellisim prefix` runs
# shared-prefix agents against modelled prefix caches for four policies
# (with llm_d) on this cluster and a symmetric one (simulated only: the
# emulated nodes have no prefix cache yet), and `intellieval report` writes
# target/eval/{summary.json,report.md,*.svg,*.png}.
#
# The failure run (the plan's .failover): IntelliNode alone at one load,
# with both wires reporting PATH_STATE; during the arrivals the edge
# node is killed (SIGKILL) and restarted, then the centre's wire is cut
# (SIGUSR1: a black hole) and restored (SIGUSR2). The times of those
# actions go to runs/failover-timeline.json, and `intellisim failover`
# plays the same timeline; the report measures both alike.
#
# Environment:
#   EVAL_OUT       output directory (target/eval)
#   EVAL_POLICIES  policies to run ("fifo least_queue intellinode")
#   EVAL_LOADS     loads to run ("unloaded 50 80 95")
#   EVAL_SECONDS   seconds of arrivals per run (15)
#   EVAL_FAILOVER  0 to skip the failure run (1)
#   EVAL_REPORT    0 to skip the simulation and the report (the test's
#                  small topology only wants the runs)
#   INTELLINODE_BIN, PKTGEN_BIN, INTELLISIM_BIN, INTELLIEVAL_BIN
# Needs root (network namespaces), jq, ip, ethtool.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PATH:/usr/sbin:/sbin

INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
SIM=${INTELLISIM_BIN:-target/release/intellisim}
REPORT=${INTELLIEVAL_BIN:-target/release/intellieval}
OUT=${EVAL_OUT:-target/eval}
POLICIES=${EVAL_POLICIES:-fifo least_queue intellinode}
LOADS=${EVAL_LOADS:-unloaded 50 80 95}
SECONDS_PER_RUN=${EVAL_SECONDS:-15}
WRITE_REPORT=${EVAL_REPORT:-1}
FAILOVER=${EVAL_FAILOVER:-1}
NS="ieval$$"
TIMEOUT_S=20
UNLOADED_FRACTION=0.05
CTL_PORT=7470
STARTED=$(date +%s)

say() { printf 'eval: %s\n' "$*"; }
die() {
	printf 'eval: error: %s\n' "$*" >&2
	exit 1
}

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
preflight eval "$INB" "$PKTGEN" "$SIM" "$REPORT"
INB=$(realpath "$INB")
PKTGEN=$(realpath "$PKTGEN")
for p in $POLICIES; do
	case $p in fifo | least_queue | intellinode) ;; *) die "EVAL_POLICIES: unknown policy $p" ;; esac
done
for l in $LOADS; do
	case $l in unloaded | [0-9] | [1-9][0-9]) ;; *) die "EVAL_LOADS: $l is not 'unloaded' or a percentage below 100" ;; esac
done
[[ $SECONDS_PER_RUN =~ ^[1-9][0-9]*$ ]] || die "EVAL_SECONDS=$SECONDS_PER_RUN is not a number of seconds"

mkdir -p "$OUT/runs" "$OUT/logs"
rm -f "$OUT"/runs/*.json "$OUT"/logs/*
OUT=$(realpath "$OUT")

# --- the cluster, as the simulator describes it ------------------------------
"$SIM" plan >"$OUT/plan.json" || die "intellisim plan failed"
plan() { jq -er "$1" "$OUT/plan.json" || die "plan.json has no $1"; }
CAPACITY=$(plan .capacity_rps)

# --- set-up and a clean-up that always runs ----------------------------------
PIDS=()
stop_all() {
	stop_pids "${PIDS[@]}"
	PIDS=()
}
WIRES=()
cleanup() {
	stop_all
	PIDS=("${WIRES[@]}")
	stop_all
	bash scripts/steer-topology.sh down "$NS" || true
	rm -rf /var/run/dpdk/"$NS"-* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM


say "building the topology (namespaces $NS, $NS-{agent,line,inet,edge,centre})"
bash scripts/steer-topology.sh up "$NS" --wire || die "could not build the topology"

# The paths: one user-space line each, up for the whole evaluation.
start_wire() { # NAME PATH_KEY IFACE_PREFIX [REPORT_ARGS...]
	local name=$1 key=$2 ifc=$3 log=$OUT/logs/wire-$1.log
	shift 3
	ip netns exec "$NS-$name" "$PKTGEN" wire --a "${ifc}a" --b "${ifc}b" \
		--delay-ms "$(plan ".paths.$key.one_way_ms")" --jitter-ms "$(plan ".paths.$key.jitter_ms")" \
		--loss "$(plan ".paths.$key.loss")" --seed 7 --stats-json "$OUT/logs/wire-$name.json" \
		"$@" >"$log" 2>&1 &
	WIRES+=($!)
	wait_for "$log" bridging "$!" "pktgen wire ($name)"
}
start_wire line line l
start_wire inet internet i

"$INB" ctl keygen "$OUT/logs/edge.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/centre.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/line.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/internet.key" >/dev/null

# path_config ID NAME PORT MAC PLAN_KEY: a [[steer.paths]] table, its
# priors from the plan's path.
path_config() {
	cat <<EOF

[[steer.paths]]
id = $1
name = "$2"
egress_port = $3
next_hop_mac = "$4"
latency_us = $(plan ".paths.$5.one_way_ms * 1000")
jitter_us = $(plan ".paths.$5.jitter_ms * 1000")
EOF
}

# instance_config NAME NODE IP PATH MODEL_CLASS MAX_CONTEXT: a
# [[steer.instances]] table, its rates from the plan's node NAME.
instance_config() {
	cat <<EOF

[[steer.instances]]
name = "$1"
node = $2
ip = "$3"
paths = [$4]
model_class = "$5"
task_types = ["immediate_control", "chat", "code_generation", "summarisation", "complex_reasoning"]
max_context_tokens = $6
prefill_tokens_per_s = $(plan ".nodes.$1.prefill_tps")
decode_tokens_per_s = $(plan ".nodes.$1.decode_tps")
concurrency = $(plan ".nodes.$1.concurrency")
base_ttft_us = $(plan ".nodes.$1.base_ttft_ms * 1000")
EOF
}

# config POLICY: the appliance's configuration for a policy.
config() {
	local policy strict
	case $1 in
	fifo) policy=round_robin strict=false ;;
	least_queue) policy=least_queue strict=false ;;
	intellinode) policy=token_aware strict=true ;;
	esac
	cat <<EOF
# Generated by scripts/eval.sh for policy $1.
pipeline = "steer"
idle_sleep_us = 50

[[pairs]]
ports = [0, 1]

[steer]
policy = "$policy"
strict_priority = $strict
agent_port = 0
infer_http_ports = [8000]
EOF
	path_config 1 "low-delay line" 1 02:00:00:00:02:02 line
	path_config 2 "public internet" 2 02:00:00:00:03:02 internet
	instance_config edge 1 10.0.2.2 1 small_edge 8192
	instance_config centre 2 10.0.3.2 2 large_centre 131072
	cat <<EOF

[[steer.services]]
name = "chat"
vip = "10.0.100.1"
ports = [8000]
instances = ["edge", "centre"]

[control]
listen = "0.0.0.0:$CTL_PORT"

[[control.peers]]
id = 11
name = "edge"
key_file = "$OUT/logs/edge.key"
roles = ["state"]

[[control.peers]]
id = 12
name = "centre"
key_file = "$OUT/logs/centre.key"
roles = ["state"]

[[control.peers]]
id = 13
name = "line"
key_file = "$OUT/logs/line.key"
roles = ["state"]

[[control.peers]]
id = 14
name = "internet"
key_file = "$OUT/logs/internet.key"
roles = ["state"]
EOF
}

# serve_argv NODE(edge|centre) NODE_ID KEY_ID IP MGMT_APPLIANCE_IP TAG: the
# node's command line in SERVE_ARGV (built ahead, so a restart is quick).
serve_argv() {
	local n=.nodes.$1
	SERVE_ARGV=(ip netns exec "$NS-$1" "$PKTGEN" serve --listen "$4:8000" --name "$1"
		--prefill-tps "$(plan "$n.prefill_tps")" --decode-tps "$(plan "$n.decode_tps")"
		--base-ttft-ms "$(plan "$n.base_ttft_ms")" --concurrency "$(plan "$n.concurrency")"
		--kv-tokens "$(plan "$n.kv_tokens")"
		--report-to "$5:$CTL_PORT" --key-file "$OUT/logs/$1.key" --key-id "$3" --node "$2"
		--report-interval-ms "$(plan '.report_interval_ms | floor')"
		--duration-s $((SECONDS_PER_RUN + TIMEOUT_S + 30)) --stats-json "$OUT/logs/$6-$1.json")
}

serve() { # as serve_argv; starts the node and waits until it listens
	local log=$OUT/logs/$6-$1.log
	serve_argv "$@"
	"${SERVE_ARGV[@]}" >"$log" 2>&1 &
	PIDS+=($!)
	wait_for "$log" "listening on" "$!" "pktgen serve ($1)"
}

INDEX=()
SEED_BASE=1000
run_one() { # POLICY LOAD
	local policy=$1 load=$2 tag=$1-$2 rate requests seed fraction
	if [[ $load == unloaded ]]; then
		fraction=$UNLOADED_FRACTION
		seed=$SEED_BASE
	else
		fraction=$(jq -n "$load / 100")
		seed=$((SEED_BASE + load))
	fi
	rate=$(jq -n "$CAPACITY * $fraction")
	requests=$(jq -n "[($rate * $SECONDS_PER_RUN | ceil), 40] | max")
	config "$policy" >"$OUT/logs/$tag.toml"
	serve edge 1 11 10.0.2.2 10.9.1.1 "$tag"
	serve centre 2 12 10.0.3.2 10.9.2.1 "$tag"
	ip netns exec "$NS" "$INB" run --config "$OUT/logs/$tag.toml" --stats-interval 0 \
		--stats-json "$OUT/runs/$tag-appliance.json" -- \
		--no-huge -m 512 --no-pci -l 0,1 --file-prefix "$NS-$tag" \
		--vdev net_af_packet0,iface=dag --vdev net_af_packet1,iface=ded --vdev net_af_packet2,iface=dce \
		>"$OUT/logs/$tag-intellinode.log" 2>&1 &
	local app=$!
	PIDS+=("$app")
	wait_for "$OUT/logs/$tag-intellinode.log" "running \(for\|until\)" "$app" "intellinode ($tag)"
	# Let the first NODE_STATE reports arrive, as they would in a cluster
	# that has been up for a while.
	sleep 0.3
	printf 'eval: %-12s %-8s %6.1f requests/s, %4d requests ... ' "$policy" "$load" "$rate" "$requests"
	ip netns exec "$NS-agent" "$PKTGEN" agent --target 10.0.100.1:8000 --tlv ipv4 \
		--rate "$rate" --requests "$requests" --seed "$seed" \
		--short-fraction "$(plan .workload.short_fraction)" \
		--short-output-tokens "$(plan '"\(.workload.short_output_tokens[0])-\(.workload.short_output_tokens[1])"')" \
		--long-output-tokens "$(plan '"\(.workload.long_output_tokens[0])-\(.workload.long_output_tokens[1])"')" \
		--long-prompt-words "$(plan '"\(.workload.long_prompt_words[0])-\(.workload.long_prompt_words[1])"')" \
		--timeout-s "$TIMEOUT_S" --out "$OUT/runs/$tag.json" \
		>"$OUT/logs/$tag-agent.log" 2>&1 || die "pktgen agent failed ($tag, see $OUT/logs/$tag-agent.log)"
	jq -r 'def ms: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
		.classes | "short p99 TTFT \(.short.arrival_ttft_ms.p99 | ms) ms, long p99 \(.long.arrival_ttft_ms.p99 | ms) ms"' \
		"$OUT/runs/$tag.json"
	stop_all
	[[ -s $OUT/runs/$tag-appliance.json ]] || die "intellinode wrote no stats for $tag (see $OUT/logs/$tag-intellinode.log)"
	jq -e '.totals.balanced' "$OUT/runs/$tag-appliance.json" >/dev/null ||
		die "$tag: the appliance's rx != tx + drops (see $OUT/runs/$tag-appliance.json)"
	INDEX+=("$(jq -nc --arg p "$policy" --arg l "$load" --argjson r "$rate" --argjson n "$requests" \
		--arg a "runs/$tag.json" --arg s "runs/$tag-appliance.json" \
		'{policy: $p, load: $l, rate_rps: $r, requests: $n, agent: $a, appliance: $s}')")
}

say "cluster capacity $(printf '%.1f' "$CAPACITY") requests/s; $SECONDS_PER_RUN s of arrivals per run"
for policy in $POLICIES; do
	for load in $LOADS; do
		# The nearly idle reference is IntelliNode's own.
		[[ $load == unloaded && $policy != intellinode ]] && continue
		run_one "$policy" "$load"
	done
done
# now_ms: the wall clock in ms since the epoch (the agent's report has its
# start on the same clock).
now_ms() { date +%s%3N; }
# sleep_until_ms T: until the wall clock reaches T.
sleep_until_ms() {
	local left
	left=$(($1 - $(now_ms)))
	((left <= 0)) || sleep "$((left / 1000)).$(printf %03d $((left % 1000)))"
}

# The failure run: see the header.
run_failover() {
	local tag=failover t=.failover rate requests agent_pid started edge_pid inet_wire
	local kill_ms restart_ms cut_ms restore_ms
	rate=$(jq -n "$CAPACITY * $(plan "$t.load")")
	requests=$(jq -n "$rate * $(plan "$t.arrivals_s") | ceil")
	# Wires that report their path's state, for this run.
	PIDS=("${WIRES[@]}")
	stop_all
	WIRES=()
	# One peer per wire: each has its own sequence numbers (and replay
	# window at the appliance).
	local every=(--report-interval-ms "$(plan '.report_interval_ms | floor')")
	start_wire line line l --report-to "10.9.3.1:$CTL_PORT" --path 1 "${every[@]}" \
		--key-file "$OUT/logs/line.key" --key-id 13
	start_wire inet internet i --report-to "10.9.4.1:$CTL_PORT" --path 2 "${every[@]}" \
		--key-file "$OUT/logs/internet.key" --key-id 14
	inet_wire=${WIRES[1]}
	config intellinode >"$OUT/logs/$tag.toml"
	serve edge 1 11 10.0.2.2 10.9.1.1 "$tag"
	edge_pid=${PIDS[-1]}
	serve centre 2 12 10.0.3.2 10.9.2.1 "$tag"
	ip netns exec "$NS" "$INB" run --config "$OUT/logs/$tag.toml" --stats-interval 0 \
		--stats-json "$OUT/runs/$tag-appliance.json" -- \
		--no-huge -m 512 --no-pci -l 0,1 --file-prefix "$NS-$tag" \
		--vdev net_af_packet0,iface=dag --vdev net_af_packet1,iface=ded --vdev net_af_packet2,iface=dce \
		>"$OUT/logs/$tag-intellinode.log" 2>&1 &
	PIDS+=($!)
	wait_for "$OUT/logs/$tag-intellinode.log" "running \(for\|until\)" "$!" "intellinode ($tag)"
	# Everything the timeline needs, computed before it starts.
	serve_argv edge 1 11 10.0.2.2 10.9.1.1 "$tag-restarted"
	local restart_argv=("${SERVE_ARGV[@]}") steps=() step
	for step in kill_edge_s restart_edge_s cut_internet_s restore_internet_s; do
		steps+=("$(plan "$t.$step * 1000 | floor")")
	done
	sleep 0.3
	printf 'eval: %-12s %-8s %6.1f requests/s, %4d requests; edge killed at %s s, restarted at %s s; centre path cut at %s s, restored at %s s ... ' \
		intellinode failover "$rate" "$requests" "$(plan "$t.kill_edge_s")" "$(plan "$t.restart_edge_s")" \
		"$(plan "$t.cut_internet_s")" "$(plan "$t.restore_internet_s")"
	started=$(now_ms)
	ip netns exec "$NS-agent" "$PKTGEN" agent --target 10.0.100.1:8000 --tlv ipv4 \
		--rate "$rate" --requests "$requests" --seed $((SEED_BASE + 99)) \
		--short-fraction "$(plan .workload.short_fraction)" \
		--short-output-tokens "$(plan '"\(.workload.short_output_tokens[0])-\(.workload.short_output_tokens[1])"')" \
		--long-output-tokens "$(plan '"\(.workload.long_output_tokens[0])-\(.workload.long_output_tokens[1])"')" \
		--long-prompt-words "$(plan '"\(.workload.long_prompt_words[0])-\(.workload.long_prompt_words[1])"')" \
		--timeout-s "$TIMEOUT_S" --out "$OUT/runs/$tag.json" \
		>"$OUT/logs/$tag-agent.log" 2>&1 &
	agent_pid=$!
	sleep_until_ms $((started + steps[0]))
	kill_ms=$(now_ms)
	kill -KILL "$edge_pid"
	sleep_until_ms $((started + steps[1]))
	"${restart_argv[@]}" >"$OUT/logs/$tag-restarted-edge.log" 2>&1 &
	PIDS+=($!)
	sleep_until_ms $((started + steps[2]))
	cut_ms=$(now_ms)
	kill -USR1 "$inet_wire"
	sleep_until_ms $((started + steps[3]))
	restore_ms=$(now_ms)
	kill -USR2 "$inet_wire"
	# Reaped quietly: bash would report the SIGKILL on stderr.
	{ wait "$edge_pid"; } 2>/dev/null || true
	wait "$agent_pid" || die "pktgen agent failed ($tag, see $OUT/logs/$tag-agent.log)"
	jq -r '"\(.requests | map(select(.error == null)) | length) of \(.requests | length) answered"' "$OUT/runs/$tag.json"
	stop_all
	jq -e '.totals.balanced' "$OUT/runs/$tag-appliance.json" >/dev/null ||
		die "$tag: the appliance's rx != tx + drops (see $OUT/runs/$tag-appliance.json)"
	# The edge is back when the new process is up (it reports at once),
	# not when the script asked for it.
	restart_ms=$(jq -er '.started_unix_ms' "$OUT/logs/$tag-restarted-edge.json") ||
		die "the restarted edge wrote no start time (see $OUT/logs/$tag-restarted-edge.log)"
	jq -n --argjson k "$kill_ms" --argjson r "$restart_ms" --argjson c "$cut_ms" --argjson s "$restore_ms" \
		--argjson i "$(plan '.report_interval_ms')" --argjson o $((TIMEOUT_S * 1000)) \
		'{agent: "runs/failover.json", kill_edge_unix_ms: $k, restart_edge_unix_ms: $r,
		  cut_internet_unix_ms: $c, restore_internet_unix_ms: $s, report_interval_ms: $i, timeout_ms: $o}' \
		>"$OUT/runs/failover-timeline.json"
}
if ((FAILOVER)); then run_failover; fi

printf '%s\n' "${INDEX[@]}" | jq -s --argjson c "$CAPACITY" --argjson t $((TIMEOUT_S * 1000)) \
	'{capacity_rps: $c, timeout_ms: $t, runs: .}' >"$OUT/runs/index.json"
cleanup
trap - EXIT

((WRITE_REPORT)) || {
	say "runs in $OUT/runs/ (no report: EVAL_REPORT=0)"
	exit 0
}
say "simulating the same cluster (intellisim eval)"
"$SIM" eval --seed 1 --out "$OUT/sim.json" >"$OUT/logs/sim.log" 2>&1 || die "intellisim eval failed (see $OUT/logs/sim.log)"
say "the simulator at scale (intellisim scale: 1,000 nodes, 1,000,000 requests, node and path failures)"
"$SIM" scale --nodes 1000 --requests 1000000 --seed 1 --out "$OUT/scale.json" >"$OUT/logs/scale.log" 2>&1 ||
	die "intellisim scale failed (see $OUT/logs/scale.log)"
FAILOVER_SIM=()
if ((FAILOVER)); then
	say "the failure timeline, simulated (intellisim failover)"
	"$SIM" failover --seed 1 --out "$OUT/failover-sim.json" >"$OUT/logs/failover-sim.log" 2>&1 ||
		die "intellisim failover failed (see $OUT/logs/failover-sim.log)"
	FAILOVER_SIM=(--failover-sim "$OUT/failover-sim.json")
fi
say "the egress scheduler at a busy port (intellisim uplink)"
"$SIM" uplink --seed 1 --out "$OUT/uplink.json" >"$OUT/logs/uplink.log" 2>&1 ||
	die "intellisim uplink failed (see $OUT/logs/uplink.log)"
say "shared-prefix agents and the nodes' prefix caches, four policies, two clusters (intellisim prefix)"
# Simulated only: the emulated nodes have no prefix cache yet, so the
# summary's prefix_hit_rate, symmetric and simulated_prefix come from here.
"$SIM" prefix --seed 1 --out "$OUT/prefix-sim.json" >"$OUT/logs/prefix-sim.log" 2>&1 ||
	die "intellisim prefix failed (see $OUT/logs/prefix-sim.log)"
say "writing the report"
"$REPORT" report --dir "$OUT" --sim "$OUT/sim.json" --plan "$OUT/plan.json" --scale "$OUT/scale.json" \
	--uplink "$OUT/uplink.json" --sim-prefix "$OUT/prefix-sim.json" "${FAILOVER_SIM[@]}" \
	--wall-s $(($(date +%s) - STARTED)) || die "intellieval report failed"
say "done in $(($(date +%s) - STARTED)) s: $OUT/report.md, $OUT/summary.json, charts $OUT/*.svg|png"
