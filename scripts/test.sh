#!/usr/bin/env bash
# Runs asof's whole test suite on a fresh machine: installs what the tests need (a C compiler is
# assumed; redis-server, and openssl for the TLS tests' certificates, from Debian's packages), then
# builds and runs every test in debug. The tests start their own redis-server processes on
# loopback ports (plain, with a password, and TLS-only) and stop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian package may start a system redis on 6379; the tests use their own ports and never it.

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo build --locked --workspace --all-targets
cargo test --locked --workspace
