#!/usr/bin/env bash
# The quickstart on embedded defaults, end to end: init a repo, apply it, build a point-in-time
# training set and audit it, materialize, sync and search the document index, serve over gRPC,
# query, and shut the server down.
# Pass a folder to keep the repo (default: a new temp folder).
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
"$ASOF" materialize-incremental now
"$ASOF" index sync help_articles
"$ASOF" index sync help_articles          # unchanged corpus: zero embedder calls
"$ASOF" index search help_articles "refund to my card" -k 3
"$ASOF" index eval help_articles --queries data/queries.jsonl

"$ASOF" serve --grpc 127.0.0.1:6566 --metrics 127.0.0.1:9464 --log-retrievals logs > serve.log 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "serving" serve.log && break; sleep 0.1; done
cat serve.log
"$ASOF" query --service driver_activity --entity driver_id=1001,1002 --entity customer_id=201,202
kill -TERM $SERVER && wait $SERVER
trap - EXIT
echo "Quickstart repo: $REPO"
