#!/usr/bin/env bash
# Runs asof's whole test suite on a fresh machine: installs what the tests need (a C compiler is
# assumed; redis-server, PostgreSQL, and openssl for the TLS tests' certificates, from Debian's
# packages), then builds and runs every test in debug. The tests start their own redis-server and
# PostgreSQL servers (initdb into temp folders, as `nobody` when run as root, wal_level=logical) on
# loopback ports and stop them when done.
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

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo build --locked --workspace --all-targets
cargo test --locked --workspace
