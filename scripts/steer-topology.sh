#!/usr/bin/env bash
# The token-steering topology in network namespaces, shared by `make demo`
# and the end-to-end test (tests/tests/steer_kernel.rs).
#
#   steer-topology.sh up NAME          create it
#   steer-topology.sh up NAME --wire   the same, with an emulated line in
#                                      front of each node (make eval)
#   steer-topology.sh down NAME        remove it (quietly, whatever exists)
#
#  NAME-agent          NAME (the appliance)                NAME-edge
#  ag 10.0.1.11 ─veth─ dag  port0       port1  ded ─veth─ ed 10.0.2.2
#                                       port2  dce ─veth─ ce 10.0.3.2
#                                                          NAME-centre
#
# Agents reach the VIP 10.0.100.1 through the appliance (a static
# neighbour: nothing answers ARP for a VIP); instances reach the agents the
# same way. The appliance runs inside NAME with net_af_packet on dag, ded
# and dce, so ports 0, 1 and 2 are the agents, the edge path and the centre
# path. Checksum offload is off on the hosts' veths: a kernel that leaves
# a partial checksum for the "hardware" would hand the appliance TCP
# segments whose checksum is not yet computed.
#
# Each node has a management link to the appliance's namespace, so its
# state (NODE_STATE, pushed by the node itself or by the collector scraping
# its /metrics) reaches the control plane out of band. With --wire (make
# eval), each node also sits behind a path namespace where `pktgen wire`
# bridges two veths and adds the path's delay, jitter and loss (this
# kernel has no tc netem), and each path namespace gets a management link
# too, for the wire's PATH_STATE reports:
#
#  NAME ded ─veth─ la [NAME-line: pktgen wire] lb ─veth─ ed NAME-edge
#  NAME dce ─veth─ ia [NAME-inet: pktgen wire] ib ─veth─ ce NAME-centre
#  NAME m1 10.9.1.1 ─veth─ me 10.9.1.2 (NAME-edge)
#  NAME m2 10.9.2.1 ─veth─ mc 10.9.2.2 (NAME-centre)
#  NAME m3 10.9.3.1 ─veth─ ml 10.9.3.2 (NAME-line)
#  NAME m4 10.9.4.1 ─veth─ mi 10.9.4.2 (NAME-inet)
set -euo pipefail

usage="usage: steer-topology.sh up|down NAME [--wire]"
cmd=${1:?$usage}
n=${2:?$usage}
wire=0
case ${3:-} in
'') ;;
--wire) wire=1 ;;
*)
	echo "steer-topology.sh: unknown option $3 ($usage)" >&2
	exit 2
	;;
esac
PATH=$PATH:/usr/sbin:/sbin

AGENT_MAC=02:00:00:00:01:11
EDGE_MAC=02:00:00:00:02:02
CENTRE_MAC=02:00:00:00:03:02
VIP_MAC=02:00:00:00:00:fe

down() {
	for ns in "$n-agent" "$n-edge" "$n-centre" "$n-line" "$n-inet" "$n"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# host NS IFACE PEER MAC ADDR [FROM]: a veth from PEER in namespace FROM
# (the appliance's by default) to host namespace NS (IFACE with MAC and
# ADDR).
host() {
	local ns=$n-$1 ifc=$2 peer=$3 mac=$4 addr=$5 from=${6:-$n}
	ip -n "$from" link add "$peer" type veth peer name "$ifc"
	ip -n "$from" link set "$ifc" netns "$ns"
	ip -n "$ns" link set "$ifc" address "$mac"
	ip -n "$ns" addr add "$addr" dev "$ifc"
	ip -n "$ns" link set "$ifc" up
	ip netns exec "$ns" ethtool -K "$ifc" tx off rx off >/dev/null
	ip -n "$from" link set "$peer" up
	# pktgen wire reads and writes whole frames with AF_PACKET: no
	# offloads that would hand it unsegmented or unchecksummed ones.
	if [[ $from != "$n" ]]; then
		ip netns exec "$from" ethtool -K "$peer" tso off gso off gro off tx off rx off >/dev/null
	fi
}

# line PATHNS APPLIANCE_IFACE A B: a path namespace whose A faces the
# appliance's APPLIANCE_IFACE; B is left for the node's veth. No
# addresses: only `pktgen wire` reads and writes these interfaces.
line() {
	local ns=$n-$1 app=$2 a=$3
	ip -n "$n" link add "$app" type veth peer name "$a"
	ip -n "$n" link set "$a" netns "$ns"
	ip -n "$ns" link set "$a" up
	ip netns exec "$ns" ethtool -K "$a" tso off gso off gro off tx off rx off >/dev/null
	ip -n "$n" link set "$app" up
}

# mgmt NODE LOCAL REMOTE SUBNET: the management link of a node namespace.
mgmt() {
	local ns=$n-$1
	ip -n "$n" link add "$2" type veth peer name "$3"
	ip -n "$n" link set "$3" netns "$ns"
	ip -n "$n" addr add "$4.1/30" dev "$2"
	ip -n "$ns" addr add "$4.2/30" dev "$3"
	ip -n "$n" link set "$2" up
	ip -n "$ns" link set "$3" up
}

up() {
	down
	local extra=()
	((wire)) && extra=("$n-line" "$n-inet")
	for ns in "$n" "$n-agent" "$n-edge" "$n-centre" "${extra[@]}"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	done
	host agent ag dag "$AGENT_MAC" 10.0.1.11/24
	if ((wire)); then
		line line ded la
		line inet dce ia
		host edge ed lb "$EDGE_MAC" 10.0.2.2/24 "$n-line"
		host centre ce ib "$CENTRE_MAC" 10.0.3.2/24 "$n-inet"
		# The wires report their path's state (PATH_STATE) to the
		# appliance's control plane, as a network controller would.
		mgmt line m3 ml 10.9.3
		mgmt inet m4 mi 10.9.4
	else
		host edge ed ded "$EDGE_MAC" 10.0.2.2/24
		host centre ce dce "$CENTRE_MAC" 10.0.3.2/24
	fi
	# Management links beside the data path: the nodes' state reaches the
	# control plane over them (the collector scraping /metrics, or a node
	# pushing its own NODE_STATE).
	mgmt edge m1 me 10.9.1
	mgmt centre m2 mc 10.9.2
	ip -n "$n-agent" route add 10.0.100.0/24 dev ag
	ip -n "$n-agent" neigh add 10.0.100.1 lladdr "$VIP_MAC" dev ag nud permanent
	for side in edge:ed centre:ce; do
		ip -n "$n-${side%%:*}" route add 10.0.1.0/24 dev "${side##*:}"
		ip -n "$n-${side%%:*}" neigh add 10.0.1.11 lladdr "$AGENT_MAC" dev "${side##*:}" nud permanent
	done
}

case $cmd in
up) up ;;
down) down ;;
*)
	echo "steer-topology.sh: unknown command $cmd (up or down)" >&2
	exit 2
	;;
esac
