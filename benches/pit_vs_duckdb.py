#!/usr/bin/env python3
"""Point-in-time training sets: asof vs DuckDB, side by side in one run.

For each scale (entity rows / feature rows per view, two views) this generates seeded data with
DuckDB (so both tools read the very same Parquet files), runs

  * asof:   `asof training-set --service both` (release build), and
  * DuckDB: two ASOF LEFT JOINs with Feast's semantics spelled out: duplicates on (key, ts) resolved
            by the latest created timestamp, and the TTL applied to the matched row,

each in a fresh process, records wall time and peak RSS, checks the two tables are equal row for
row, and prints a table of ratios. Nothing here is a test: run it by hand on a quiet machine.

What is timed: the process wall time of each (for asof that is the whole CLI: start, read the entity
table, join, write Parquet; for DuckDB it includes starting Python and importing duckdb), and for
DuckDB also its query alone, timed inside its process around the one `COPY` statement, so the
small-scale ratio is not about interpreter start-up. Each is the best of `--repeat` runs.

    python3 benches/pit_vs_duckdb.py [--scales 1e4/1e5,1e5/1e6,1e6/1e7] [--asof target/release/asof]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

REPO_DEFS = """
entities:
  - {name: driver, join_keys: [driver_id]}
  - {name: customer, join_keys: [customer_id]}
sources:
  - {name: driver_src, path: data/drivers.parquet, timestamp_field: event_timestamp, created_timestamp_field: created}
  - {name: customer_src, path: data/customers.parquet, timestamp_field: event_timestamp, created_timestamp_field: created}
feature_views:
  - name: driver_stats
    entities: [driver]
    source: driver_src
    ttl: 2d
    features:
      - {name: conv_rate, dtype: float64}
      - {name: trips, dtype: int64}
  - name: customer_stats
    entities: [customer]
    source: customer_src
    ttl: 7d
    features:
      - {name: balance, dtype: float64}
      - {name: rides, dtype: int64}
feature_services:
  - {name: both, features: [driver_stats, customer_stats]}
"""

DAYS = 60


def generate(con, data, n_entities, n_features, seed):
    """Seeded synthetic data: keys ~ rows/100, timestamps over 60 days, some (key, ts) duplicates."""
    n_keys = max(10, n_features // 100)
    con.execute(f"SELECT setseed({seed})")
    span = DAYS * 86400
    for name, key, a, b in [("drivers", "driver_id", "conv_rate", "trips"), ("customers", "customer_id", "balance", "rides")]:
        con.execute(f"""
            COPY (
              SELECT {key}, event_timestamp, event_timestamp + to_seconds(delay) AS created, {a}, {b} FROM (
                SELECT (random() * {n_keys})::BIGINT AS {key},
                       TIMESTAMP '2024-01-01' + to_seconds((random() * {span})::BIGINT // 60 * 60) AS event_timestamp,
                       (random() * 3600)::BIGINT AS delay,
                       CASE WHEN random() < 0.02 THEN NULL ELSE random() END AS {a},
                       (random() * 100)::BIGINT AS {b}
                FROM range({n_features}))
            ) TO '{data}/{name}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 131072)""")
    con.execute(f"""
        COPY (
          SELECT (random() * {n_keys * 1.05})::BIGINT AS driver_id,
                 (random() * {n_keys * 1.05})::BIGINT AS customer_id,
                 TIMESTAMP '2024-01-01' + to_seconds((random() * {span})::BIGINT) AS event_timestamp,
                 random() < 0.5 AS label
          FROM range({n_entities})
        ) TO '{data}/entities.parquet' (FORMAT parquet)""")


DUCKDB_QUERY = """
import duckdb, sys, time
data, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET preserve_insertion_order = true")
t0 = time.perf_counter()
con.execute(f'''
COPY (
  WITH e AS (SELECT * EXCLUDE (file_row_number), file_row_number AS __rid FROM read_parquet('{data}/entities.parquet', file_row_number = true)),
  d AS (SELECT driver_id, event_timestamp AS ts, conv_rate, trips FROM read_parquet('{data}/drivers.parquet')
        QUALIFY row_number() OVER (PARTITION BY driver_id, event_timestamp ORDER BY created DESC) = 1),
  c AS (SELECT customer_id, event_timestamp AS ts, balance, rides FROM read_parquet('{data}/customers.parquet')
        QUALIFY row_number() OVER (PARTITION BY customer_id, event_timestamp ORDER BY created DESC) = 1)
  SELECT e.driver_id, e.customer_id, e.event_timestamp, e.label,
         CASE WHEN d.ts >= e.event_timestamp - INTERVAL 2 DAY THEN d.conv_rate END AS conv_rate,
         CASE WHEN d.ts >= e.event_timestamp - INTERVAL 2 DAY THEN d.trips END AS trips,
         CASE WHEN c.ts >= e.event_timestamp - INTERVAL 7 DAY THEN c.balance END AS balance,
         CASE WHEN c.ts >= e.event_timestamp - INTERVAL 7 DAY THEN c.rides END AS rides
  FROM e
  ASOF LEFT JOIN d ON e.driver_id = d.driver_id AND e.event_timestamp >= d.ts
  ASOF LEFT JOIN c ON e.customer_id = c.customer_id AND e.event_timestamp >= c.ts
  ORDER BY e.__rid
) TO '{out}' (FORMAT parquet)''')
print(f"query_seconds={time.perf_counter() - t0}")
"""


def measure(cmd, cwd=None):
    """Wall seconds, peak RSS (MiB) and the in-process query seconds (if the command prints
    `query_seconds=`) of a command, via GNU time."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    query = next((float(l.split("=", 1)[1]) for l in r.stdout.splitlines() if l.startswith("query_seconds=")), wall)
    return wall, rss_kb / 1024, query


def same_table(con, a, b):
    """Row-for-row equality: both in input order, compared by position."""
    q = f"""
      WITH x AS (SELECT * EXCLUDE (file_row_number), file_row_number AS rn FROM read_parquet('{a}', file_row_number = true)),
           y AS (SELECT * EXCLUDE (file_row_number), file_row_number AS rn FROM read_parquet('{b}', file_row_number = true))
      SELECT count(*) FROM x FULL JOIN y USING (rn)
      WHERE x.driver_id IS DISTINCT FROM y.driver_id OR x.customer_id IS DISTINCT FROM y.customer_id
         OR epoch_us(x.event_timestamp) IS DISTINCT FROM epoch_us(y.event_timestamp)
         OR x.label IS DISTINCT FROM y.label
         OR x.conv_rate IS DISTINCT FROM y.conv_rate OR x.trips IS DISTINCT FROM y.trips
         OR x.balance IS DISTINCT FROM y.balance OR x.rides IS DISTINCT FROM y.rides"""
    return con.execute(q).fetchone()[0]


def main():
    import duckdb

    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="1e4/1e5,1e5/1e6,1e6/1e7")
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--seed", type=float, default=0.42)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the best is reported")
    ap.add_argument("--json", help="also write results here")
    ap.add_argument("--keep", help="generate the data into this folder and keep it")
    args = ap.parse_args()
    if not os.path.exists(args.asof):
        sys.exit(f"no asof binary at {args.asof}: cargo build --release --bin asof")

    rows = []
    for scale in args.scales.split(","):
        n_e, n_f = (int(float(x)) for x in scale.split("/"))
        work = os.path.join(args.keep, scale.replace("/", "_")) if args.keep else tempfile.mkdtemp(prefix="asof-bench-")
        os.makedirs(work, exist_ok=True)
        try:
            data = os.path.join(work, "data")
            os.makedirs(data, exist_ok=True)
            with open(os.path.join(work, "feature_store.yaml"), "w") as f:
                f.write("project: bench\n")
            with open(os.path.join(work, "defs.yaml"), "w") as f:
                f.write(REPO_DEFS)
            con = duckdb.connect()
            generate(con, data, n_e, n_f, args.seed)
            subprocess.run([args.asof, "--repo", work, "-q", "apply"], check=True)
            asof_out, duck_out = os.path.join(work, "asof.parquet"), os.path.join(work, "duckdb.parquet")
            a = min((measure([args.asof, "--repo", work, "-q", "training-set", "--entities", f"{data}/entities.parquet",
                              "--service", "both", "--output", asof_out]) for _ in range(args.repeat)), key=lambda m: m[0])
            d = min((measure([sys.executable, "-c", DUCKDB_QUERY, data, duck_out]) for _ in range(args.repeat)), key=lambda m: m[2])
            diff = same_table(con, asof_out, duck_out)
            row = {"scale": scale, "entity_rows": n_e, "feature_rows_per_view": n_f,
                   "asof_s": round(a[0], 3), "duckdb_s": round(d[0], 3), "duckdb_query_s": round(d[2], 3),
                   "speedup": round(d[0] / a[0], 2), "query_speedup": round(d[2] / a[0], 2),
                   "asof_rss_mib": round(a[1]), "duckdb_rss_mib": round(d[1]), "rss_ratio": round(a[1] / d[1], 2),
                   "differing_rows": diff}
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)

    print()
    print("| entity rows / feature rows per view (2 views) | asof process (s) | DuckDB process (s) | DuckDB query alone (s) | DuckDB/asof (process) | DuckDB query/asof process | asof peak RSS (MiB) | DuckDB peak RSS (MiB) | asof/DuckDB RSS | same table |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']} | {r['asof_s']} | {r['duckdb_s']} | {r['duckdb_query_s']} | {r['speedup']}x | {r['query_speedup']}x | {r['asof_rss_mib']} | {r['duckdb_rss_mib']} | {r['rss_ratio']} | {'yes' if r['differing_rows'] == 0 else 'NO: %d rows differ' % r['differing_rows']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if any(r["differing_rows"] for r in rows):
        sys.exit("the tables differ")


if __name__ == "__main__":
    main()
