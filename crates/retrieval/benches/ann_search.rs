//! HNSW build and search on vectors from files, for `benches/ann_vs_hnswlib.py`, which generates
//! the data, computes exact neighbours and runs hnswlib on the same files in the same run.
//!
//!     cargo bench -p asof-retrieval --bench ann_search -- BASE.f32 QUERIES.f32 DIMS K EF[,EF...] OUT.json
//!
//! Vectors are little-endian f32 rows. Builds with asof's graph parameters on all cores (hnsw_rs,
//! then the frozen search copy, as a served index does), then searches each query on one thread
//! per ef value, best of three passes; writes build seconds, queries/s and the ids found.

use std::time::Instant;

use asof_core::spec::Metric;
use asof_retrieval::embed::normalize;
use asof_retrieval::frozen::FrozenGraph;
use asof_retrieval::graph::Graph;

fn read_f32(path: &str, dims: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect::<Vec<f32>>()
        .chunks_exact(dims)
        .map(|v| {
            let mut v = v.to_vec();
            normalize(&mut v);
            v
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() != 6 {
        eprintln!("usage: ann_search BASE.f32 QUERIES.f32 DIMS K EF[,EF...] OUT.json");
        std::process::exit(2);
    }
    let dims: usize = args[2].parse().unwrap();
    let k: usize = args[3].parse().unwrap();
    let efs: Vec<usize> = args[4].split(',').map(|e| e.parse().unwrap()).collect();
    let base = read_f32(&args[0], dims);
    let queries = read_f32(&args[1], dims);

    let started = Instant::now();
    let graph = Graph::new(Metric::Cosine, base.len());
    let points: Vec<(&[f32], usize)> = base
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_slice(), i))
        .collect();
    graph.insert(&points);
    let graph = FrozenGraph::freeze(&graph, dims);
    let build_seconds = started.elapsed().as_secs_f64();

    // One unmeasured pass: page in the vectors and per-thread scratch, as a serving index would be.
    for q in &queries {
        graph.search(q, k, efs[0], None);
    }
    let mut runs = Vec::new();
    for ef in efs {
        // Best of three passes, as the hnswlib side measures.
        let mut secs = f64::INFINITY;
        let mut ids: Vec<Vec<usize>> = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            ids = queries
                .iter()
                .map(|q| {
                    graph
                        .search(q, k, ef, None)
                        .into_iter()
                        .map(|(id, _)| id)
                        .collect()
                })
                .collect();
            secs = secs.min(started.elapsed().as_secs_f64());
        }
        runs.push(serde_json::json!({
            "ef": ef,
            "queries_per_second": queries.len() as f64 / secs,
            "ids": ids,
        }));
    }
    let out = serde_json::json!({
        "build_seconds": build_seconds,
        "points": base.len(),
        "runs": runs,
    });
    std::fs::write(&args[5], out.to_string()).unwrap();
}
