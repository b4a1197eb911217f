#!/usr/bin/env python3
"""Vector search: asof's HNSW (hnsw_rs with asof's parameters) vs hnswlib, side by side in one run.

Generates a seeded clustered data set (default 100k x 128, 1,000 queries) with numpy, computes the
exact cosine top-k with numpy, then builds and searches both indexes on the same vectors with the
same graph parameters (M=16, ef_construction=200, both cores for the build, one thread for
queries, best of three passes per ef on both sides) at several ef values, and prints recall@k, queries/s and their ratio. Nothing here is a
test: run it by hand on a quiet machine.

    python3 benches/ann_vs_hnswlib.py [--n 100000] [--dims 128] [--queries 1000] [--efs 16,32,64,128,256]

Needs `pip install hnswlib numpy`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def clustered(rng, projection, centers, n):
    """Clusters in a 16-d latent space projected to `dims`, plus a little isotropic noise: like text
    embeddings, whose intrinsic dimension is far below their width."""
    latent, dims = projection.shape
    labels = rng.integers(0, len(centers), n)
    z = centers[labels] + 0.6 * rng.standard_normal((n, latent))
    x = z @ projection + 0.05 * rng.standard_normal((n, dims))
    return x.astype(np.float32)


def normalized(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def exact_topk(base, queries, k):
    b, q = normalized(base), normalized(queries)
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), 256):
        sims = q[s:s + 256] @ b.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[s:s + 256] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found, truth, k):
    hits = sum(len(set(f[:k]) & set(t[:k])) for f, t in zip(found, truth))
    return hits / (len(truth) * k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--efs", default="16,32,64,128,256")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    import hnswlib

    efs = [int(e) for e in args.efs.split(",")]
    rng = np.random.default_rng(args.seed)
    projection = rng.standard_normal((16, args.dims)) / 4.0
    centers = rng.standard_normal((max(10, args.n // 1000), 16)) * 2.0
    base = clustered(rng, projection, centers, args.n)
    queries = clustered(rng, projection, centers, args.queries)
    truth = exact_topk(base, queries, args.k)

    with tempfile.TemporaryDirectory() as tmp:
        bpath, qpath, out = (os.path.join(tmp, f) for f in ("base.f32", "queries.f32", "asof.json"))
        base.astype("<f4").tofile(bpath)
        queries.astype("<f4").tofile(qpath)
        print("building the asof bench binary (release)...", file=sys.stderr)
        subprocess.run(["cargo", "bench", "-p", "asof-retrieval", "--bench", "ann_search", "--no-run"],
                       cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["cargo", "bench", "-q", "-p", "asof-retrieval", "--bench", "ann_search", "--",
                        bpath, qpath, str(args.dims), str(args.k), args.efs, out], cwd=ROOT, check=True)
        with open(out) as f:
            ours = json.load(f)

    index = hnswlib.Index(space="cosine", dim=args.dims)
    started = time.perf_counter()
    index.init_index(max_elements=args.n, M=16, ef_construction=200, random_seed=args.seed)
    index.set_num_threads(os.cpu_count() or 2)
    index.add_items(base, np.arange(args.n))
    theirs_build = time.perf_counter() - started
    index.set_num_threads(1)
    index.set_ef(max(int(args.efs.split(",")[0]), args.k))
    index.knn_query(queries, k=args.k)  # unmeasured warm-up, as on the asof side

    rows = []
    for run in ours["runs"]:
        ef = run["ef"]
        index.set_ef(max(ef, args.k))
        secs = float("inf")
        for _ in range(3):  # best of three, as on the asof side
            started = time.perf_counter()
            labels, _ = index.knn_query(queries, k=args.k)
            secs = min(secs, time.perf_counter() - started)
        rows.append({
            "ef": ef,
            "asof_recall": recall(run["ids"], truth, args.k),
            "asof_qps": run["queries_per_second"],
            "hnswlib_recall": recall(labels.tolist(), truth, args.k),
            "hnswlib_qps": args.queries / secs,
        })

    print(f"\n{args.n:,} x {args.dims} clustered, {args.queries:,} queries, k={args.k}, M=16, ef_construction=200")
    print(f"build (2 threads): asof {ours['build_seconds']:.1f} s, hnswlib {theirs_build:.1f} s, "
          f"hnswlib/asof time {theirs_build / ours['build_seconds']:.2f}")
    print(f"{'ef':>5} {'asof recall':>12} {'hnswlib recall':>15} {'asof q/s':>10} {'hnswlib q/s':>12} {'asof/hnswlib q/s':>17}")
    for r in rows:
        print(f"{r['ef']:>5} {r['asof_recall']:>12.4f} {r['hnswlib_recall']:>15.4f} {r['asof_qps']:>10.0f} "
              f"{r['hnswlib_qps']:>12.0f} {r['asof_qps'] / r['hnswlib_qps']:>17.2f}")
    ours_at = next((r for r in rows if r["asof_recall"] >= 0.95), None)
    theirs_at = next((r for r in rows if r["hnswlib_recall"] >= 0.95), None)
    if ours_at and theirs_at:
        print(f"at recall@{args.k} >= 0.95: asof {ours_at['asof_qps']:.0f} q/s (ef {ours_at['ef']}), "
              f"hnswlib {theirs_at['hnswlib_qps']:.0f} q/s (ef {theirs_at['ef']}): "
              f"hnswlib/asof = {theirs_at['hnswlib_qps'] / ours_at['asof_qps']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build": {"asof": ours["build_seconds"], "hnswlib": theirs_build}, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
