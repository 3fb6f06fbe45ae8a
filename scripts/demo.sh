#!/usr/bin/env bash
# make demo: AI agents call one chat service (VIP 10.0.100.1:8000) through
# IntelliNode, which steers every request, by its token features, to a small
# model at the edge or a large one in the centre, rewrites the addresses both
# ways (NAT), measures each answer and learns each instance's latency.
#
#   NAME-agent            NAME (intellinode, net_af_packet)        NAME-edge
#   pktgen agent ─veth─ port 0      port 1 ─veth─ pktgen serve 10.0.2.2  (small, near)
#                                   port 2 ─veth─ pktgen serve 10.0.3.2  (large, 15 ms away)
#                       collector ─ m1, m2 (management) ─ /metrics      NAME-centre
#
# The servers' load reaches the appliance as real inference servers' does:
# the compute-state collector (`collector`, on the appliance's host) scrapes
# each server's vLLM-style /metrics every 50 ms over the management links
# and pushes sealed NODE_STATE (and CAPABILITY, with /v1/models'
# max_model_len) to the appliance's control port.
#
# Phase 1, normal load: a Poisson mix of short control commands and long
# prompts. Interactive requests should go to the edge (lowest predicted time
# to first token), bulk ones to the centre (lowest predicted completion).
# Phase 2, the edge server hangs (SIGSTOP): its /metrics stops answering, the
# collector reports the node down at its first failed scrape
# (docs/wire-format.md §3.7), and new short requests should all go to the
# centre.
#
# Needs root (network namespaces) and jq, ip, ethtool. The topology is that
# of scripts/steer-topology.sh, the config examples/steer.toml plus a
# [control] section. Outputs go to target/demo/. The plain pcap forwarding
# demo is `make demo-forward` (scripts/demo-forward.sh).
#
# Environment: INTELLINODE_BIN, PKTGEN_BIN, COLLECTOR_BIN override the
# binaries' paths.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PATH:/usr/sbin:/sbin

INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
COLLECTOR=${COLLECTOR_BIN:-target/release/collector}
OUT=target/demo
NS="idemo$$"
PREFIX="demo-$$"
CTL_ADDR=127.0.0.1:7470 # inside $NS: its own loopback, no clash with others
PHASE1_REQUESTS=40
PHASE2_REQUESTS=10
VENV_PY=target/venv/bin/python

say() { printf 'demo: %s\n' "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
preflight demo "$INB" "$PKTGEN" "$COLLECTOR"
[[ -x $VENV_PY ]] || die "no $VENV_PY: run make pyenv (the OpenAI SDK, for the requests without a TLV)"
VENV_PY=$PWD/$VENV_PY # not realpath: the venv is its symlinked interpreter
INB=$(realpath "$INB")
PKTGEN=$(realpath "$PKTGEN")
COLLECTOR=$(realpath "$COLLECTOR")

mkdir -p "$OUT"
rm -f "$OUT"/{orch.key,collector.key,steer.toml,collector.toml,collector.json,collector.log} \
	"$OUT"/{stats.json,phase1.json,phase2.json,phase1-stats.json} \
	"$OUT"/{sdk-before,sdk-short,sdk-after}-stats.json "$OUT"/sdk-{short,long}.json \
	"$OUT"/{edge,centre}.json "$OUT"/{intellinode,edge,centre}.log

# --- set-up and a clean-up that always runs ---------------------------------
PIDS=()
cleanup() {
	stop_pids "${PIDS[@]}"
	PIDS=()
	bash scripts/steer-topology.sh down "$NS" || true
	rm -rf "/var/run/dpdk/$PREFIX" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Background processes are started with `ip netns exec` directly (not
# through a function, which would fork a subshell) so that $! is their pid.
in_ns() { # SIDE ('' for the appliance) COMMAND...
	local ns=$NS${1:+-$1}
	shift
	ip netns exec "$ns" "$@"
}
ctl() { in_ns '' "$INB" ctl --server "$CTL_ADDR" --key-file "$OUT/orch.key" --key-id 1 "$@"; }
agent() { # OUT.json ARGS...
	local out=$1
	shift
	in_ns agent "$PKTGEN" agent --target 10.0.100.1:8000 --tlv ipv4 --timeout-s 20 --out "$out" "$@" \
		>/dev/null || die "pktgen agent failed (see $out)"
}

say "building the topology (namespaces $NS, $NS-agent, $NS-edge, $NS-centre)"
bash scripts/steer-topology.sh up "$NS" || die "could not build the topology"

"$INB" ctl keygen "$OUT/orch.key" >/dev/null
"$INB" ctl keygen "$OUT/collector.key" >/dev/null
{
	cat examples/steer.toml
	cat <<EOF

[control]
listen = "$CTL_ADDR"

[[control.peers]]
id = 1
name = "orchestrator"
key_file = "$(realpath "$OUT/orch.key")"
roles = ["query"]

[[control.peers]]
id = 2
name = "collector"
key_file = "$(realpath "$OUT/collector.key")"
roles = ["state", "capability"]
nodes = [1, 2]
EOF
} >"$OUT/steer.toml"

# The collector: each server's metrics over its management link (10.9.1.2,
# 10.9.2.2); the capabilities as examples/steer.toml configures them, with
# the context length from /v1/models (the servers announce the same).
cat >"$OUT/collector.toml" <<EOF
interval_ms = 50
timeout_ms = 200
key_file = "$(realpath "$OUT/collector.key")"
key_id = 2
appliances = ["$CTL_ADDR"]

[[instances]]
node = 1
metrics_url = "http://10.9.1.2:8000/metrics"
concurrency = 16
[instances.capability]
class = "edge"
accelerator = "emulated"
tasks = ["immediate_control", "chat", "code_generation", "summarisation", "complex_reasoning"]
prefill_tps = 2000.0
decode_tps = 200.0

[[instances]]
node = 2
metrics_url = "http://10.9.2.2:8000/metrics"
concurrency = 32
[instances.capability]
class = "centre"
accelerator = "emulated"
tasks = ["immediate_control", "chat", "code_generation", "summarisation", "complex_reasoning"]
prefill_tps = 20000.0
decode_tps = 2000.0
EOF

say "starting the edge (small model, near) and centre (large model, 15±3 ms away) servers"
# Listening on every address: requests arrive on 10.0.2.2 through the
# appliance, scrapes on the management link.
ip netns exec "$NS-edge" "$PKTGEN" serve --listen 0.0.0.0:8000 --name edge --prefill-tps 2000 --decode-tps 200 \
	--base-ttft-ms 3 --concurrency 16 --max-model-len 8192 --duration-s 120 --stats-json "$OUT/edge.json" \
	>"$OUT/edge.log" 2>&1 &
EDGE=$!
PIDS+=("$EDGE")
wait_for "$OUT/edge.log" "listening on" "$!" "pktgen serve (edge)"
ip netns exec "$NS-centre" "$PKTGEN" serve --listen 0.0.0.0:8000 --name centre --prefill-tps 20000 --decode-tps 2000 \
	--base-ttft-ms 8 --concurrency 32 --max-model-len 131072 --delay-ms 15 --jitter-ms 3 --duration-s 120 \
	--stats-json "$OUT/centre.json" >"$OUT/centre.log" 2>&1 &
PIDS+=($!)
wait_for "$OUT/centre.log" "listening on" "$!" "pktgen serve (centre)"

say "starting intellinode (examples/steer.toml + [control], af_packet on dag/ded/dce)"
ip netns exec "$NS" "$INB" run --config "$OUT/steer.toml" --duration 120 --stats-interval 0 \
	--stats-json "$OUT/stats.json" -- \
	--no-huge -m 512 --no-pci -l 0,1 --file-prefix "$PREFIX" \
	--vdev net_af_packet0,iface=dag --vdev net_af_packet1,iface=ded --vdev net_af_packet2,iface=dce \
	>"$OUT/intellinode.log" 2>&1 &
APP=$!
PIDS+=("$APP")
wait_for "$OUT/intellinode.log" "running \(for\|until\)" "$APP" "intellinode"

say "starting the collector (scrapes both servers every 50 ms, pushes NODE_STATE and CAPABILITY)"
ip netns exec "$NS" "$COLLECTOR" --config "$OUT/collector.toml" --stats-json "$OUT/collector.json" \
	>"$OUT/collector.log" 2>&1 &
COLL=$!
PIDS+=("$COLL")
wait_for "$OUT/collector.log" "collector: scraping" "$COLL" "collector"
# node_field NODE FIELD: a field of the node's state as the appliance holds it.
node_field() {
	ctl --timeout-ms 2000 --json query state 2>/dev/null |
		jq -r --argjson n "$1" ".nodes[] | select(.id == \$n) | .$2 // empty" 2>/dev/null || true
}
# Both nodes' state has come through the collector before any request.
for _ in $(seq 100); do
	[[ -n $(node_field 1 queue_len) && -n $(node_field 2 queue_len) ]] && break
	sleep 0.1
done
[[ -n $(node_field 1 queue_len) && -n $(node_field 2 queue_len) ]] ||
	die "no node state from the collector within 10 s (see $OUT/collector.log)"

# --- the two phases ----------------------------------------------------------
say "phase 1, normal load: $PHASE1_REQUESTS requests, Poisson 15/s, 70% short control commands"
agent "$OUT/phase1.json" --requests "$PHASE1_REQUESTS" --rate 15 --short-fraction 0.7 --seed 42
ctl --timeout-ms 5000 --json query stats >"$OUT/phase1-stats.json" || die "intellinode ctl query stats failed"
jq -e '.steer.chosen | type == "object"' "$OUT/phase1-stats.json" >/dev/null 2>&1 ||
	die "$OUT/phase1-stats.json has no .steer.chosen"

# The official OpenAI SDK without a TLV: decided on the whole HTTP request
# by delayed binding (the appliance answers the handshake, reads the
# request, then connects to the chosen instance).
sdk() { # OUT.json PROMPT
	in_ns agent "$VENV_PY" tests/python/sdk_agent.py --base-url http://10.0.100.1:8000/v1 \
		--max-tokens 16 --prompt "$2" >"$1" || die "the OpenAI SDK request failed (see $1)"
}
long_prompt() {
	printf 'Write a Rust function that parses the log format of the program below and returns the error lines grouped by module.\n\n'
	for i in $(seq 300); do
		printf 'fn handler_%d(req: &Request) -> Result<Response, Error> { log::info!("module_%d got {:?}", req.id); Ok(Response::new()) }\n' "$i" "$i"
	done
}
say "phase 1b: the OpenAI SDK without a TLV, a short command and a long code prompt"
ctl --timeout-ms 5000 --json query stats >"$OUT/sdk-before-stats.json" || die "intellinode ctl query stats failed"
sdk "$OUT/sdk-short.json" "turn on the light in the kitchen"
ctl --timeout-ms 5000 --json query stats >"$OUT/sdk-short-stats.json" || die "intellinode ctl query stats failed"
sdk "$OUT/sdk-long.json" "$(long_prompt)"
ctl --timeout-ms 5000 --json query stats >"$OUT/sdk-after-stats.json" || die "intellinode ctl query stats failed"

say "phase 2, the edge server hangs (SIGSTOP): its /metrics stops answering"
kill -STOP "$EDGE"
hung=$(date +%s%N)
down_ms=-1
for _ in $(seq 100); do
	if [[ $(node_field 1 queue_len) == 1000000 ]]; then
		down_ms=$((($(date +%s%N) - hung) / 1000000))
		break
	fi
	sleep 0.05
done
say "phase 2: the collector reported the edge down after $down_ms ms; $PHASE2_REQUESTS short requests"
agent "$OUT/phase2.json" --requests "$PHASE2_REQUESTS" --interval-ms 50 --short-fraction 1 --seed 43
kill -CONT "$EDGE"

say "stopping the collector, intellinode and the servers"
stop_pids "$COLL"
kill -INT "$APP" 2>/dev/null || true
rc=0
wait "$APP" || rc=$?
cleanup
((rc == 0)) || die "intellinode exited with status $rc (see $OUT/intellinode.log)"
[[ -s $OUT/stats.json ]] || die "intellinode wrote no $OUT/stats.json"

# --- the result, from the appliance's stats and the agent's reports -----------
S=$OUT/stats.json
P1=$OUT/phase1-stats.json
echo
say "phase 1: where new flows went, per traffic class, and why"
jq -r '.steer as $s
	| ($s.chosen | to_entries | map(.key as $i | .value | to_entries[]
		| select(.key != "total" and .value > 0) | {class: .key, inst: $i, n: .value})
		| group_by(.class)[]
		| "  \(.[0].class | . + " " * (20 - length)) "
		  + (map("\(.inst) \(.n)") | join(", "))
		  + (if .[0].class == "interactive" then "   (lowest predicted TTFT)"
		     else "   (lowest predicted completion)" end)),
	  "  reasons: " + ($s.reasons | to_entries | map("\(.key) \(.value)") | join(", "))' "$P1"

echo
say "latency, predicted by the appliance vs observed (mean ms, phases 1+2)"
printf '  %-20s %9s %9s %12s %12s %9s\n' class "pred TTFT" "obs TTFT" "pred compl." "obs compl." measured
jq -r '.steer.latency | to_entries[] | select(.value.measured > 0)
	| [.key, .value.predicted_ttft_ms, .value.observed_ttft_ms, .value.predicted_completion_ms,
	   .value.observed_completion_ms, .value.measured]
	| @tsv' "$S" | while IFS=$'\t' read -r c pt ot pc oc n; do
	printf '  %-20s %9.1f %9.1f %12.1f %12.1f %9s\n' "$c" "$pt" "$ot" "$pc" "$oc" "$n"
done
say "phase 1, as the agent measured it (ms)"
printf '  %-20s %5s %9s %9s %12s %12s\n' "agent class" n "TTFT p50" "TTFT p99" "compl. p50" "compl. p99"
jq -r '.classes | to_entries[] | select(.value.ok > 0)
	| [.key, .value.ok, .value.ttft_ms.p50, .value.ttft_ms.p99, .value.completion_ms.p50, .value.completion_ms.p99]
	| @tsv' "$OUT/phase1.json" | while IFS=$'\t' read -r c n a b d e; do
	printf '  %-20s %5s %9.1f %9.1f %12.1f %12.1f\n' "$c" "$n" "$a" "$b" "$d" "$e"
done

# Phase 2: the difference in chosen totals between the end and phase 1.
delta() { jq -n --slurpfile a "$OUT/sdk-after-stats.json" --slurpfile b "$S" \
	"(\$b[0].steer.chosen[\"$1\"].total // 0) - (\$a[0].steer.chosen[\"$1\"].total // 0)"; }
p2_centre=$(delta centre-large)
p2_edge=$(delta edge-small)
overloaded=$(jq '.steer.rejected_candidates.overloaded // 0' "$S")
echo
say "phase 2, the edge hung and reported down by the collector: $PHASE2_REQUESTS short requests"
printf '  centre-large %s, edge-small %s; the edge was rejected as overloaded %s times\n' \
	"$p2_centre" "$p2_edge" "$overloaded"
jq -r '.instances[] | "  collector, node \(.node) (\(.server // "-")): \(.scrapes_ok) scrapes, \(.node_states) NODE_STATE pushed, down \(.went_down) time(s)"' \
	"$OUT/collector.json" 2>/dev/null || true

echo
say "latency models learnt per instance"
jq -r '.steer.models | to_entries[]
	| "  \(.key | . + " " * (14 - length)) \(.value.observations) observations, TTFT MAE \((.value.ttft_mae_us // 0) / 1000 * 100 | round / 100) ms, bias \((.value.ttft_bias_us // 0) / 1000 * 100 | round / 100) ms"' "$S"
jq -r '.steer.decision_ns | "  steering decision: p50 \(.p50) ns, p99 \(.p99) ns (\(.samples) decisions, each with cold caches on a core shared with the kernel; make bench measures the warm cost)"' "$S"

# --- verdict -----------------------------------------------------------------
requests=$((PHASE1_REQUESTS + PHASE2_REQUESTS))
failed=$(jq -s '[.[].requests[] | select(.error != null)] | length' "$OUT/phase1.json" "$OUT/phase2.json")
sent=$(jq -s '[.[].requests[]] | length' "$OUT/phase1.json" "$OUT/phase2.json")
# Phase-1 flows that went the wrong way: interactive not on the edge, bulk
# not on the centre (and how many of each class there were).
read -r wrong interactive bulk < <(jq -r '.steer.chosen as $c
	| [($c | to_entries[] | .key as $i | .value | to_entries[]
		| select(.key != "total" and .value > 0)
		| select((.key == "interactive") != ($i == "edge-small")) | .value)] | add // 0
	| [., ($c["edge-small"].interactive // 0), ([$c["centre-large"] | to_entries[]
		| select(.key | startswith("bulk_")) | .value] | add // 0)] | @tsv' "$P1")
measured=$(jq '.steer.flows.measured' "$S")
# One TLV-less SDK request per class: new decisions between two snapshots.
chosen() { # BEFORE AFTER INSTANCE CLASS
	jq -n --slurpfile a "$1" --slurpfile b "$2" \
		"(\$b[0].steer.chosen[\"$3\"][\"$4\"] // 0) - (\$a[0].steer.chosen[\"$3\"][\"$4\"] // 0)"
}
sdk_short=$(chosen "$OUT/sdk-before-stats.json" "$OUT/sdk-short-stats.json" edge-small interactive)
sdk_long=$(chosen "$OUT/sdk-short-stats.json" "$OUT/sdk-after-stats.json" centre-large bulk_code)
spliced=$(jq '.steer.splice.spliced' "$S")
# The servers' prefix-cache counters (PREFIX_CACHE in the collector's
# NODE_STATE) applied by the steering engines, per instance: the fewest.
prefix_reports=$(jq '[.steer.models[].prefix_cache_reports // 0] | min // 0' "$S")
rx=$(jq '.totals.rx_packets' "$S")
generated=$(jq '.totals.generated_packets' "$S")
tx=$(jq '.totals.tx_packets' "$S")
drops=$(jq '.totals.drops_total' "$S")
balanced=$(jq -r '.totals.balanced' "$S")

ok=1
verdict() { # OK? LABEL DETAIL
	local mark=PASS
	if [[ $1 != 1 ]]; then
		mark=FAIL
		ok=0
	fi
	printf '  [%s] %-44s %s\n' "$mark" "$2" "$3"
}
echo
say "verdict"
verdict $((sent == requests && failed == 0)) "every agent request answered (NAT both ways)" \
	"$((sent - failed)) of $requests"
verdict $((wrong == 0 && interactive > 0 && bulk > 0)) "phase 1: interactive->edge, bulk->centre" \
	"$interactive interactive on edge-small, $bulk bulk on centre-large, $wrong elsewhere"
verdict $((down_ms >= 0)) "phase 2: the collector reported the edge down" \
	"after $down_ms ms (its first failed scrape waits timeout_ms, 200)"
verdict $((p2_centre == PHASE2_REQUESTS && p2_edge == 0)) "phase 2: all went to centre-large" \
	"$p2_centre of $PHASE2_REQUESTS (edge-small $p2_edge)"
verdict $((sdk_short == 1)) "SDK, no TLV: short command -> edge" \
	"interactive on edge-small: $sdk_short (spliced connections: $spliced)"
verdict $((sdk_long == 1)) "SDK, no TLV: long code prompt -> centre" "bulk_code on centre-large: $sdk_long"
verdict $((measured >= requests + 2)) "every answer was measured" "$measured of $requests + 2 SDK requests"
verdict $((prefix_reports > 0)) "prefix-cache counters reached the decision" \
	"at least $prefix_reports collector reports applied per instance"
verdict "$([[ $balanced == true ]] && echo 1 || echo 0)" "rx + generated = tx + drops" \
	"$rx + $generated = $tx + $drops"
echo
((ok)) || die "the demo's checks failed (stats: $S, agent reports: $OUT/phase{1,2}.json)"
say "all checks passed; output in $OUT/"
