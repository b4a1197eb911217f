#!/usr/bin/env python3
"""PostgreSQL change streams: asof vs pg_recvlogical, side by side in one run.

One throwaway PostgreSQL (initdb into a temp folder, as `nobody` under root; wal_level=logical,
fsync off so disk speed does not set the pace; commits still flush WAL at once) and one table.

1. Apply throughput. Each reader's slot is created first; then CHANGES row changes are committed
   (transactions of TXN_ROWS: inserts, then updates of the same rows) with no reader running, so
   every reader drains the very same WAL:

   * pg_recvlogical: `--start --endpos=<end LSN> -f /dev/null` with the pgoutput plugin and the
     same publication: receiving and discarding, the rate PostgreSQL itself sets (the ceiling).
   * asof stream, embedded online store, and asof stream, Redis (a local redis-server): from the
     start of the process until its checkpoint reaches the end LSN, which it writes only after the
     changes are durable in the push log (Parquet, fsynced) and written online.

   Timed: process wall time (best of --repeat; each asof run first restores the checkpoint and
   stores of before the changes so it replays the same WAL). Rates are changes/s.

2. Commit-to-visible latency at a steady RATE changes/s (transactions of 10 rows) for --seconds:
   `asof serve --stream`'s own histogram `asof_stream_commit_to_visible_seconds` (from the commit
   time PostgreSQL records to the moment the batch is readable online; same host clock), p50/p99
   by linear interpolation inside its buckets.

Nothing here is a test: run it by hand on a quiet machine, after `cargo build --release --bin asof`.

    python3 benches/stream_vs_pg_recvlogical.py [--changes 200000] [--repeat 3] [--rate 2000]
"""
import argparse
import glob
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "bench-password"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        sys.exit("PostgreSQL is not installed: apt-get install postgresql")
    return dirs[-1]


class Postgres:
    def __init__(self):
        self.bin = pg_bin()
        self.dir = tempfile.mkdtemp(prefix="asof-bench-pg")
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            subprocess.run(["chown", "nobody", self.dir], check=True)
            self.as_user = ["runuser", "-u", "nobody", "--"]
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD)
        os.chmod(pw, 0o644)
        data = os.path.join(self.dir, "data")
        subprocess.run(self.as_user + [f"{self.bin}/initdb", "-D", data, "-U", "asof",
                                       "--auth=scram-sha-256", "--pwfile", pw, "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL)
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c wal_level=logical "
                "-c fsync=off -c max_wal_size=4GB -c max_replication_slots=10")
        subprocess.run(self.as_user + [f"{self.bin}/pg_ctl", "-D", data, "-l",
                                       os.path.join(self.dir, "log"), "-w", "-o", opts, "start"],
                       check=True, stdout=subprocess.DEVNULL)
        self.data = data

    def psql(self, db, sql):
        out = subprocess.run([f"{self.bin}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-h", "127.0.0.1", "-p", str(self.port), "-U", "asof", "-d", db,
                              "-c", sql], check=True, capture_output=True, text=True,
                             env={**os.environ, "PGPASSWORD": PASSWORD})
        return out.stdout.strip()

    def lsn(self, db):
        return self.psql(db, "SELECT pg_current_wal_insert_lsn()")

    def stop(self):
        subprocess.run(self.as_user + [f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate",
                                       "stop"], stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_lsn(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def repo(asof, pg, online_store, name):
    d = tempfile.mkdtemp(prefix=f"asof-bench-{name}")
    r = os.path.join(d, "repo")
    subprocess.run([asof, "init", r], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(r, "feature_store.yaml"), "w") as f:
        f.write(f"project: bench_{name}\nregistry: data/registry.json\nonline_store: {online_store}\n")
    with open(os.path.join(r, "live.yaml"), "w") as f:
        f.write(f"""
sources:
  - name: live
    type: postgres
    connection: postgresql://asof@127.0.0.1:{pg.port}/bench
    password_env: ASOF_PG_PASSWORD
    table: public.events
feature_views:
  - name: live_stats
    entities: [driver]
    source: live
    features:
      - {{name: rate, dtype: float64}}
      - {{name: trips, dtype: int64}}
      - {{name: label, dtype: string}}
""")
    subprocess.run([asof, "--repo", r, "apply"], check=True, stdout=subprocess.DEVNULL)
    return r


def checkpoint_lsn(r, slot):
    p = os.path.join(r, "data", "streams", f"{slot}.json")
    try:
        import json
        with open(p) as f:
            return parse_lsn(json.load(f)["lsn"])
    except (OSError, ValueError, KeyError):
        return 0


def run_stream_until(asof, r, slot, end, timeout=900):
    env = {**os.environ, "ASOF_PG_PASSWORD": PASSWORD, "ASOF_LOG": "error"}
    t0 = time.perf_counter()
    p = subprocess.Popen([asof, "--repo", r, "stream"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    while checkpoint_lsn(r, slot) < end:
        if p.poll() is not None:
            sys.exit(f"asof stream exited with {p.returncode}")
        if time.perf_counter() - t0 > timeout:
            sys.exit("asof stream did not catch up")
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    p.terminate()
    p.wait()
    return elapsed


def generate(pg, changes, txn_rows):
    """`changes` row changes in transactions of `txn_rows`: half inserts, half updates."""
    inserts = changes // 2
    sql = f"""
DO $$
BEGIN
  FOR b IN 0..{inserts // txn_rows - 1} LOOP
    INSERT INTO events SELECT i, random(), i, 'driver ' || i
      FROM generate_series(b * {txn_rows} + 1, (b + 1) * {txn_rows}) i;
    COMMIT;
  END LOOP;
  FOR b IN 0..{inserts // txn_rows - 1} LOOP
    UPDATE events SET rate = random(), trips = trips + 1
      WHERE driver_id BETWEEN b * {txn_rows} + 1 AND (b + 1) * {txn_rows};
    COMMIT;
  END LOOP;
END $$;"""
    pg.psql("bench", sql)


def snapshot_state(r):
    keep = os.path.join(os.path.dirname(r), "state")
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(os.path.join(r, "data"), keep)
    return keep


def restore_state(pg, r, keep, slot, redis_port=None):
    """The repo's files and online store as before the changes, and its slot as it was then (a
    copy kept unadvanced), so the run replays exactly the changes."""
    shutil.rmtree(os.path.join(r, "data"))
    shutil.copytree(keep, os.path.join(r, "data"))
    pg.psql("bench", f"SELECT pg_drop_replication_slot('{slot}')")
    pg.psql("bench", f"SELECT pg_copy_logical_replication_slot('{slot}_saved', '{slot}')")
    if redis_port:
        subprocess.run(["redis-cli", "-p", str(redis_port), "FLUSHALL"], check=True,
                       stdout=subprocess.DEVNULL)


def percentile(buckets, count, q):
    """Linear interpolation inside cumulative histogram buckets [(le, cumulative)]."""
    target = q * count
    prev_le, prev_c = 0.0, 0
    for le, c in buckets:
        if c >= target:
            if le == float("inf"):
                return prev_le
            frac = (target - prev_c) / max(c - prev_c, 1)
            return prev_le + frac * (le - prev_le)
        prev_le, prev_c = le, c
    return prev_le


def latency(asof, pg, rate, seconds):
    r = repo(asof, pg, "{type: embedded, path: data/online}", "latency")
    grpc, metrics = free_port(), free_port()
    env = {**os.environ, "ASOF_PG_PASSWORD": PASSWORD, "ASOF_LOG": "error"}
    server = subprocess.Popen([asof, "--repo", r, "serve", "--stream", "--grpc",
                               f"127.0.0.1:{grpc}", "--metrics", f"127.0.0.1:{metrics}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server.stdout.readline()
    # The initial snapshot (the table's rows so far) first: latency is measured on changes.
    while checkpoint_lsn(r, "asof_bench_latency_live") == 0:
        time.sleep(0.05)
    time.sleep(0.5)
    txns = int(rate * seconds / 10)
    pause = 10.0 / rate
    base = 10_000_000
    sql = f"""
DO $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  FOR b IN 0..{txns - 1} LOOP
    INSERT INTO events SELECT i, random(), i, 'x' FROM generate_series({base} + b * 10, {base} + b * 10 + 9) i;
    COMMIT;
    PERFORM pg_sleep(greatest(0, extract(epoch FROM t0 + (b + 1) * interval '{pause} seconds' - clock_timestamp())));
  END LOOP;
END $$;"""
    t0 = time.perf_counter()
    pg.psql("bench", sql)
    achieved = txns * 10 / (time.perf_counter() - t0)
    time.sleep(1.0)
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read().decode()
    server.terminate()
    server.wait()
    buckets, count = [], 0
    for line in text.splitlines():
        if line.startswith("asof_stream_commit_to_visible_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(float(line.split()[-1]))))
        elif line.startswith("asof_stream_commit_to_visible_seconds_count"):
            count = int(float(line.split()[-1]))
    buckets.sort()
    return achieved, count, percentile(buckets, count, 0.5), percentile(buckets, count, 0.99)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--changes", type=int, default=200_000)
    ap.add_argument("--txn-rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    asof = os.path.abspath(args.asof)
    pg = Postgres()
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        pg.psql("postgres", "CREATE DATABASE bench")
        pg.psql("bench", "CREATE TABLE events (driver_id bigint PRIMARY KEY, rate float8, trips bigint, label text)")
        # Each reader's slot exists before the changes, so all of them read the same WAL.
        embedded = repo(asof, pg, "{type: embedded, path: data/online}", "embedded")
        redis_repo = repo(asof, pg, f"{{type: redis, connection_string: \"redis://127.0.0.1:{redis_port}\"}}", "redis")
        start = parse_lsn(pg.lsn("bench"))
        for r, slot in [(embedded, "asof_bench_embedded_live"), (redis_repo, "asof_bench_redis_live")]:
            run_stream_until(asof, r, slot, start)
        states = {embedded: snapshot_state(embedded), redis_repo: snapshot_state(redis_repo)}
        for slot in ["asof_bench_embedded_live", "asof_bench_redis_live"]:
            pg.psql("bench", f"SELECT pg_copy_logical_replication_slot('{slot}', '{slot}_saved')")
        pg.psql("bench", "SELECT pg_create_logical_replication_slot('recvlogical', 'pgoutput')")
        pg.psql("bench", "CREATE PUBLICATION recv FOR TABLE events")
        # A reader starts from its slot's confirmed position: one slot per pg_recvlogical run.
        for i in range(1, args.repeat):
            pg.psql("bench", f"SELECT pg_copy_logical_replication_slot('recvlogical', 'recvlogical{i}')")
        t0 = time.perf_counter()
        generate(pg, args.changes, args.txn_rows)
        gen = time.perf_counter() - t0
        end_str = pg.lsn("bench")
        end = parse_lsn(end_str)
        print(f"{args.changes:,} changes in transactions of {args.txn_rows} "
              f"({(end - start) / 1e6:.1f} MB of WAL), generated in {gen:.1f} s")

        recv = []
        for i in range(args.repeat):
            slot = "recvlogical" if i == 0 else f"recvlogical{i}"
            t0 = time.perf_counter()
            subprocess.run([f"{pg.bin}/pg_recvlogical", "-h", "127.0.0.1", "-p", str(pg.port),
                            "-U", "asof", "-d", "bench", "--slot", slot, "--start",
                            "--endpos", end_str, "-o", "proto_version=1", "-o",
                            "publication_names=recv", "-f", "/dev/null", "--no-loop"],
                           check=True, env={**os.environ, "PGPASSWORD": PASSWORD})
            recv.append(time.perf_counter() - t0)
        results = {"pg_recvlogical (receive only)": min(recv)}
        for label, r, slot, rp in [("asof stream, embedded store", embedded, "asof_bench_embedded_live", None),
                                   ("asof stream, Redis", redis_repo, "asof_bench_redis_live", redis_port)]:
            times = []
            for _ in range(args.repeat):
                restore_state(pg, r, states[r], slot, rp)
                times.append(run_stream_until(asof, r, slot, end))
            results[label] = min(times)
        ceiling = args.changes / results["pg_recvlogical (receive only)"]
        print(f"\nApply throughput (best of {args.repeat}; {os.cpu_count()} cores shared by "
              "PostgreSQL, the reader and Redis)")
        print(f"{'reader':<32} {'seconds':>8} {'changes/s':>12} {'vs pg_recvlogical':>18}")
        for label, secs in results.items():
            rate = args.changes / secs
            print(f"{label:<32} {secs:>8.2f} {rate:>12,.0f} {rate / ceiling:>17.2f}x")

        achieved, count, p50, p99 = latency(asof, pg, args.rate, args.seconds)
        print(f"\nCommit-to-visible at {achieved:,.0f} changes/s for {args.seconds} s "
              f"({count:,} transactions of 10 rows; asof serve --stream, embedded store)")
        print(f"p50 {p50 * 1000:.1f} ms   p99 {p99 * 1000:.1f} ms")
    finally:
        redis.terminate()
        pg.stop()


if __name__ == "__main__":
    main()
