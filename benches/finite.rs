//! Criterion benchmarks of one resolvent step of the finite-space flow (issue 10): the step with
//! an unchanged support (cached LU of M_SS, O(N²)) against a straightforward step that factors
//! the dense N × N resolvent matrix M afresh (O(N³)), at N = 400, 1000, 2500.
//!
//! Setup (outside the timed closures): 1-D grid of [0, 1], eps = 5 δ² (s = 5, cond(K) ≈ 1e5),
//! V = (x − 0.3)², h = 0.01, uniform start advanced 3 steps so the support is settled. Run with
//! `cargo bench --bench finite` (about a minute: the N = 2500 LU takes seconds per sample).
//! At s = 5 the kernel is exactly 0 in double beyond about 61 cells, and the cached step skips
//! those zeros in its products and triangular solves (theory/finite_flow.md §8); the dense
//! baseline does not.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use faer::linalg::solvers::Solve;
use faer::Col;
use sinkflow::finite::{
    initial_coefficients, resolvent_matrix, FiniteSpace, Kernel, LcpParams, Resolvent,
};
use sinkflow::Cost;

const SIZES: [usize; 3] = [400, 1000, 2500];
const H: f64 = 0.01;

fn bench_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("finite_resolvent_step");
    g.sample_size(10);
    for &n in &SIZES {
        let space = FiniteSpace::grid_1d(0.0, 1.0, n, Cost::SqEuclidean).unwrap();
        let eps = 5.0 * space.min_dist2();
        let kernel = Kernel::new(&space, eps, &Default::default()).unwrap();
        let v: Vec<f64> = (0..n).map(|i| (space.point(i)[0] - 0.3).powi(2)).collect();
        let mu0 = vec![1.0 / n as f64; n];
        let (mut a, _) = initial_coefficients(&space, &kernel, &mu0, &Default::default()).unwrap();
        let mut res = Resolvent::new(&kernel, &v, H, LcpParams::default()).unwrap();
        for k in 1..=3 {
            a = res.step(&a, k).unwrap().a;
        }
        // warm: the support of the next step is cached
        res.step(&a, 4).unwrap();
        g.bench_with_input(BenchmarkId::new("cached_support", n), &n, |b, _| {
            b.iter(|| res.step(black_box(&a), 5).unwrap())
        });
        let m = resolvent_matrix(&kernel, &v, H);
        let bvec = kernel.apply(&a);
        g.bench_with_input(BenchmarkId::new("dense_lu_per_step", n), &n, |b, _| {
            b.iter(|| {
                let rhs = Col::<f64>::from_fn(n, |i| bvec[i]);
                black_box(m.partial_piv_lu().solve(&rhs))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
