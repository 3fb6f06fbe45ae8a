# IntelliNode developer entry points. `make help` lists them.
#
# Recipes are quiet on purpose: each target prints one "==>" line saying what it
# is doing, and the tools' own output only shows up when it matters (compiler
# errors, test results).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# rustup installs into ~/.cargo/bin, which non-login shells (CI) may not have.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo
CC ?= cc
CFWD := target/bench/cfwd
# Same flags for every C file built against DPDK; pkg-config is evaluated by
# the shell at recipe time, i.e. after `deps` has made sure libdpdk is there.
CFWD_CFLAGS ?= -O3 -Wall -Wextra

.PHONY: help deps pyenv build cfwd test bench soak demo demo-forward eval sim clean fmt lint

help:
	@echo "make deps   install missing system packages (DPDK, clang, libpcap, jq, tcpdump, ...)"
	@echo "make pyenv  target/venv with the OpenAI SDK, httpx and the agent library (python/intellinode-agent)"
	@echo "make build  release build of the workspace binaries + the C baseline ($(CFWD))"
	@echo "make test   the workspace's tests with the ci-test profile, the end-to-end tests driving the ci-test binaries:"
	@echo "            under cargo-nextest (.config/nextest.toml) when installed, plain cargo test otherwise"
	@echo "make bench  build, then bench/run.sh (Rust forward vs C baseline; BENCH_SECS, BENCH_ROUNDS, BENCH_MIN_RATIO)"
	@echo "            and bench/control.sh (forward under 10k control updates/s, update-to-visible latency; BENCH_ENFORCE=1)"
	@echo "make soak   build, then bench/soak.sh (forward, steer, tensor at full rate, SOAK_SECS each (600), with"
	@echo "            control updates streaming: rx = tx + drops throughout, flat RSS, mempool back to baseline)"
	@echo "make demo   build, then scripts/demo.sh (as root: agents -> intellinode -> edge/centre model servers"
	@echo "            in network namespaces; token-aware steering, edge overload, with a verdict)"
	@echo "make demo-forward  build, then scripts/demo-forward.sh (pcap in -> intellinode -> pcap out, with a verdict)"
	@echo "make eval   build, then scripts/eval.sh (as root: four steering policies with shared-prefix agents at"
	@echo "            50/80/95% load on an emulated edge/centre cluster and at 80% on a symmetric one, node state"
	@echo "            through the collector, the simulator on the same clusters; target/eval/report.md)"
	@echo "make sim    build, then the simulator at scale (1,000 nodes, 1,000,000 requests, failures)"
	@echo "make fmt    cargo fmt --check      make lint   cargo clippy -D warnings"
	@echo "make clean  remove build outputs"

deps:
	@echo "==> checking system dependencies"
	@bash scripts/deps.sh

# target/venv: the OpenAI SDK, httpx and the agent library (python/intellinode-agent).
pyenv: deps
	@echo "==> scripts/pyenv.sh"
	@bash scripts/pyenv.sh

build: deps
	@echo "==> cargo build --release --workspace --bins"
	@$(CARGO) build --release --workspace --bins
	@$(MAKE) --no-print-directory cfwd

# Phony wrapper so `build` compiles the baseline after `deps`, while the file
# rule below still skips the compile when bench/cfwd.c has not changed.
cfwd: $(CFWD)
	@:

$(CFWD): bench/cfwd.c
	@echo "==> cc $< -> $@"
	@mkdir -p $(@D)
	@$(CC) $(CFWD_CFLAGS) $$(pkg-config --cflags libdpdk) $< -o $@ $$(pkg-config --libs libdpdk)

# One profile and one feature set for everything `make test` builds:
# ci-test (release's optimisation without fat LTO, 16 codegen units; see
# Cargo.toml). Every binary's package has an integration test, so `cargo
# test` itself builds each binary into target/ci-test/, with the same
# dependency features as the test binaries (a separate `cargo build --bins`
# would compile a second copy of every crate whose features dev-dependencies
# change). The end-to-end tests drive those binaries (INTELLINODE_BIN_DIR)
# instead of waiting for the fat-LTO links that only the speed figures
# (make bench, demo, eval) need: same code, same opt-level.
# `INTELLINODE_BIN_DIR=$PWD/target/release cargo test --profile ci-test
# --workspace` after `make build` runs the same tests against the shipped
# binaries.
#
# The steps: scripts/pyenv.sh (pip, and a maturin build of the agent
# library in its own target dir) starts in the background at nice 19, and
# only a few tests need the target/venv it makes (the OpenAI SDK's and the
# agent library's: VENV_TESTS): the build keeps both CPUs busy, so pyenv
# mostly runs on the CPU the tests leave idle, rather than lengthening the
# build. The tests then run under cargo-nextest when it is installed: test
# binaries run at the same time, one test per CPU, except the `serial`
# group of .config/nextest.toml (everything that starts DPDK or asserts
# wall-clock bounds), which runs one at a time alongside the rest. First
# every test but VENV_TESTS; then, once pyenv is done, VENV_TESTS (nextest
# profile `venv`: the same settings, its own junit file; --workspace too,
# as `-p intellinode-tests` would resolve features anew and rebuild the
# crates it shares with the rest, over a minute). nextest does not
# run doc tests, so `cargo test --doc` runs beside them, at nice 19 so that
# it only takes CPU the tests leave idle. Without cargo-nextest, plain
# `cargo test` runs everything once pyenv is done, one binary after another
# (slower).
# Every step runs even when an earlier one failed; the last lines say which
# failed.
TEST_BIN_DIR := target/ci-test
TEST_ENV := INTELLINODE_BIN_DIR=$(abspath $(TEST_BIN_DIR))
NEXTEST ?= $(shell command -v cargo-nextest 2>/dev/null)
# The tests that need target/venv (tests/lib.rs venv_python()).
VENV_TESTS := package(intellinode-tests) & (binary(agent_library) | binary(splice_kernel) | binary(emulator))

test: deps
	@mkdir -p target; \
	 echo "==> scripts/pyenv.sh in the background at nice 19 (target/pyenv.log): only VENV_TESTS need target/venv"; \
	 ( rc=0; nice -n 19 bash scripts/pyenv.sh > target/pyenv.log 2>&1 || rc=$$?; echo "==> scripts/pyenv.sh finished at $${SECONDS} s" >> target/pyenv.log; exit $$rc ) & pyenv=$$!; \
	 pyenv_done() { local rc=0; wait $$pyenv || rc=$$?; cat target/pyenv.log; return $$rc; }; \
	 echo "==> cargo test --profile ci-test --workspace --no-run"; \
	 if ! $(TEST_ENV) $(CARGO) test --profile ci-test --workspace --no-run --quiet; then \
	   pyenv_done || true; echo "==> make test: the build failed" >&2; exit 1; \
	 fi; \
	 echo "==> build: $${SECONDS} s"; \
	 failed=(); \
	 if [[ -n "$(NEXTEST)" ]]; then \
	   echo "==> cargo test --doc in the background (nice 19: only the CPU the tests leave idle; target/doctest.log)"; \
	   ( $(TEST_ENV) nice -n 19 $(CARGO) test --profile ci-test --workspace --doc --no-fail-fast > target/doctest.log 2>&1 ) & doc=$$!; \
	   echo "==> cargo nextest run --cargo-profile ci-test --workspace -E 'not (VENV_TESTS)' (end-to-end tests drive $(TEST_BIN_DIR)/; .config/nextest.toml)"; \
	   $(TEST_ENV) $(CARGO) nextest run --cargo-profile ci-test --workspace --no-fail-fast -E 'not ($(VENV_TESTS))' || failed+=("cargo nextest run"); \
	   echo "==> tests: $${SECONDS} s"; \
	   if pyenv_done; then \
	     echo "==> cargo nextest run --cargo-profile ci-test --profile venv --workspace -E 'VENV_TESTS'"; \
	     $(TEST_ENV) $(CARGO) nextest run --cargo-profile ci-test --profile venv --workspace --no-fail-fast -E '$(VENV_TESTS)' || failed+=("cargo nextest run (VENV_TESTS)"); \
	   else \
	     failed+=("scripts/pyenv.sh (so VENV_TESTS did not run)"); \
	   fi; \
	   echo "==> tests: $${SECONDS} s"; \
	   doc_rc=0; wait $$doc || doc_rc=$$?; \
	   echo "==> cargo test --doc (target/doctest.log)"; cat target/doctest.log; \
	   (( doc_rc == 0 )) || failed+=("cargo test --doc"); \
	   echo "==> tests and doc tests: $${SECONDS} s"; \
	 else \
	   pyenv_done || { echo "==> make test: scripts/pyenv.sh failed" >&2; exit 1; }; \
	   echo "==> cargo-nextest not found: plain cargo test, one test binary after another (slower; cargo install cargo-nextest)"; \
	   echo "==> cargo test --profile ci-test --workspace (end-to-end tests drive $(TEST_BIN_DIR)/)"; \
	   $(TEST_ENV) $(CARGO) test --profile ci-test --workspace --no-fail-fast || failed+=("cargo test"); \
	   echo "==> tests: $${SECONDS} s"; \
	 fi; \
	 if (( $${#failed[@]} )); then printf '==> make test: FAILED: %s (the failing tests are listed above)\n' "$$(IFS=,; echo "$${failed[*]}" | sed 's/,/, /g')" >&2; exit 1; fi; \
	 echo "==> make test: all passed"

bench: build
	@echo "==> bench/run.sh"
	@bash bench/run.sh
	@echo "==> bench/control.sh"
	@bash bench/control.sh
	@echo "==> bench/steer.sh"
	@CARGO="$(CARGO)" bash bench/steer.sh
	@echo "==> bench/tensor.sh"
	@CARGO="$(CARGO)" bash bench/tensor.sh

soak: build
	@echo "==> bench/soak.sh"
	@bash bench/soak.sh

demo: build pyenv
	@echo "==> scripts/demo.sh"
	@bash scripts/demo.sh

demo-forward: build
	@echo "==> scripts/demo-forward.sh"
	@bash scripts/demo-forward.sh

eval: build
	@echo "==> scripts/eval.sh"
	@bash scripts/eval.sh

sim: build
	@echo "==> intellisim scale (1,000 nodes, 1,000,000 requests) -> target/eval/scale.json"
	@mkdir -p target/eval
	@target/release/intellisim scale --nodes 1000 --requests 1000000 --seed 1 --out target/eval/scale.json
	@echo "==> intellisim uplink (the eval cluster behind one busy egress port) -> target/eval/uplink.json"
	@target/release/intellisim uplink --seed 1 --out target/eval/uplink.json

fmt:
	@echo "==> cargo fmt --check"
	@$(CARGO) fmt --all -- --check

# clippy compiles the ffi crate (bindgen + DPDK headers), hence deps.
lint: deps
	@echo "==> cargo clippy -D warnings"
	@$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# Plain rm rather than `cargo clean`: it also works while the workspace does
# not build, and target/ holds the bench and demo outputs too.
clean:
	@echo "==> removing target/"
	@rm -rf target
