# Sourced by scripts/demo.sh and scripts/eval.sh.
#
# stop_pids PID...: asks each process to stop (SIGINT, so the appliance and
# pktgen write their statistics), gives each up to 5 s to exit on its own,
# then insists (SIGKILL), and reaps them.
stop_pids() {
	local pid
	for pid in "$@"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "$@"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
