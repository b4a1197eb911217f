#!/usr/bin/env bash
# The quickstart on embedded defaults, end to end: init a repo, apply it, build a point-in-time
# training set and audit it. Pass a folder to keep the repo (default: a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bin asof
ASOF="${CARGO_TARGET_DIR:-$PWD/target}/debug/asof"
REPO="${1:-$(mktemp -d)/rideshare}"

"$ASOF" init "$REPO"
cd "$REPO"
"$ASOF" apply
"$ASOF" ls views
"$ASOF" training-set --entities data/entities.parquet --service driver_activity \
  --output training_set.parquet --with-timestamps
"$ASOF" audit training_set.parquet
echo "Quickstart repo: $REPO"
