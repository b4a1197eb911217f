//! A read-only copy of an hnsw_rs graph laid out for search speed: vectors in one contiguous
//! array, layer-0 neighbours in one CSR array, a visited bitset per query.
//!
//! hnsw_rs builds, inserts and persists well, but searching it walks `Arc`s behind `RwLock`s
//! with a hash set of visited points, several times slower than hnswlib. Searches here run the
//! same HNSW algorithm over the same graph (same neighbours, same entry layer), so recall is
//! hnsw_rs's, at a fraction of the cost. Filters are applied inside the walk, hnswlib-style:
//! rejected points are still expanded (so the walk can pass through them) but never returned, and
//! the walk stops as usual once no candidate can improve the results.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use asof_core::spec::Metric;
use hnsw_rs::prelude::Hnsw;

use pulp::{Arch, Simd, WithSimd};

use crate::distance::distance_with;
use crate::graph::{Graph, SquaredL2, UnitCosine};

/// A distance and an internal point index, ordered by distance (ties by index, for determinism).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

pub struct FrozenGraph {
    dims: usize,
    metric: Metric,
    /// Internal index -> the point's id.
    ids: Vec<usize>,
    vectors: Vec<f32>,
    /// Layer-0 neighbours of point `i`: `layer0[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    layer0: Vec<u32>,
    /// Upper layers: `upper[upper_slot[i]]` holds point `i`'s neighbours per layer (index 0 is
    /// layer 1); `u32::MAX` for the many points that live on layer 0 only.
    upper_slot: Vec<u32>,
    upper: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    top_layer: usize,
}

impl std::fmt::Debug for FrozenGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenGraph")
            .field("points", &self.ids.len())
            .field("top_layer", &self.top_layer)
            .finish()
    }
}

fn freeze_from<D>(h: &Hnsw<'static, f32, D>, dims: usize, metric: Metric) -> FrozenGraph
where
    D: hnsw_rs::prelude::Distance<f32> + Send + Sync,
{
    let indexation = h.get_point_indexation();
    let points: Vec<_> = indexation.into_iter().collect();
    let index_of: HashMap<usize, u32> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.get_origin_id(), i as u32))
        .collect();
    let mut ids = Vec::with_capacity(points.len());
    let mut vectors = Vec::with_capacity(points.len() * dims);
    let mut offsets = Vec::with_capacity(points.len() + 1);
    let mut layer0 = Vec::new();
    let mut upper = Vec::new();
    let mut upper_slot = vec![u32::MAX; points.len()];
    offsets.push(0u32);
    for p in &points {
        ids.push(p.get_origin_id());
        vectors.extend_from_slice(p.get_v());
        let layers = p.get_neighborhood_id();
        let to_index = |ns: &Vec<hnsw_rs::prelude::Neighbour>| -> Vec<u32> {
            ns.iter()
                .filter_map(|n| index_of.get(&n.d_id).copied())
                .collect()
        };
        if let Some(l0) = layers.first() {
            layer0.extend(to_index(l0));
        }
        offsets.push(layer0.len() as u32);
        let level = p.get_point_id().0 as usize;
        if level > 0 {
            let ups: Vec<Vec<u32>> = layers.iter().skip(1).take(level).map(to_index).collect();
            upper_slot[index_of[&p.get_origin_id()] as usize] = upper.len() as u32;
            upper.push(ups);
        }
    }
    let top_layer = h.get_max_level_observed() as usize;
    let entry = if points.is_empty() {
        None
    } else {
        points
            .iter()
            .position(|p| p.get_point_id().0 as usize == top_layer)
            .map(|i| i as u32)
    };
    FrozenGraph {
        dims,
        metric,
        ids,
        vectors,
        offsets,
        layer0,
        upper_slot,
        upper,
        entry,
        top_layer,
    }
}

impl FrozenGraph {
    /// Copies `graph` (`dims`-wide vectors) into the search layout.
    pub fn freeze(graph: &Graph, dims: usize) -> FrozenGraph {
        match graph {
            Graph::Cosine(h) => freeze_from::<UnitCosine>(h, dims, Metric::Cosine),
            Graph::L2(h) => freeze_from::<SquaredL2>(h, dims, Metric::L2),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    #[inline(always)]
    fn distance<S: Simd>(&self, simd: S, q: &[f32], i: u32) -> f32 {
        let v = &self.vectors[i as usize * self.dims..(i as usize + 1) * self.dims];
        distance_with(simd, self.metric, q, v)
    }

    fn neighbours(&self, i: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            &self.layer0[self.offsets[i as usize] as usize..self.offsets[i as usize + 1] as usize]
        } else {
            let slot = self.upper_slot[i as usize];
            self.upper
                .get(slot as usize)
                .and_then(|ls| ls.get(layer - 1))
                .map_or(&[], Vec::as_slice)
        }
    }

    /// The `k` nearest points passing `keep`, by scanning every point: exact, and cheaper than a
    /// graph walk when few points pass (the walk would visit many it cannot return).
    pub fn exact(&self, q: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<(usize, f32)> {
        let mut best: Vec<(usize, f32)> = Vec::new();
        for (i, &id) in self.ids.iter().enumerate() {
            if !keep(id) {
                continue;
            }
            let v = &self.vectors[i * self.dims..(i + 1) * self.dims];
            best.push((id, crate::distance::distance(self.metric, q, v)));
        }
        best.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        best.truncate(k);
        best
    }

    /// The `k` nearest points passing `keep` (by point id), nearest first, with distances.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        Arch::new().dispatch(SearchOp {
            graph: self,
            q,
            k,
            ef,
            keep,
        })
    }

    #[inline(always)]
    fn search_with<S: Simd>(
        &self,
        simd: S,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        let Some(mut cur) = self.entry else {
            return Vec::new();
        };
        // Greedy descent through the upper layers.
        let mut cur_d = self.distance(simd, q, cur);
        for layer in (1..=self.top_layer).rev() {
            loop {
                let mut moved = false;
                for &n in self.neighbours(cur, layer) {
                    let d = self.distance(simd, q, n);
                    if d < cur_d {
                        cur_d = d;
                        cur = n;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        // Beam search on layer 0.
        let ef = ef.max(k);
        VISITED.with_borrow_mut(|marks| self.beam(simd, q, k, ef, keep, cur, cur_d, marks))
    }

    /// Layer-0 beam search from `cur`; `marks` is this thread's reusable visited array.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn beam<S: Simd>(
        &self,
        simd: S,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
        cur: u32,
        cur_d: f32,
        marks: &mut Marks,
    ) -> Vec<(usize, f32)> {
        let passes = |i: u32| keep.is_none_or(|f| f(self.ids[i as usize]));
        let stamp = marks.next(self.ids.len());
        let mut seen = |i: u32| {
            let m = &mut marks.stamps[i as usize];
            let was = *m == stamp;
            *m = stamp;
            was
        };
        seen(cur);
        let mut candidates = BinaryHeap::new(); // min-heap through Reverse
        let mut results: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef + 1); // max-heap
        candidates.push(std::cmp::Reverse(Scored(cur_d, cur)));
        if passes(cur) {
            results.push(Scored(cur_d, cur));
        }
        while let Some(std::cmp::Reverse(Scored(d, c))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| d > w.0) {
                break;
            }
            for &n in self.neighbours(c, 0) {
                if seen(n) {
                    continue;
                }
                let nd = self.distance(simd, q, n);
                let worst = results.peek().map_or(f32::INFINITY, |w| w.0);
                if results.len() < ef || nd < worst {
                    candidates.push(std::cmp::Reverse(Scored(nd, n)));
                    if passes(n) {
                        results.push(Scored(nd, n));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<Scored> = results.into_vec();
        out.sort();
        out.truncate(k);
        out.into_iter()
            .map(|Scored(d, i)| (self.ids[i as usize], d))
            .collect()
    }
}

/// One search, run once per query in the SIMD instruction set the CPU offers.
struct SearchOp<'a> {
    graph: &'a FrozenGraph,
    q: &'a [f32],
    k: usize,
    ef: usize,
    keep: Option<&'a dyn Fn(usize) -> bool>,
}

impl WithSimd for SearchOp<'_> {
    type Output = Vec<(usize, f32)>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        self.graph
            .search_with(simd, self.q, self.k, self.ef, self.keep)
    }
}

/// Visited marks reused across queries on a thread: a point is visited when its stamp equals the
/// query's, so a new query costs one increment instead of clearing an array.
#[derive(Default)]
struct Marks {
    stamps: Vec<u32>,
    stamp: u32,
}

impl Marks {
    fn next(&mut self, n: usize) -> u32 {
        if self.stamps.len() < n {
            self.stamps.resize(n, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
        self.stamp
    }
}

thread_local! {
    static VISITED: std::cell::RefCell<Marks> = std::cell::RefCell::new(Marks::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::normalize;

    fn data(n: usize, dims: usize) -> Vec<Vec<f32>> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dims)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % 2000) as f32 / 1000.0 - 1.0
                    })
                    .collect();
                normalize(&mut v);
                v
            })
            .collect()
    }

    fn exact(base: &[Vec<f32>], q: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut all: Vec<(f32, usize)> = base
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i * 10))
            .map(|(i, v)| (crate::distance::distance(Metric::Cosine, q, v), i * 10))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|(_, id)| id).collect()
    }

    #[test]
    fn a_wide_search_finds_the_exact_neighbours_with_and_without_a_filter() {
        let dims = 24;
        let base = data(600, dims);
        let graph = Graph::new(Metric::Cosine, base.len());
        // Sparse ids, as after tombstones: the frozen copy must map them back.
        let points: Vec<(&[f32], usize)> = base
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i * 10))
            .collect();
        graph.insert(&points);
        let frozen = FrozenGraph::freeze(&graph, dims);
        assert_eq!(frozen.len(), 600);
        let even = |id: usize| (id / 10).is_multiple_of(2);
        for q in data(20, dims) {
            let found: Vec<usize> = frozen
                .search(&q, 10, 600, None)
                .into_iter()
                .map(|x| x.0)
                .collect();
            assert_eq!(found, exact(&base, &q, 10, |_| true));
            let filtered: Vec<usize> = frozen
                .search(&q, 10, 600, Some(&even))
                .into_iter()
                .map(|x| x.0)
                .collect();
            assert_eq!(filtered, exact(&base, &q, 10, even));
        }
    }
}
