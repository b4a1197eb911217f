#!/usr/bin/env python3
"""`POST /get-online-features` over HTTP: `asof serve --http` vs `feast serve`, one run, one Redis.

Set-up: a redis-server on a free loopback port; the asof quickstart repo (`asof init`) with its
online store on that Redis, materialized; a Feast repo with the same driver view over the same
Parquet file, its online store on the same Redis, materialized by Feast. Both servers then hold the
same driver rows for the same keys (each in its own key format).

Load: `wrk` (Debian's package) with one thread and 16 connections for `--seconds` per case, POSTing
the same JSON body to both servers: 3 features of `driver_hourly_stats` for 1 entity row and for
100 entity rows. Reported: requests/s and wrk's p50/p99 latency. Everything shares this machine's
cores (Redis, the server under test, wrk); `feast serve` runs with its default workers and asof
with its default threads. Run it by hand on a quiet machine:

    python3 benches/http_vs_feast.py [--asof target/release/asof] [--seconds 10]
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=120):
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    sys.exit(f"{url} did not come up")


def wrk(url, body, seconds, connections):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                 f"wrk.body = {json.dumps(json.dumps(body))}\n")
    script.close()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99), "errors": int(non2xx.group(1)) if non2xx else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    for tool in ("wrk", "redis-server", "feast"):
        if not shutil.which(tool):
            sys.exit(f"needs `{tool}` on PATH (apt-get install wrk redis-server; pip install feast[redis])")
    work = tempfile.mkdtemp(prefix="asof-http-bench-")
    procs = []
    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        repo = os.path.join(work, "rideshare")
        subprocess.run([args.asof, "-q", "init", repo], check=True)
        config = os.path.join(repo, "feature_store.yaml")
        text = open(config).read()
        text = re.sub(r"online_store:.*\n", f"online_store: {{type: redis, connection_string: \"redis://127.0.0.1:{redis_port}\"}}\n", text)
        open(config, "w").write(text)
        subprocess.run([args.asof, "--repo", repo, "-q", "apply"], check=True)
        subprocess.run([args.asof, "--repo", repo, "-q", "materialize-incremental", "now"], check=True)
        asof_port = free_port()
        procs.append(subprocess.Popen([args.asof, "--repo", repo, "serve", "--grpc", f"127.0.0.1:{free_port()}",
                                       "--metrics", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{asof_port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        feast_repo = os.path.join(work, "feast_repo")
        os.makedirs(feast_repo)
        open(os.path.join(feast_repo, "feature_store.yaml"), "w").write(textwrap.dedent(f"""\
            project: rideshare
            provider: local
            registry: {feast_repo}/registry.db
            entity_key_serialization_version: 3
            offline_store: {{type: file}}
            online_store: {{type: redis, connection_string: "127.0.0.1:{redis_port}"}}
            """))
        open(os.path.join(feast_repo, "definitions.py"), "w").write(textwrap.dedent(f"""\
            from datetime import timedelta
            from feast import Entity, FeatureView, Field, FileSource, ValueType
            from feast.types import Float32, Int64
            driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
            source = FileSource(name="driver_stats_source", path="{repo}/data/driver_stats.parquet",
                                timestamp_field="event_timestamp", created_timestamp_column="created",
                                field_mapping={{"trips_today": "avg_daily_trips"}})
            driver_hourly_stats = FeatureView(name="driver_hourly_stats", entities=[driver], ttl=timedelta(days=1),
                schema=[Field(name="driver_id", dtype=Int64), Field(name="conv_rate", dtype=Float32),
                        Field(name="acc_rate", dtype=Float32), Field(name="avg_daily_trips", dtype=Int64)],
                online=True, source=source)
            """))
        subprocess.run(["feast", "apply"], cwd=feast_repo, check=True, capture_output=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        subprocess.run(["feast", "materialize-incremental", now], cwd=feast_repo, check=True, capture_output=True)
        feast_port = free_port()
        procs.append(subprocess.Popen(["feast", "serve", "-h", "127.0.0.1", "-p", str(feast_port)], cwd=feast_repo,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{asof_port}/health")
        wait_http(f"http://127.0.0.1:{feast_port}/health")

        rows = []
        for n in (1, 100):
            body = {"features": FEATURES, "entities": {"driver_id": [1001 + i % 5 for i in range(n)]}}
            # Both must answer the same values before either is timed.
            import urllib.request
            answers = []
            for port in (asof_port, feast_port):
                req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
                answer = json.load(urllib.request.urlopen(req))
                # By name: Feast orders columns its own way (asof keeps the request's order).
                answers.append(dict(zip(answer["metadata"]["feature_names"], (r["values"] for r in answer["results"]))))
            same = answers[0] == answers[1]
            if not same:
                print(f"values differ at {n} entities:\n asof  {answers[0]}\n feast {answers[1]}", file=sys.stderr)
            a = wrk(f"http://127.0.0.1:{asof_port}/get-online-features", body, args.seconds, args.connections)
            f = wrk(f"http://127.0.0.1:{feast_port}/get-online-features", body, args.seconds, args.connections)
            row = {"entities": n, "asof": a, "feast": f, "ratio": round(a["rps"] / f["rps"], 1), "same_values": same}
            rows.append(row)
            print(json.dumps(row), flush=True)
        print()
        print(f"| entity rows × 3 features | asof req/s | asof p50 / p99 (ms) | feast serve req/s | feast p50 / p99 (ms) | asof/Feast | same values |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            a, f = r["asof"], r["feast"]
            print(f"| {r['entities']} | {a['rps']:,.0f} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {f['rps']:,.0f} | "
                  f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f} | {r['ratio']}x | {'yes' if r['same_values'] else 'NO'} |")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
