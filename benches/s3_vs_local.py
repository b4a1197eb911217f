#!/usr/bin/env python3
"""Training sets reading from an S3-compatible server vs local files, one run.

For each scale (entity rows / feature rows per view, two views; the data of
`benches/pit_vs_duckdb.py`) this uploads the same Parquet files to a `moto_server` (PyPI
`moto[server]`, on loopback) and runs `asof training-set --service both` twice: sources and entity
table as local paths, then as `s3://` URLs with the output written to S3 too. Each is the best of
`--repeat` whole-process runs (release build), on this machine's cores, which moto (a Python
server) shares. moto is a functional stand-in, not a fast store: read the ratio as the cost of
going through an object store API at all, not as S3's speed. The tables are compared for equality.

    python3 benches/s3_vs_local.py [--scales 1e5/1e6,1e6/1e7] [--asof target/release/asof]
"""
import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pit_vs_duckdb import REPO_DEFS, generate, measure  # noqa: E402

ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server():
    """A `moto_server` on a free loopback port: its endpoint, and an environment that points
    asof's S3 client at it."""
    moto = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    port = free_port()
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
               AWS_ENDPOINT_URL=endpoint)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield endpoint, env
    finally:
        server.terminate()
        server.wait()


def main():
    import boto3
    import duckdb
    import pyarrow.parquet as pq

    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="1e5/1e6,1e6/1e7")
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=float, default=0.42)
    args = ap.parse_args()
    rows = []
    with moto_server() as (endpoint, env):
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                          region_name="us-east-1")
        for scale in args.scales.split(","):
            n_e, n_f = (int(float(x)) for x in scale.split("/"))
            bucket = "bench-" + scale.replace("/", "-").replace("e", "x")
            s3.create_bucket(Bucket=bucket)
            work = tempfile.mkdtemp(prefix="asof-s3-bench-")
            try:
                data = os.path.join(work, "data")
                os.makedirs(data)
                generate(duckdb.connect(), data, n_e, n_f, args.seed)
                for name in ("drivers", "customers", "entities"):
                    s3.upload_file(f"{data}/{name}.parquet", bucket, f"data/{name}.parquet")
                local_repo, s3_repo = os.path.join(work, "local"), os.path.join(work, "s3")
                for repo, prefix in ((local_repo, data), (s3_repo, f"s3://{bucket}/data")):
                    os.makedirs(repo)
                    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
                        f.write("project: bench\n")
                    with open(os.path.join(repo, "defs.yaml"), "w") as f:
                        f.write(REPO_DEFS.replace("data/", prefix + "/"))
                    subprocess.run([args.asof, "--repo", repo, "-q", "apply"], check=True, env=env)
                out = os.path.join(work, "local.parquet")
                local = min(measure([args.asof, "--repo", local_repo, "-q", "training-set", "--entities",
                                     f"{data}/entities.parquet", "--service", "both", "--output", out])[0]
                            for _ in range(args.repeat))
                remote = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    subprocess.run([args.asof, "--repo", s3_repo, "-q", "training-set", "--entities",
                                    f"s3://{bucket}/data/entities.parquet", "--service", "both", "--output",
                                    f"s3://{bucket}/out/training.parquet"], check=True, env=env)
                    remote.append(time.perf_counter() - t0)
                got = os.path.join(work, "s3.parquet")
                s3.download_file(bucket, "out/training.parquet", got)
                same = pq.read_table(got).equals(pq.read_table(out))
                row = {"scale": scale, "local_s": round(local, 3), "s3_s": round(min(remote), 3),
                       "s3_over_local": round(min(remote) / local, 2), "same_table": same}
                rows.append(row)
                print(json.dumps(row), flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print()
    print("| entity rows / feature rows per view (2 views) | local files (s) | moto S3 (s) | S3/local | same table |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']} | {r['local_s']} | {r['s3_s']} | {r['s3_over_local']}x | {'yes' if r['same_table'] else 'NO'} |")
    if not all(r["same_table"] for r in rows):
        sys.exit("the tables differ")


if __name__ == "__main__":
    main()
