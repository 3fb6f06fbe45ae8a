#!/usr/bin/env bash
# make pyenv: the Python side of the tests and the demo, in target/venv.
# - the official OpenAI SDK (openai) and httpx, from PyPI;
# - the agent library (python/intellinode-agent), built with maturin from
#   the repository and installed into the venv.
# Idempotent and quick when nothing changed: the venv is kept, and the agent
# library is rebuilt only when its sources, tokenfeat or classifier changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'pyenv: %s\n' "$*"; }
die() {
	printf 'pyenv: error: %s\n' "$*" >&2
	exit 1
}

VENV=target/venv
PY=$VENV/bin/python
# Versions the tests were written against; newer minor versions are fine.
PIP_PACKAGES=("openai>=1.40,<3" "httpx>=0.25,<1" "httpcore>=1.0,<2" "maturin>=1.5,<2")

log=$(mktemp /tmp/intellinode-pyenv.XXXXXX.log)
trap 'rm -f "$log"' EXIT
run() {
	if ! "$@" >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "failed: $*"
	fi
}

if [[ ! -x $PY ]]; then
	say "creating $VENV"
	run python3 -m venv "$VENV"
fi
if ! "$PY" -c 'import openai, httpx, httpcore' 2>/dev/null || [[ ! -x $VENV/bin/maturin ]]; then
	say "installing ${PIP_PACKAGES[*]}"
	run "$PY" -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

# The library's inputs: its own sources and the two crates it is built from.
stamp=$VENV/.intellinode-agent.stamp
sum=$(find python/intellinode-agent tokenfeat classifier -type f \
	\( -name '*.rs' -o -name '*.py' -o -name '*.toml' -o -name 'Cargo.lock' \) \
	-not -path '*/target/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [[ ! -f $stamp || $(cat "$stamp") != "$sum" ]] || ! "$PY" -c 'import intellinode_agent' 2>/dev/null; then
	say "building the agent library (python/intellinode-agent)"
	rm -rf target/wheels
	run env CARGO_TARGET_DIR="$PWD/target/python-agent" "$VENV/bin/maturin" build --release \
		--manifest-path python/intellinode-agent/Cargo.toml --interpreter "$PY" --out target/wheels
	run "$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/*.whl
	echo "$sum" >"$stamp"
fi
say "ok ($("$PY" -c 'import openai, httpx, intellinode_agent; print("openai", openai.__version__, "httpx", httpx.__version__)'))"
