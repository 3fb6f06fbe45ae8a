# Sourced by scripts/demo.sh and scripts/eval.sh, which define die.

# preflight TARGET BIN...: root, the built binaries and the tools the
# namespace scripts use, or one line saying what to run first.
preflight() {
	local target=$1 bin tool
	shift
	((EUID == 0)) || die "must run as root (it creates network namespaces): sudo make $target"
	for bin in "$@"; do
		[[ -x $bin ]] || die "missing $bin (run 'make build' first)"
	done
	for tool in jq ip ethtool; do
		command -v "$tool" >/dev/null || die "$tool is required (run 'make deps')"
	done
}

# wait_for FILE TEXT PID WHAT: waits until FILE (the process's log)
# contains TEXT, its ready line, for 20 s at most; dies naming WHAT if the
# process exits first or never gets ready.
wait_for() {
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || die "$4 exited early: $(tail -n 3 "$1" 2>/dev/null | tr '\n' ' ')"
		sleep 0.1
	done
	die "$4 did not start within 20 s (see $1)"
}

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
