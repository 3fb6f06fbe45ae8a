#!/usr/bin/env bash
# make deps: make sure the system packages the build, tests, bench and demo
# need are present. Fast and silent-ish when they are (CI runs it every time);
# installs the missing ones with apt when it can (root or passwordless sudo).
set -euo pipefail

say() { printf 'deps: %s\n' "$*"; }
die() {
	printf 'deps: error: %s\n' "$*" >&2
	exit 1
}

# Debian's package list, one place: what `apt-get install` gets when anything
# is missing. Installing the whole set (apt skips what is there) keeps this
# simple and idempotent.
APT_PACKAGES=(libdpdk-dev dpdk clang libclang-dev pkg-config libpcap-dev jq curl
	tcpdump iproute2 ethtool build-essential fonts-dejavu-core tshark prometheus
	python3 python3-venv)

have() { command -v "$1" >/dev/null 2>&1; }

# Fills MISSING with a short human name for every requirement not met.
check() {
	MISSING=()
	if ! have pkg-config; then
		MISSING+=(pkg-config libdpdk)
	elif ! pkg-config --exists libdpdk; then
		MISSING+=(libdpdk)
	elif ! pkg-config --atleast-version=22.11 libdpdk; then
		MISSING+=("libdpdk>=22.11 (have $(pkg-config --modversion libdpdk))")
	fi
	have clang || MISSING+=(clang)
	# bindgen (ffi crate) loads libclang at build time, clang itself is not enough.
	if ! compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null &&
		! { ldconfig -p 2>/dev/null | grep -q 'libclang'; }; then
		MISSING+=(libclang)
	fi
	[[ -e /usr/include/pcap.h || -e /usr/include/pcap/pcap.h ]] || MISSING+=(pcap-headers)
	have cc || MISSING+=(cc)
	local tool
	for tool in jq curl tcpdump; do
		have "$tool" || MISSING+=("$tool")
	done
	# tests/tests/wireshark.rs runs contrib/wireshark/intellinode.lua in it.
	have tshark || MISSING+=(tshark)
	# `ip` lives in /usr/sbin, which a non-root PATH may lack.
	have ip || [[ -x /usr/sbin/ip || -x /sbin/ip ]] || MISSING+=("ip (iproute2)")
	# The steering topology turns veth checksum offload off with it.
	have ethtool || [[ -x /usr/sbin/ethtool || -x /sbin/ethtool ]] || MISSING+=(ethtool)
	# make eval's charts render their text with it (plotters + ab_glyph).
	[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || MISSING+=(fonts-dejavu-core)
	# The metrics test lints every /metrics scrape with it; Debian ships
	# promtool only inside the prometheus package (its server is not used).
	have promtool || MISSING+=("promtool (prometheus)")
	# scripts/pyenv.sh makes target/venv (the agent library, the OpenAI SDK).
	if ! have python3; then
		MISSING+=(python3)
	elif ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
		MISSING+=("python3-venv")
	fi
}

# The Rust toolchain is not an apt package we can use (bookworm's is too old).
check_rust() {
	have cargo || die "cargo not found: install a Rust toolchain >= 1.80 with rustup (https://rustup.rs)"
	local v
	v=$(rustc --version 2>/dev/null | awk '{print $2}')
	[[ -n $v ]] || die "rustc not found: install a Rust toolchain >= 1.80 with rustup (https://rustup.rs)"
	# Compare MAJOR.MINOR against 1.80 with sort -V, no arithmetic on strings.
	[[ $(printf '1.80.0\n%s\n' "$v" | sort -V | head -n1) == 1.80.0 ]] ||
		die "rustc $v is too old: install a Rust toolchain >= 1.80 with rustup (rustup update)"
}

summary() { echo "DPDK $(pkg-config --modversion libdpdk), $(rustc --version | awk '{print "rustc", $2}')"; }

check
if ((${#MISSING[@]} == 0)); then
	check_rust
	say "ok ($(summary))"
	exit 0
fi

say "missing: ${MISSING[*]}"
SUDO=()
if ((EUID != 0)); then
	if have sudo && sudo -n true 2>/dev/null; then
		SUDO=(sudo -n)
	else
		die "not root and no passwordless sudo; install: ${APT_PACKAGES[*]}"
	fi
fi
have apt-get || die "apt-get not available; install these yourself: ${MISSING[*]}"

# Keep apt's chatter out of the way, but show it if something goes wrong.
log=$(mktemp /tmp/intellinode-deps.XXXXXX.log)
say "installing with apt-get (log: $log)"
export DEBIAN_FRONTEND=noninteractive
# tshark's wireshark-common asks whether non-root users may capture. Answer
# "no" (its default) up front, so the install cannot stop on the question
# whatever debconf frontend the machine is configured with.
if have debconf-set-selections; then
	echo "wireshark-common wireshark-common/install-setuid boolean false" |
		"${SUDO[@]}" debconf-set-selections >>"$log" 2>&1 || true
fi
if ! "${SUDO[@]}" apt-get update >"$log" 2>&1 ||
	! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${APT_PACKAGES[@]}" >>"$log" 2>&1 </dev/null; then
	tail -n 20 "$log" >&2
	die "apt-get failed (full log: $log)"
fi

check
((${#MISSING[@]} == 0)) || die "still missing after apt-get install: ${MISSING[*]}"
rm -f "$log"
check_rust
say "ok (installed what was missing; $(summary))"
