#!/usr/bin/env python3
"""Training sets on a loopback Ballista cluster vs one process, from local files and from S3.

For each scale (entity rows / feature rows per view, two views; the data of
`benches/pit_vs_duckdb.py`) this runs `asof training-set --service both` four ways: one process or
`--cluster` on a scheduler and two executors (`asof scheduler`, `asof executor --slots 1`, all on
this machine), each with its sources as local paths or as `s3://` URLs on a `moto_server`
(PyPI `moto[server]`). Every number is the best of `--repeat` whole client processes (release
build, with the `cluster` feature): planning, the job, streaming the result back and writing
Parquet. The cluster is started once and not timed. Everything shares this machine's cores: two
executors on 2 cores measure what distribution costs, not what it buys; moto is a single Python
process. Every table is compared with the one-process local one.

    python3 benches/cluster_vs_local.py [--scales 1e5/1e6,1e6/1e7] [--partitions 4]
"""
import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pit_vs_duckdb import REPO_DEFS, generate  # noqa: E402
from s3_vs_local import free_port, moto_server  # noqa: E402

ROOT = os.path.dirname(HERE)


@contextlib.contextmanager
def loopback_cluster(asof, env, executors=2):
    """`asof scheduler` and `executors` executors with one task slot each; yields `df://HOST:PORT`."""
    procs = []
    work = tempfile.mkdtemp(prefix="asof-cluster-bench-")
    try:
        sched = subprocess.Popen([asof, "scheduler", "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env)
        procs.append(sched)
        address = sched.stdout.readline().strip().removeprefix("asof scheduler on ")
        host_port = address.removeprefix("df://")
        for i in range(executors):
            port = free_port()
            procs.append(subprocess.Popen(
                [asof, "executor", "--scheduler", host_port, "--bind", f"127.0.0.1:{port}", "--slots", "1",
                 "--work-dir", os.path.join(work, f"executor-{i}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        time.sleep(3)
        yield address
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def best(cmd, env, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    import boto3
    import duckdb
    import pyarrow.parquet as pq

    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="1e5/1e6,1e6/1e7")
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=float, default=0.42)
    args = ap.parse_args()
    rows = []
    with moto_server() as (endpoint, env), loopback_cluster(args.asof, env) as cluster:
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                          region_name="us-east-1")
        for scale in args.scales.split(","):
            n_e, n_f = (int(float(x)) for x in scale.split("/"))
            bucket = "cluster-" + scale.replace("/", "-").replace("e", "x")
            s3.create_bucket(Bucket=bucket)
            work = tempfile.mkdtemp(prefix="asof-cluster-bench-")
            try:
                data = os.path.join(work, "data")
                os.makedirs(data)
                generate(duckdb.connect(), data, n_e, n_f, args.seed)
                for name in ("drivers", "customers"):
                    s3.upload_file(f"{data}/{name}.parquet", bucket, f"data/{name}.parquet")
                repos = {"local": os.path.join(work, "local"), "s3": os.path.join(work, "s3")}
                for kind, prefix in (("local", data), ("s3", f"s3://{bucket}/data")):
                    os.makedirs(repos[kind])
                    with open(os.path.join(repos[kind], "feature_store.yaml"), "w") as f:
                        f.write("project: bench\n")
                    with open(os.path.join(repos[kind], "defs.yaml"), "w") as f:
                        f.write(REPO_DEFS.replace("data/", prefix + "/"))
                    subprocess.run([args.asof, "--repo", repos[kind], "-q", "apply"], check=True, env=env)
                row = {"scale": scale}
                reference = os.path.join(work, "local-one.parquet")
                for kind in ("local", "s3"):
                    for mode in ("one", "cluster"):
                        out = os.path.join(work, f"{kind}-{mode}.parquet")
                        cmd = [args.asof, "--repo", repos[kind], "-q", "training-set", "--entities",
                               f"{data}/entities.parquet", "--service", "both", "--output", out]
                        if mode == "cluster":
                            cmd += ["--cluster", cluster, "--cluster-partitions", str(args.partitions)]
                        row[f"{kind}_{mode}_s"] = round(best(cmd, env, args.repeat), 3)
                        if out != reference:
                            row.setdefault("same_table", True)
                            row["same_table"] &= pq.read_table(out).equals(pq.read_table(reference))
                rows.append(row)
                print(json.dumps(row), flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print()
    print("| entity / feature rows per view (2 views) | one process, local (s) | cluster, local (s) | cluster/one "
          "| one process, moto S3 (s) | cluster, moto S3 (s) | cluster/one | same tables |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']} | {r['local_one_s']} | {r['local_cluster_s']} "
              f"| {r['local_cluster_s'] / r['local_one_s']:.2f}x | {r['s3_one_s']} | {r['s3_cluster_s']} "
              f"| {r['s3_cluster_s'] / r['s3_one_s']:.2f}x | {'yes' if r['same_table'] else 'NO'} |")
    if not all(r["same_table"] for r in rows):
        sys.exit("the tables differ")


if __name__ == "__main__":
    main()
