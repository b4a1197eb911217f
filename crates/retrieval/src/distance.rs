//! The one implementation of vector distances, used by the graph build (through hnsw_rs's
//! `Distance` trait) and by the frozen search alike, in the widest SIMD the CPU offers (AVX2+FMA
//! where available, picked at run time by `pulp`; plain multiply-add elsewhere).

use asof_core::spec::Metric;
use pulp::{Arch, Simd, WithSimd};

/// `metric`'s distance with the instruction set `simd`, for callers that dispatched already (a
/// whole search runs under one dispatch, so this inlines into its loop). Cosine is `1 - a.b` over
/// unit vectors, clamped at 0 (rounding can push `a.b` past 1); L2 is squared, which orders alike.
#[inline(always)]
pub fn distance_with<S: Simd>(simd: S, metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    let (ah, at) = S::as_simd_f32s(a);
    let (bh, bt) = S::as_simd_f32s(b);
    let mut acc = simd.splat_f32s(0.0);
    match metric {
        Metric::Cosine => {
            for (x, y) in ah.iter().zip(bh) {
                acc = simd.mul_add_e_f32s(*x, *y, acc);
            }
            let tail: f32 = at.iter().zip(bt).map(|(x, y)| x * y).sum();
            (1.0 - simd.reduce_sum_f32s(acc) - tail).max(0.0)
        }
        Metric::L2 => {
            for (x, y) in ah.iter().zip(bh) {
                let d = simd.sub_f32s(*x, *y);
                acc = simd.mul_add_e_f32s(d, d, acc);
            }
            let tail: f32 = at.iter().zip(bt).map(|(x, y)| (x - y) * (x - y)).sum();
            simd.reduce_sum_f32s(acc) + tail
        }
    }
}

/// `metric`'s distance, dispatching on the CPU for this one call.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    Arch::new().dispatch(One { metric, a, b })
}

struct One<'a> {
    metric: Metric,
    a: &'a [f32],
    b: &'a [f32],
}

impl WithSimd for One<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        distance_with(simd, self.metric, self.a, self.b)
    }
}
