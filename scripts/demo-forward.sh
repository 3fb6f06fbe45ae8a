#!/usr/bin/env bash
# make demo-forward: push a realistic traffic mix through IntelliNode's plain
# forwarding pipeline and show, from its own stats, that every packet is
# accounted for and comes out unchanged. (This was `make demo` before the
# token-steering demo, scripts/demo.sh, took its place.)
#
#   mix.pcap --rx--> port 0 (net_pcap0) ==intellinode==> port 1 (net_pcap1) --tx--> out.pcap
#
# net_pcap needs an RX source on every port, so port 1 reads empty.pcap (a pcap
# global header and no packets: it simply never receives). Port 0 also gets a
# tx_pcap (reverse.pcap) so the reverse direction is visible rather than
# silently dropped (net_pcap without tx_pcap accepts and discards TX); it must
# stay empty. Outputs go to target/demo-forward/.
#
# Environment: INTELLINODE_BIN, PKTGEN_BIN override the binaries' paths.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

INB=${INTELLINODE_BIN:-target/release/intellinode}
PKTGEN=${PKTGEN_BIN:-target/release/pktgen}
OUT=target/demo-forward
PACKETS=200000
PREFIX="demo-$$"

say() { printf 'demo: %s\n' "$*"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

for bin in "$INB" "$PKTGEN"; do
	[[ -x $bin ]] || die "missing $bin (run 'make build' first)"
done
for tool in jq tcpdump sha256sum; do
	command -v "$tool" >/dev/null || die "$tool is required (run 'make deps')"
done

mkdir -p "$OUT"
rm -f "$OUT/out.pcap" "$OUT/reverse.pcap" "$OUT/stats.json"

say "generating $OUT/mix.pcap ($PACKETS packets, workload mix, seed 42)"
"$PKTGEN" write --workload mix --seed 42 --packets "$PACKETS" -o "$OUT/mix.pcap"
echo
"$PKTGEN" inspect "$OUT/mix.pcap"
echo

# 24-byte pcap global header: magic (microsecond, little-endian), version 2.4,
# thiszone 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet). No records.
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00' \
	>"$OUT/empty.pcap"

say "running intellinode for 4 s (port 0 <- mix.pcap, port 1 -> out.pcap)"
rc=0
timeout --signal=INT --kill-after=10 60 \
	"$INB" run --config examples/forward.toml --duration 4 --stats-interval 1 \
	--stats-json "$OUT/stats.json" -- \
	--no-huge -m 512 --no-pci --file-prefix "$PREFIX" -l 0,1 \
	--vdev "net_pcap0,rx_pcap=$OUT/mix.pcap,tx_pcap=$OUT/reverse.pcap" \
	--vdev "net_pcap1,rx_pcap=$OUT/empty.pcap,tx_pcap=$OUT/out.pcap" || rc=$?
# DPDK keeps a runtime directory per --file-prefix even with --no-huge.
rm -rf "/var/run/dpdk/$PREFIX" 2>/dev/null || true
((rc == 0)) || die "intellinode exited with status $rc"
[[ -s $OUT/stats.json ]] || die "intellinode wrote no $OUT/stats.json"
[[ -f $OUT/out.pcap ]] || die "no $OUT/out.pcap was written"

# --- verdict, computed from the stats JSON and the pcaps -------------------
S=$OUT/stats.json
jq -e '[.totals.rx_packets, .totals.tx_packets, .totals.drops_total] | all(type == "number")' \
	"$S" >/dev/null 2>&1 || die "$S lacks numeric .totals.rx_packets/tx_packets/drops_total"
rx=$(jq '.totals.rx_packets' "$S")
tx=$(jq '.totals.tx_packets' "$S")
drops=$(jq '.totals.drops_total' "$S")
# Drop reasons summed over ports, non-zero ones only, as "reason=N, ...".
reasons=$(jq -r '[.ports[].drops | to_entries[]] | group_by(.key)
	| map({k: .[0].key, v: (map(.value) | add)}) | map(select(.v > 0))
	| if length == 0 then "none" else map("\(.k)=\(.v)") | join(", ") end' "$S")

# A pcap tcpdump cannot read (e.g. truncated) must fail the checks, not
# abort the script: count -1, digest of a marker.
count_pkts() {
	local n
	if n=$(tcpdump -r "$1" -nn -q -t 2>/dev/null | wc -l); then echo "$n"; else echo -1; fi
}
# Timestamps differ between input and output, so compare what tcpdump prints
# per packet without them: the decoded one-liner plus the full hex dump of
# every captured byte (-xx includes the Ethernet header), in file order.
digest() { { tcpdump -r "$1" -nn -q -t -xx 2>/dev/null || echo "unreadable"; } | sha256sum | cut -d' ' -f1; }

out_pkts=$(count_pkts "$OUT/out.pcap")
rev_pkts=$(count_pkts "$OUT/reverse.pcap")
# Hash both files in parallel: ~2 s each for 200k packets.
digest "$OUT/mix.pcap" >"$OUT/.in.sha" &
in_pid=$!
out_sha=$(digest "$OUT/out.pcap")
wait "$in_pid"
in_sha=$(cat "$OUT/.in.sha")
rm -f "$OUT/.in.sha"

ok=1
verdict() { # OK? LABEL DETAIL
	local mark=PASS
	if [[ $1 != 1 ]]; then
		mark=FAIL
		ok=0
	fi
	printf '  [%s] %-36s %s\n' "$mark" "$2" "$3"
}
same=0
[[ $in_sha == "$out_sha" ]] && same=1

echo
say "verdict"
printf '  %-43s %s\n' "packets in (rx, all ports)" "$rx"
printf '  %-43s %s\n' "packets out (tx, all ports)" "$tx"
printf '  %-43s %s\n' "drops" "$drops ($reasons)"
verdict $((rx == PACKETS)) "every pcap packet was received" "$rx of $PACKETS"
verdict $((rx == tx + drops)) "rx = tx + drops" "$rx = $tx + $drops"
verdict $((out_pkts == tx)) "out.pcap holds what was sent" "$out_pkts packets"
verdict $((rev_pkts == 0)) "nothing flowed back to port 0" "$rev_pkts packets in reverse.pcap"
verdict "$same" "out.pcap == mix.pcap (bytes, order)" "sha256 ${out_sha:0:16}..."
echo
((ok)) || die "the demo's checks failed (stats: $S, output: $OUT/out.pcap)"
say "all checks passed; output in $OUT/"
