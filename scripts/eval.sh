#!/usr/bin/env bash
# make eval: the real appliance between agents and an emulated inference
# cluster, four steering policies at three loads on two clusters, and a
# report.
#
#   NAME-agent           NAME (intellinode)        NAME-line          NAME-edge
#   pktgen agent ─veth─ port 0    port 1 ─veth─ [pktgen wire] ─veth─ pktgen serve (node 1)
#                                 port 2 ─veth─ [pktgen wire] ─veth─ pktgen serve (node 2)
#                                              NAME-inet          NAME-centre
#   collector (in NAME) ──management veths──► both nodes' /metrics, /v1/models
#             └──► the appliance's control plane (NODE_STATE, CAPABILITY)
#
# The clusters (node rates, batch slots, KV capacity, path delay, jitter
# and loss, the request mix with its shared-prefix agents) and their
# capacities come from `intellisim plan`, the same description the
# simulator runs (`intellisim prefix`), so emulation and simulation share
# one source:
# * asymmetric: node 1 small and near behind a low-delay line, node 2
#   large and far behind a jittery, lossy internet path;
# * symmetric: both nodes identical behind identical clean paths, where
#   the network cannot help (the same namespaces, the wires re-set).
# For each policy (FIFO + round robin, least queue, llm_d, IntelliNode)
# and load (asymmetric: 50, 80, 95% of capacity, plus a nearly idle run
# for IntelliNode; symmetric: the plan's load) the nodes (with empty
# prefix caches), the collector and the appliance start fresh, the agent
# sends the same seeded open-loop Poisson load (short control commands,
# long prompts and shared-prefix agent calls in multi-turn sessions), and
# everything stops by itself. The nodes' state reaches the appliance
# only through the collector, which scrapes their vLLM-style /metrics
# (and /v1/models for CAPABILITY) as it would real vLLM servers. Then
# `intellisim prefix` simulates the same runs, `intellisim scale` runs the
# decision at 1,000 nodes with failures, `intellisim uplink` puts the
# cluster behind one busy egress port, and `intellieval report` writes
# target/eval/{summary.json,report.md,*.svg,*.png}.
#
# The failure run (the plan's .failover, without agents, as `intellisim
# failover` has it): IntelliNode alone at one load, with both wires
# reporting PATH_STATE; during the arrivals the edge node is killed
# (SIGKILL) and restarted, then the centre's wire is cut (SIGUSR1: a black
# hole) and restored (SIGUSR2). The times of those actions go to
# runs/failover-timeline.json, and `intellisim failover` plays the same
# timeline; the report measures both alike.
#
# Environment:
#   EVAL_OUT        output directory (target/eval)
#   EVAL_POLICIES   policies to run ("fifo least_queue llm_d intellinode")
#   EVAL_LOADS      asymmetric loads to run ("unloaded 50 80 95")
#   EVAL_SYMMETRIC  0 to skip the symmetric cluster (1)
#   EVAL_SECONDS    seconds of arrivals per run (15)
#   EVAL_FAILOVER   0 to skip the failure run (1)
#   EVAL_REPORT     0 to skip the simulation and the report (the test's
#                   small topology only wants the runs)
#   INTELLINODE_BIN, PKTGEN_BIN, COLLECTOR_BIN, INTELLISIM_BIN, INTELLIEVAL_BIN
# Needs root (network namespaces), jq, ip, ethtool.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PATH:/usr/sbin:/sbin

INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
COLLECTOR=${COLLECTOR_BIN:-target/release/collector}
SIM=${INTELLISIM_BIN:-target/release/intellisim}
REPORT=${INTELLIEVAL_BIN:-target/release/intellieval}
OUT=${EVAL_OUT:-target/eval}
POLICIES=${EVAL_POLICIES:-fifo least_queue llm_d intellinode}
LOADS=${EVAL_LOADS:-unloaded 50 80 95}
SECONDS_PER_RUN=${EVAL_SECONDS:-15}
WRITE_REPORT=${EVAL_REPORT:-1}
FAILOVER=${EVAL_FAILOVER:-1}
SYMMETRIC=${EVAL_SYMMETRIC:-1}
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
preflight eval "$INB" "$PKTGEN" "$COLLECTOR" "$SIM" "$REPORT"
INB=$(realpath "$INB")
PKTGEN=$(realpath "$PKTGEN")
COLLECTOR=$(realpath "$COLLECTOR")
for p in $POLICIES; do
	case $p in fifo | least_queue | llm_d | intellinode) ;; *) die "EVAL_POLICIES: unknown policy $p" ;; esac
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
SYM_CAPACITY=$(plan .symmetric.capacity_rps)
SYM_LOAD=$(plan '.symmetric.load * 100 | round')

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

# The paths: one user-space line each, up for the whole asymmetric
# cluster, then re-set for the symmetric one. PATH is the plan's path
# object (.paths.line, .symmetric.path, ...).
start_wire() { # NAME PATH IFACE_PREFIX [REPORT_ARGS...]
	local name=$1 path=$2 ifc=$3 log=$OUT/logs/wire-$1.log
	shift 3
	ip netns exec "$NS-$name" "$PKTGEN" wire --a "${ifc}a" --b "${ifc}b" \
		--delay-ms "$(plan "$path.one_way_ms")" --jitter-ms "$(plan "$path.jitter_ms")" \
		--loss "$(plan "$path.loss")" --seed 7 --stats-json "$OUT/logs/wire-$name.json" \
		"$@" >"$log" 2>&1 &
	WIRES+=($!)
	wait_for "$log" bridging "$!" "pktgen wire ($name)"
}
stop_wires() {
	PIDS=("${WIRES[@]}")
	stop_all
	WIRES=()
}
start_wire line .paths.line l
start_wire inet .paths.internet i

"$INB" ctl keygen "$OUT/logs/edge.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/centre.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/line.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/internet.key" >/dev/null
"$INB" ctl keygen "$OUT/logs/collector.key" >/dev/null

# Both nodes announce the simulator's longest context, so a long agent
# conversation fits on either.
MAX_CONTEXT=131072
TASKS='["immediate_control", "chat", "code_generation", "summarisation", "complex_reasoning"]'

# cluster_objects CLUSTER: the plan's objects for node 1 and node 2, path
# 1 and path 2, and each node's model class.
cluster_objects() {
	case $1 in
	asymmetric)
		NODE1=.nodes.edge NODE2=.nodes.centre PATH1=.paths.line PATH2=.paths.internet
		CLASS1=small_edge CLASS2=large_centre
		;;
	symmetric)
		NODE1=.symmetric.node NODE2=.symmetric.node PATH1=.symmetric.path PATH2=.symmetric.path
		CLASS1=large_centre CLASS2=large_centre
		;;
	esac
}

# path_config ID NAME PORT MAC PATH: a [[steer.paths]] table, its priors
# from the plan's path object PATH.
path_config() {
	cat <<EOF

[[steer.paths]]
id = $1
name = "$2"
egress_port = $3
next_hop_mac = "$4"
latency_us = $(plan "$5.one_way_ms * 1000")
jitter_us = $(plan "$5.jitter_ms * 1000")
EOF
}

# instance_config NAME NODE_ID IP PATH_ID MODEL_CLASS NODE: a
# [[steer.instances]] table, its rates from the plan's node object NODE.
instance_config() {
	cat <<EOF

[[steer.instances]]
name = "$1"
node = $2
ip = "$3"
paths = [$4]
model_class = "$5"
task_types = $TASKS
max_context_tokens = $MAX_CONTEXT
prefill_tokens_per_s = $(plan "$6.prefill_tps")
decode_tokens_per_s = $(plan "$6.decode_tps")
concurrency = $(plan "$6.concurrency")
base_ttft_us = $(plan "$6.base_ttft_ms * 1000")
EOF
}

# config POLICY CLUSTER: the appliance's configuration for a policy on a
# cluster.
config() {
	local policy strict
	case $1 in
	fifo) policy=round_robin strict=false ;;
	least_queue) policy=least_queue strict=false ;;
	llm_d) policy=llm_d strict=false ;;
	intellinode) policy=token_aware strict=true ;;
	esac
	cluster_objects "$2"
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
	path_config 1 "path to node 1" 1 02:00:00:00:02:02 "$PATH1"
	path_config 2 "path to node 2" 2 02:00:00:00:03:02 "$PATH2"
	instance_config edge 1 10.0.2.2 1 "$CLASS1" "$NODE1"
	instance_config centre 2 10.0.3.2 2 "$CLASS2" "$NODE2"
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

[[control.peers]]
id = 15
name = "collector"
key_file = "$OUT/logs/collector.key"
roles = ["state", "capability"]
EOF
}

# collector_config CLUSTER: the collector's configuration: both nodes'
# vLLM-style /metrics over the management links, every report interval
# of the plan (the simulator's), and CAPABILITY with max_context from
# /v1/models.
collector_config() {
	local n node class
	cluster_objects "$1"
	cat <<EOF
# Generated by scripts/eval.sh.
interval_ms = $(plan '.report_interval_ms | floor')
key_file = "$OUT/logs/collector.key"
key_id = 15
appliances = ["127.0.0.1:$CTL_PORT"]
EOF
	for n in 1 2; do
		if ((n == 1)); then node=$NODE1 class=$CLASS1; else node=$NODE2 class=$CLASS2; fi
		cat <<EOF

[[instances]]
node = $n
metrics_url = "http://10.9.$n.2:8000/metrics"
concurrency = $(plan "$node.concurrency")

[instances.capability]
class = "$([[ $class == small_edge ]] && echo edge || echo centre)"
accelerator = "emulated"
tasks = $TASKS
prefill_tps = $(plan "$node.prefill_tps")
decode_tps = $(plan "$node.decode_tps")
EOF
	done
}

# collector TAG CLUSTER: starts the collector in the appliance's
# namespace and waits until it runs.
collector() {
	local log=$OUT/logs/$1-collector.log
	collector_config "$2" >"$OUT/logs/$1-collector.toml"
	ip netns exec "$NS" "$COLLECTOR" --config "$OUT/logs/$1-collector.toml" \
		--stats-json "$OUT/logs/$1-collector.json" >"$log" 2>&1 &
	PIDS+=($!)
	wait_for "$log" "collector: scraping" "$!" "collector ($1)"
}

# serve_argv NAME(edge|centre) NODE TAG: the node's command line in
# SERVE_ARGV (built ahead, so a restart is quick), its model from the
# plan's node object NODE. It listens on every address: the agents'
# requests arrive on its data address, the collector's scrapes on its
# management one. It pushes nothing itself: the collector reports it.
serve_argv() {
	local n=$2
	SERVE_ARGV=(ip netns exec "$NS-$1" "$PKTGEN" serve --listen "0.0.0.0:8000" --name "$1"
		--prefill-tps "$(plan "$n.prefill_tps")" --decode-tps "$(plan "$n.decode_tps")"
		--base-ttft-ms "$(plan "$n.base_ttft_ms")" --concurrency "$(plan "$n.concurrency")"
		--kv-tokens "$(plan "$n.kv_tokens")" --max-model-len "$MAX_CONTEXT"
		--duration-s $((SECONDS_PER_RUN + TIMEOUT_S + 30)) --stats-json "$OUT/logs/$3-$1.json")
}

serve() { # as serve_argv; starts the node and waits until it listens
	local log=$OUT/logs/$3-$1.log
	serve_argv "$@"
	"${SERVE_ARGV[@]}" >"$log" 2>&1 &
	PIDS+=($!)
	wait_for "$log" "listening on" "$!" "pktgen serve ($1)"
}

# plan_range KEY: the plan's [lo, hi] at KEY as pktgen's LO-HI.
plan_range() { plan "\"\($1[0])-\($1[1])\""; }

# agent_args AGENTS: the agent's workload options in AGENT_ARGV: short and
# long requests as the plan's workload has them and, when AGENTS is 1,
# its shared-prefix agents.
agent_args() {
	local w=.workload a=.workload.agents
	AGENT_ARGV=(--short-fraction "$(plan $w.short_fraction)"
		--short-output-tokens "$(plan_range $w.short_output_tokens)"
		--long-output-tokens "$(plan_range $w.long_output_tokens)"
		--long-prompt-words "$(plan_range $w.long_prompt_words)")
	if (($1)); then
		AGENT_ARGV+=(--agent-fraction "$(plan $w.agent_fraction)" --personas "$(plan $a.personas)"
			--agent-prefix-tokens "$(plan_range $a.prefix_tokens)"
			--agent-user-tokens "$(plan_range $a.user_tokens)"
			--agent-output-tokens "$(plan_range $a.output_tokens)"
			--agent-turns "$(plan_range $a.turns)" --agent-sessions "$(plan $a.open_sessions)")
		[[ $(plan $a.name_prefix) == true ]] || AGENT_ARGV+=(--no-prefix-names)
	fi
}

INDEX=()
SEED_BASE=1000
run_one() { # CLUSTER POLICY LOAD
	local cluster=$1 policy=$2 load=$3 tag rate requests seed fraction capacity
	if [[ $cluster == symmetric ]]; then
		tag=symmetric-$policy-$load capacity=$SYM_CAPACITY
	else
		tag=$policy-$load capacity=$CAPACITY
	fi
	if [[ $load == unloaded ]]; then
		fraction=$UNLOADED_FRACTION
		seed=$SEED_BASE
	else
		fraction=$(jq -n "$load / 100")
		seed=$((SEED_BASE + load))
	fi
	rate=$(jq -n "$capacity * $fraction")
	requests=$(jq -n "[($rate * $SECONDS_PER_RUN | ceil), 40] | max")
	cluster_objects "$cluster"
	config "$policy" "$cluster" >"$OUT/logs/$tag.toml"
	serve edge "$NODE1" "$tag"
	serve centre "$NODE2" "$tag"
	ip netns exec "$NS" "$INB" run --config "$OUT/logs/$tag.toml" --stats-interval 0 \
		--stats-json "$OUT/runs/$tag-appliance.json" -- \
		--no-huge -m 512 --no-pci -l 0,1 --file-prefix "$NS-$tag" \
		--vdev net_af_packet0,iface=dag --vdev net_af_packet1,iface=ded --vdev net_af_packet2,iface=dce \
		>"$OUT/logs/$tag-intellinode.log" 2>&1 &
	local app=$!
	PIDS+=("$app")
	wait_for "$OUT/logs/$tag-intellinode.log" "running \(for\|until\)" "$app" "intellinode ($tag)"
	collector "$tag" "$cluster"
	# Let the first scrapes arrive, as they would in a cluster that has
	# been up for a while.
	sleep 0.3
	printf 'eval: %-10s %-11s %-8s %6.1f requests/s, %4d requests ... ' "$cluster" "$policy" "$load" "$rate" "$requests"
	agent_args 1
	ip netns exec "$NS-agent" "$PKTGEN" agent --target 10.0.100.1:8000 --tlv ipv4 \
		--rate "$rate" --requests "$requests" --seed "$seed" "${AGENT_ARGV[@]}" \
		--timeout-s "$TIMEOUT_S" --out "$OUT/runs/$tag.json" \
		>"$OUT/logs/$tag-agent.log" 2>&1 || die "pktgen agent failed ($tag, see $OUT/logs/$tag-agent.log)"
	stop_all
	[[ -s $OUT/runs/$tag-appliance.json ]] || die "intellinode wrote no stats for $tag (see $OUT/logs/$tag-intellinode.log)"
	jq -e '.totals.balanced' "$OUT/runs/$tag-appliance.json" >/dev/null ||
		die "$tag: the appliance's rx != tx + drops (see $OUT/runs/$tag-appliance.json)"
	local nodes=("logs/$tag-edge.json" "logs/$tag-centre.json")
	jq -r --slurpfile e "$OUT/${nodes[0]}" --slurpfile c "$OUT/${nodes[1]}" '
		def ms: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
		([$e[0], $c[0]] | map(.prefix_cache_hits) | add) as $h
		| ([$e[0], $c[0]] | map(.prefix_cache_queries) | add) as $q
		| .classes
		| "short p99 TTFT \(.short.arrival_ttft_ms.p99 | ms) ms, long p99 \(.long.arrival_ttft_ms.p99 | ms) ms, prefix hits \(if $q > 0 then ($h / $q * 1000 | round / 10 | tostring) + "%" else "-" end)"' \
		"$OUT/runs/$tag.json"
	INDEX+=("$(jq -nc --arg k "$cluster" --arg p "$policy" --arg l "$load" --argjson r "$rate" --argjson n "$requests" \
		--arg a "runs/$tag.json" --arg s "runs/$tag-appliance.json" --arg e "${nodes[0]}" --arg c "${nodes[1]}" \
		'{cluster: $k, policy: $p, load: $l, rate_rps: $r, requests: $n, agent: $a, appliance: $s, nodes: [$e, $c]}')")
}

say "asymmetric cluster: capacity $(printf '%.1f' "$CAPACITY") requests/s; $SECONDS_PER_RUN s of arrivals per run"
for policy in $POLICIES; do
	for load in $LOADS; do
		# The nearly idle reference is IntelliNode's own.
		[[ $load == unloaded && $policy != intellinode ]] && continue
		run_one asymmetric "$policy" "$load"
	done
done
if ((SYMMETRIC)); then
	say "symmetric cluster: capacity $(printf '%.1f' "$SYM_CAPACITY") requests/s, both paths like $(plan .symmetric.path.one_way_ms) ms one way"
	stop_wires
	start_wire line .symmetric.path l
	start_wire inet .symmetric.path i
	for policy in $POLICIES; do
		run_one symmetric "$policy" "$SYM_LOAD"
	done
	stop_wires
	start_wire line .paths.line l
	start_wire inet .paths.internet i
fi
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
	rate=$(jq -n "$(plan .failover_capacity_rps) * $(plan "$t.load")")
	requests=$(jq -n "$rate * $(plan "$t.arrivals_s") | ceil")
	# Wires that report their path's state, for this run.
	stop_wires
	# One peer per wire: each has its own sequence numbers (and replay
	# window at the appliance).
	local every=(--report-interval-ms "$(plan '.report_interval_ms | floor')")
	start_wire line .paths.line l --report-to "10.9.3.1:$CTL_PORT" --path 1 "${every[@]}" \
		--key-file "$OUT/logs/line.key" --key-id 13
	start_wire inet .paths.internet i --report-to "10.9.4.1:$CTL_PORT" --path 2 "${every[@]}" \
		--key-file "$OUT/logs/internet.key" --key-id 14
	inet_wire=${WIRES[1]}
	cluster_objects asymmetric
	config intellinode asymmetric >"$OUT/logs/$tag.toml"
	serve edge "$NODE1" "$tag"
	edge_pid=${PIDS[-1]}
	serve centre "$NODE2" "$tag"
	ip netns exec "$NS" "$INB" run --config "$OUT/logs/$tag.toml" --stats-interval 0 \
		--stats-json "$OUT/runs/$tag-appliance.json" -- \
		--no-huge -m 512 --no-pci -l 0,1 --file-prefix "$NS-$tag" \
		--vdev net_af_packet0,iface=dag --vdev net_af_packet1,iface=ded --vdev net_af_packet2,iface=dce \
		>"$OUT/logs/$tag-intellinode.log" 2>&1 &
	PIDS+=($!)
	wait_for "$OUT/logs/$tag-intellinode.log" "running \(for\|until\)" "$!" "intellinode ($tag)"
	collector "$tag" asymmetric
	# Everything the timeline needs, computed before it starts.
	serve_argv edge "$NODE1" "$tag-restarted"
	local restart_argv=("${SERVE_ARGV[@]}") steps=() step
	for step in kill_edge_s restart_edge_s cut_internet_s restore_internet_s; do
		steps+=("$(plan "$t.$step * 1000 | floor")")
	done
	sleep 0.3
	printf 'eval: %-12s %-8s %6.1f requests/s, %4d requests; edge killed at %s s, restarted at %s s; centre path cut at %s s, restored at %s s ... ' \
		intellinode failover "$rate" "$requests" "$(plan "$t.kill_edge_s")" "$(plan "$t.restart_edge_s")" \
		"$(plan "$t.cut_internet_s")" "$(plan "$t.restore_internet_s")"
	agent_args 0
	started=$(now_ms)
	ip netns exec "$NS-agent" "$PKTGEN" agent --target 10.0.100.1:8000 --tlv ipv4 \
		--rate "$rate" --requests "$requests" --seed $((SEED_BASE + 99)) "${AGENT_ARGV[@]}" \
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
	--argjson sc "$( ((SYMMETRIC)) && echo "$SYM_CAPACITY" || echo null)" \
	'{capacity_rps: $c, symmetric_capacity_rps: $sc, timeout_ms: $t, runs: .}' >"$OUT/runs/index.json"
cleanup
trap - EXIT

((WRITE_REPORT)) || {
	say "runs in $OUT/runs/ (no report: EVAL_REPORT=0)"
	exit 0
}
say "simulating the same clusters and workload (intellisim prefix: four policies, two clusters)"
"$SIM" prefix --seed 1 --out "$OUT/prefix-sim.json" >"$OUT/logs/prefix-sim.log" 2>&1 ||
	die "intellisim prefix failed (see $OUT/logs/prefix-sim.log)"
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
say "writing the report"
"$REPORT" report --dir "$OUT" --plan "$OUT/plan.json" --scale "$OUT/scale.json" \
	--uplink "$OUT/uplink.json" --sim-prefix "$OUT/prefix-sim.json" "${FAILOVER_SIM[@]}" \
	--wall-s $(($(date +%s) - STARTED)) || die "intellieval report failed"
say "done in $(($(date +%s) - STARTED)) s: $OUT/report.md, $OUT/summary.json, charts $OUT/*.svg|png"
