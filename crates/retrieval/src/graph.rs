//! The HNSW graph (hnsw_rs) behind an index version, with its own distance functions and the
//! persistence workaround hnsw_rs needs.
//!
//! hnsw_rs has no delete: deleted or changed chunks are filtered out at search time (tombstones)
//! and the graph is rebuilt from live vectors when too many accumulate (see `sync`). Searches run
//! on a [`crate::frozen::FrozenGraph`] copy of the graph, which is several times faster.

use std::path::Path;

use asof_core::spec::Metric;
use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};

use crate::distance::distance;
use crate::error::{RetrievalError, RetrievalResult};

/// Neighbours kept per node: 16 is the usual balance of recall, memory and build time.
pub const MAX_CONNECTIONS: usize = 16;
pub const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;
const BASENAME: &str = "graph";

/// Cosine distance over unit vectors, for hnsw_rs ([`crate::distance`]). hnsw_rs's `DistDot`
/// asserts `a.b <= 1`, which rounding breaks for near-identical vectors; this never panics.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

/// Squared Euclidean distance, for hnsw_rs ([`crate::distance`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct SquaredL2;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        distance(Metric::Cosine, a, b)
    }
}

impl Distance<f32> for SquaredL2 {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        distance(Metric::L2, a, b)
    }
}

/// One graph of either metric; ids are the index's point ids.
pub enum Graph {
    Cosine(Hnsw<'static, f32, UnitCosine>),
    L2(Hnsw<'static, f32, SquaredL2>),
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("points", &self.len())
            .finish()
    }
}

impl Graph {
    pub fn new(metric: Metric, capacity: usize) -> Graph {
        let cap = capacity.max(1_000);
        match metric {
            Metric::Cosine => Graph::Cosine(Hnsw::new(
                MAX_CONNECTIONS,
                cap,
                MAX_LAYERS,
                EF_CONSTRUCTION,
                UnitCosine,
            )),
            Metric::L2 => Graph::L2(Hnsw::new(
                MAX_CONNECTIONS,
                cap,
                MAX_LAYERS,
                EF_CONSTRUCTION,
                SquaredL2,
            )),
        }
    }

    /// Points in the graph, tombstoned ones included.
    pub fn len(&self) -> usize {
        match self {
            Graph::Cosine(h) => h.get_nb_point(),
            Graph::L2(h) => h.get_nb_point(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts on all cores (hnsw_rs's rayon pool).
    pub fn insert(&self, points: &[(&[f32], usize)]) {
        let points = points.to_vec();
        match self {
            Graph::Cosine(h) => h.parallel_insert_slice(&points),
            Graph::L2(h) => h.parallel_insert_slice(&points),
        }
    }

    /// Writes the graph into `dir` (which must be new: hnsw_rs never overwrites a dump).
    pub fn dump(&self, dir: &Path) -> RetrievalResult<()> {
        let written = match self {
            Graph::Cosine(h) => h.file_dump(dir, BASENAME),
            Graph::L2(h) => h.file_dump(dir, BASENAME),
        }
        .map_err(|e| RetrievalError::corrupt(dir, format!("writing the HNSW graph: {e}")))?;
        if written != BASENAME {
            return Err(RetrievalError::corrupt(
                dir,
                format!("HNSW dump went to `{written}`, expected a fresh folder"),
            ));
        }
        Ok(())
    }

    /// Reloads a dump. hnsw_rs ties the graph's lifetime to its loader; the loader (a path and
    /// options, no point data since we load without mmap) is leaked so the graph can be owned and
    /// swapped freely. That is a few hundred bytes per reload.
    pub fn load(dir: &Path, metric: Metric) -> RetrievalResult<Graph> {
        let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, BASENAME)));
        let err = |e: &dyn std::fmt::Display| {
            RetrievalError::corrupt(dir, format!("reading the HNSW graph: {e}"))
        };
        Ok(match metric {
            Metric::Cosine => {
                Graph::Cosine(loader.load_hnsw::<f32, UnitCosine>().map_err(|e| err(&e))?)
            }
            Metric::L2 => Graph::L2(loader.load_hnsw::<f32, SquaredL2>().map_err(|e| err(&e))?),
        })
    }
}
