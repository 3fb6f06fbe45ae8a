#!/usr/bin/env bash
# The token-steering topology in network namespaces, shared by `make demo`
# and the end-to-end test (tests/tests/steer_kernel.rs).
#
#   steer-topology.sh up NAME     create it
#   steer-topology.sh down NAME   remove it (quietly, whatever exists)
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
set -euo pipefail

cmd=${1:?usage: steer-topology.sh up|down NAME}
n=${2:?usage: steer-topology.sh up|down NAME}
PATH=$PATH:/usr/sbin:/sbin

AGENT_MAC=02:00:00:00:01:11
EDGE_MAC=02:00:00:00:02:02
CENTRE_MAC=02:00:00:00:03:02
VIP_MAC=02:00:00:00:00:fe

down() {
	for ns in "$n-agent" "$n-edge" "$n-centre" "$n"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# host NS IFACE PEER MAC ADDR: a veth from the appliance (PEER) to host
# namespace NS (IFACE with MAC and ADDR).
host() {
	local ns=$n-$1 ifc=$2 peer=$3 mac=$4 addr=$5
	ip -n "$n" link add "$peer" type veth peer name "$ifc"
	ip -n "$n" link set "$ifc" netns "$ns"
	ip -n "$ns" link set "$ifc" address "$mac"
	ip -n "$ns" addr add "$addr" dev "$ifc"
	ip -n "$ns" link set "$ifc" up
	ip netns exec "$ns" ethtool -K "$ifc" tx off rx off >/dev/null
	ip -n "$n" link set "$peer" up
}

up() {
	down
	for ns in "$n" "$n-agent" "$n-edge" "$n-centre"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	done
	host agent ag dag "$AGENT_MAC" 10.0.1.11/24
	host edge ed ded "$EDGE_MAC" 10.0.2.2/24
	host centre ce dce "$CENTRE_MAC" 10.0.3.2/24
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
