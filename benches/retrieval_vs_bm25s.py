#!/usr/bin/env python3
"""Retrieval quality and cost on CISI: asof's dense (local all-MiniLM-L6-v2), sparse (BM25 on
tantivy) and hybrid arms beside a reference BM25 (bm25s, Lucene variant, English stop words and
Snowball stemmer), in one run.

Data: the CISI test collection (1,460 documents, 76 judged queries) in asof's JSON-lines formats,
`../shared/data/cisi/` by default. Nothing here is tuned to it: the index uses asof's defaults
(chunks of 300 tokens, hybrid with rrf_k 60 and equal weights).

What is measured:
  * quality: nDCG@10 and recall@10 per mode, binary relevance, a document's best chunk standing
    for it (`asof index eval --output json`), and the same metrics for bm25s's ranking;
  * cost: embedding throughput of `asof index sync` (chunks/s: process wall time of the sync
    from an empty index and cache, model load included); the run's core count is printed.

Search throughput and latency per mode are measured by the criterion-free Rust bench
`cargo bench -p asof-retrieval --bench search_modes` on the index this script leaves behind.

    pip install bm25s PyStemmer
    cargo build --release --bin asof && python3 benches/retrieval_vs_bm25s.py [--keep DIR]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def ndcg10(ranked, relevant):
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / ideal if ideal else 0.0


def recall10(ranked, relevant):
    return len([d for d in ranked[:10] if d in relevant]) / len(relevant)


def reference_bm25(docs, queries):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    corpus = [d["text"] for d in docs]
    ids = [d["doc_id"] for d in docs]
    retriever = bm25s.BM25(method="lucene")
    retriever.index(bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    n, r = 0.0, 0.0
    for q in queries:
        toks = bm25s.tokenize([q["query"]], stopwords="en", stemmer=stemmer, show_progress=False)
        res, _ = retriever.retrieve(toks, k=10, show_progress=False)
        ranked = [ids[i] for i in res[0]]
        rel = set(q["relevant"])
        n += ndcg10(ranked, rel)
        r += recall10(ranked, rel)
    return n / len(queries), r / len(queries)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asof", default=os.path.join(ROOT, "target", "release", "asof"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "cisi"))
    ap.add_argument("--keep", help="build the repo here and keep it (for the search_modes bench)")
    args = ap.parse_args()
    asof = os.path.abspath(args.asof)
    docs = [json.loads(l) for l in open(os.path.join(args.data, "docs.jsonl"))]
    queries = [json.loads(l) for l in open(os.path.join(args.data, "queries.jsonl"))]
    subprocess.run([asof, "models", "fetch", "all-MiniLM-L6-v2"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    repo = args.keep or os.path.join(tempfile.mkdtemp(prefix="asof-cisi"), "repo")
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(os.path.join(repo, "data", "cisi"))
    for f in ["docs.jsonl", "queries.jsonl"]:
        shutil.copy(os.path.join(args.data, f), os.path.join(repo, "data", "cisi", f))
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write("project: cisi\nregistry: data/registry.json\n")
    with open(os.path.join(repo, "cisi.yaml"), "w") as f:
        f.write("""
entities:
  - {name: document, join_keys: [doc_id]}
document_indexes:
  - name: cisi
    entity: document
    source: {path: data/cisi/docs.jsonl, format: jsonl}
    embedding: {provider: local, model: all-MiniLM-L6-v2, dims: 384}
""")
    subprocess.run([asof, "--repo", repo, "apply"], check=True, stdout=subprocess.DEVNULL)
    t0 = time.perf_counter()
    out = subprocess.run([asof, "--repo", repo, "index", "sync", "cisi", "--output", "json"],
                         check=True, capture_output=True, text=True)
    sync_s = time.perf_counter() - t0
    report = json.loads(out.stdout)
    v = report["versions"][0]
    chunks, embedded = v["chunks"], v["embedded"]

    out = subprocess.run([asof, "--repo", repo, "index", "eval", "cisi", "--queries",
                          os.path.join(repo, "data", "cisi", "queries.jsonl"), "-k", "10",
                          "--output", "json"], check=True, capture_output=True, text=True)
    evals = {e["mode"]: e for e in json.loads(out.stdout)}
    ref_ndcg, ref_recall = reference_bm25(docs, queries)

    print(f"CISI: {len(docs):,} documents ({chunks:,} chunks), {len(queries)} judged queries; "
          f"{os.cpu_count()} cores")
    print(f"\n{'retriever':<40} {'nDCG@10':>8} {'recall@10':>10}")
    for mode, label in [("dense", "asof dense (all-MiniLM-L6-v2, local)"),
                        ("sparse", "asof sparse (BM25, tantivy)"),
                        ("hybrid", "asof hybrid (RRF, k=60)")]:
        e = evals[mode]
        print(f"{label:<40} {e['ndcg_at_10']:>8.4f} {e['recall_at_k']:>10.4f}")
    print(f"{'bm25s (Lucene BM25, stop words, stemmer)':<40} {ref_ndcg:>8.4f} {ref_recall:>10.4f}")
    print(f"\nsparse - bm25s nDCG@10: {evals['sparse']['ndcg_at_10'] - ref_ndcg:+.4f}")
    print(f"\nEmbedding: {embedded:,} chunks embedded in {sync_s:.1f} s "
          f"({embedded / sync_s:,.0f} chunks/s; whole `asof index sync` wall time, model load included)")
    if args.keep:
        print(f"repo kept in {repo}")


if __name__ == "__main__":
    sys.exit(main())
