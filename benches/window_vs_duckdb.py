#!/usr/bin/env python3
"""Windowed aggregations in training sets: asof vs DuckDB, side by side in one run.

For each scale (entity rows / events) this generates seeded data with DuckDB (so both tools read the
very same Parquet files): click events (user, ts, dwell, amount; keys ~ events/100, 60 days, 2% null
dwell) and entity rows (user, event_timestamp). Four aggregations over two windows:

    clicks_1d      count            1d
    dwell_sum_1d   sum(dwell)       1d
    dwell_mean_7d  mean(dwell)      7d
    amount_max_7d  max(amount)      7d

with the rule `t - window < ts <= t`. It runs

  * asof:   `asof training-set --features ...` (release build), and
  * DuckDB: a range join of entity rows and events on (user, t - 7d < ts <= t) with GROUP BY per
            entity row and FILTERs for the 1-day aggregates, ordered back to input order,

each in a fresh process, records wall time and peak RSS, and checks the tables agree row for row:
counts, max and null-ness exactly; sums and means to a relative 1e-9 (DuckDB adds doubles in
its own order, asof exactly and rounds once). Each is the best of `--repeat` runs.

What is timed: the process wall time of each (asof: start, read the entity table, aggregate, write
Parquet; DuckDB: starting Python, importing duckdb, the query and its COPY to Parquet), and for
DuckDB also its query alone, timed inside its process.

    python3 benches/window_vs_duckdb.py [--scales 1e5/1e6,1e6/1e7] [--asof target/release/asof]
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
  - {name: user, join_keys: [user_id]}
sources:
  - {name: clicks, path: data/events.parquet, timestamp_field: ts}
feature_views:
  - name: activity
    entities: [user]
    source: clicks
    aggregations:
      - {name: clicks_1d, function: count, window: 1d}
      - {name: dwell_sum_1d, column: dwell, function: sum, window: 1d}
      - {name: dwell_mean_7d, column: dwell, function: mean, window: 7d}
      - {name: amount_max_7d, column: amount, function: max, window: 7d}
"""
FEATURES = "activity:clicks_1d,activity:dwell_sum_1d,activity:dwell_mean_7d,activity:amount_max_7d"
DAYS = 60


def generate(con, data, n_entities, n_events, seed):
    n_keys = max(10, n_events // 100)
    span = DAYS * 86400
    con.execute(f"SELECT setseed({seed})")
    con.execute(f"""
        COPY (
          SELECT (random() * {n_keys})::BIGINT AS user_id,
                 TIMESTAMP '2024-01-01' + to_seconds((random() * {span})::BIGINT) AS ts,
                 CASE WHEN random() < 0.02 THEN NULL ELSE random() * 300 END AS dwell,
                 (random() * 1000)::BIGINT AS amount
          FROM range({n_events})
        ) TO '{data}/events.parquet' (FORMAT parquet, ROW_GROUP_SIZE 131072)""")
    con.execute(f"""
        COPY (
          SELECT (random() * {n_keys * 1.05})::BIGINT AS user_id,
                 TIMESTAMP '2024-01-01' + to_seconds((random() * {span})::BIGINT) AS event_timestamp
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
  WITH e AS (SELECT *, file_row_number AS __rid FROM read_parquet('{data}/entities.parquet', file_row_number = true)),
  v AS (SELECT * FROM read_parquet('{data}/events.parquet'))
  SELECT e.user_id, any_value(e.event_timestamp) AS event_timestamp,
         count(v.ts) FILTER (WHERE v.ts > e.event_timestamp - INTERVAL 1 DAY) AS clicks_1d,
         sum(v.dwell) FILTER (WHERE v.ts > e.event_timestamp - INTERVAL 1 DAY) AS dwell_sum_1d,
         avg(v.dwell) AS dwell_mean_7d,
         max(v.amount) AS amount_max_7d
  FROM e LEFT JOIN v
    ON v.user_id = e.user_id AND v.ts <= e.event_timestamp AND v.ts > e.event_timestamp - INTERVAL 7 DAY
  GROUP BY e.__rid, e.user_id
  ORDER BY e.__rid
) TO '{out}' (FORMAT parquet)''')
print(f"query_seconds={time.perf_counter() - t0}")
"""


def measure(cmd, cwd=None):
    """Wall seconds, peak RSS (MiB) and the in-process query seconds (if printed) of a command."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    query = next((float(l.split("=", 1)[1]) for l in r.stdout.splitlines() if l.startswith("query_seconds=")), wall)
    return wall, rss_kb / 1024, query


def differing(con, a, b):
    """Rows where the two tables disagree, compared by position."""
    close = lambda c: f"(x.{c} IS NULL) <> (y.{c} IS NULL) OR abs(x.{c} - y.{c}) > 1e-9 * greatest(1, abs(y.{c}))"
    q = f"""
      WITH x AS (SELECT * EXCLUDE (file_row_number), file_row_number AS rn FROM read_parquet('{a}', file_row_number = true)),
           y AS (SELECT * EXCLUDE (file_row_number), file_row_number AS rn FROM read_parquet('{b}', file_row_number = true))
      SELECT count(*) FROM x FULL JOIN y USING (rn)
      WHERE x.user_id IS DISTINCT FROM y.user_id
         OR epoch_us(x.event_timestamp) IS DISTINCT FROM epoch_us(y.event_timestamp)
         OR x.clicks_1d IS DISTINCT FROM y.clicks_1d
         OR x.amount_max_7d IS DISTINCT FROM y.amount_max_7d
         OR {close('dwell_sum_1d')} OR {close('dwell_mean_7d')}"""
    return con.execute(q).fetchone()[0]


def main():
    import duckdb

    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="1e5/1e6,1e6/1e7")
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--seed", type=float, default=0.42)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the best is reported")
    ap.add_argument("--json", help="also write results here")
    args = ap.parse_args()
    if not os.path.exists(args.asof):
        sys.exit(f"no asof binary at {args.asof}: cargo build --release --bin asof")

    rows = []
    for scale in args.scales.split(","):
        n_e, n_v = (int(float(x)) for x in scale.split("/"))
        work = tempfile.mkdtemp(prefix="asof-window-bench-")
        try:
            data = os.path.join(work, "data")
            os.makedirs(data)
            with open(os.path.join(work, "feature_store.yaml"), "w") as f:
                f.write("project: bench\n")
            with open(os.path.join(work, "defs.yaml"), "w") as f:
                f.write(REPO_DEFS)
            con = duckdb.connect()
            generate(con, data, n_e, n_v, args.seed)
            subprocess.run([args.asof, "--repo", work, "-q", "apply"], check=True)
            asof_out, duck_out = os.path.join(work, "asof.parquet"), os.path.join(work, "duckdb.parquet")
            a = min((measure([args.asof, "--repo", work, "-q", "training-set", "--entities", f"{data}/entities.parquet",
                              "--features", FEATURES, "--output", asof_out]) for _ in range(args.repeat)), key=lambda m: m[0])
            d = min((measure([sys.executable, "-c", DUCKDB_QUERY, data, duck_out]) for _ in range(args.repeat)), key=lambda m: m[2])
            diff = differing(con, asof_out, duck_out)
            row = {"scale": scale, "entity_rows": n_e, "events": n_v,
                   "asof_s": round(a[0], 3), "duckdb_s": round(d[0], 3), "duckdb_query_s": round(d[2], 3),
                   "speedup": round(d[0] / a[0], 2), "query_speedup": round(d[2] / a[0], 2),
                   "asof_rss_mib": round(a[1]), "duckdb_rss_mib": round(d[1]), "rss_ratio": round(a[1] / d[1], 2),
                   "differing_rows": diff}
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print("| entity rows / events | asof process (s) | DuckDB process (s) | DuckDB query alone (s) | DuckDB/asof (process) | DuckDB query/asof process | asof peak RSS (MiB) | DuckDB peak RSS (MiB) | asof/DuckDB RSS | same values |")
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
