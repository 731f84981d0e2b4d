//! Criterion benchmarks of one resolvent step of the finite-space flow (issue 10): the step with
//! an unchanged support (cached LU of M_SS, O(N²)) against a straightforward step that factors
//! the dense N × N resolvent matrix M afresh (O(N³)), at N = 400, 1000, 2500.
//!
//! Setup (outside the timed closures): 1-D grid of [0, 1], eps = 5 δ² (s = 5, cond(K) ≈ 1e5),
//! V = (x − 0.3)², h = 0.01, uniform start advanced 3 steps so the support is settled. Run with
//! `cargo bench --bench finite` (about a minute: the N = 2500 LU takes seconds per sample).
//! At s = 5 the kernel is exactly 0 in double beyond about 61 cells, and the cached step skips
//! those zeros in its products and triangular solves (theory/finite_flow.md §8); the dense
//! baseline does not. Each dense baseline is also timed with subnormal numbers flushed to zero
//! (`_flushed`), as the library's own factorisations are (theory/finite_flow.md §8c): the
//! far-field kernel entries make a plain LU several times slower on x86-64, so the plain row is
//! what a straightforward implementation costs and the flushed row isolates what the reuse of
//! factorisations gains.
//!
//! The end-to-end run (1000 steps on a 50 × 50 grid) takes minutes, so it runs only
//! when `SINKFLOW_BENCH_FLOW_50X50=1` is set: 50 × 50 grid of [-1, 1]², s = 3
//! (eps = 3 δ² ≈ 5.0e-3, cond(K) ≈ 6e5; K has no exact zeros there, so it is dense), the
//! tilted multi-well potential, uniform start, h = 0.02, 1000 steps (t = 20). The whole run is
//! timed once (criterion cannot repeat a run of minutes ten times); it prints the total, the
//! median and largest step, the factorisation counts and the largest KKT residual. Criterion
//! then measures, at the run's final state, one step with the cached support against a
//! straightforward step that factors the dense 2500 × 2500 M afresh (theory/finite_flow.md §8b).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use faer::linalg::solvers::Solve;
use faer::Col;
use sinkflow::finite::catalog::{uniform, Potential};
use sinkflow::finite::{
    initial_coefficients, mu_from_a, resolvent_matrix, FiniteSpace, Kernel, LcpParams, Resolvent,
};
use sinkflow::linalg::flush_subnormals;
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
        let dense_lu = || {
            let rhs = Col::<f64>::from_fn(n, |i| bvec[i]);
            black_box(m.partial_piv_lu().solve(&rhs))
        };
        g.bench_with_input(BenchmarkId::new("dense_lu_per_step", n), &n, |b, _| {
            b.iter(dense_lu)
        });
        g.bench_with_input(
            BenchmarkId::new("dense_lu_per_step_flushed", n),
            &n,
            |b, _| b.iter(|| flush_subnormals(dense_lu)),
        );
    }
    g.finish();
}

fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// The 1000-step 50 × 50 flow end to end (module docs), then one settled step against
/// a per-step dense LU at its final state.
fn bench_flow_50x50(c: &mut Criterion) {
    if std::env::var("SINKFLOW_BENCH_FLOW_50X50").is_err() {
        return;
    }
    const NX: usize = 50;
    const STEPS: usize = 1000;
    const DT: f64 = 0.02;
    let space = FiniteSpace::grid_2d((-1.0, 1.0, NX), (-1.0, 1.0, NX), Cost::SqEuclidean).unwrap();
    let n = space.len();
    let eps = 3.0 * space.min_dist2();
    let v = Potential::TiltedMultiwell.on(&space);
    let t_all = std::time::Instant::now();
    let kernel = Kernel::new(&space, eps, &Default::default()).unwrap();
    let (mut a, _) =
        initial_coefficients(&space, &kernel, &uniform(&space), &Default::default()).unwrap();
    let t_setup = t_all.elapsed().as_secs_f64();
    let mut res = Resolvent::new(&kernel, &v, DT, LcpParams::default()).unwrap();
    let mut times = Vec::with_capacity(STEPS);
    let mut kkt = 0.0f64;
    let mut support = n;
    for k in 1..=STEPS {
        let t = std::time::Instant::now();
        let sol = res.step(&a, k).unwrap();
        times.push(t.elapsed().as_secs_f64());
        kkt = kkt.max(sol.residual);
        support = sol.support.len();
        a = sol.a;
    }
    let total = t_all.elapsed().as_secs_f64();
    let steps_total: f64 = times.iter().sum();
    let first100: f64 = times[..100].iter().sum();
    let max_step = times.iter().cloned().fold(0.0, f64::max);
    let mass: f64 = mu_from_a(&kernel, &a).iter().sum();
    let m = resolvent_matrix(&kernel, &v, DT);
    let bvec = kernel.apply(&a);
    let dense_lu = || {
        let rhs = Col::<f64>::from_fn(n, |i| bvec[i]);
        black_box(m.partial_piv_lu().solve(&rhs))
    };
    let timed = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let dense_med = median((0..3).map(|_| timed(&|| drop(dense_lu()))).collect());
    // the same LU with subnormals flushed, as the run's own factorisations are
    let flushed_med = median(
        (0..3)
            .map(|_| timed(&|| drop(flush_subnormals(dense_lu))))
            .collect(),
    );
    println!(
        "finite_flow_50x50: N = {n}, eps = {eps:.4e}, cond(K) = {:.3e}, {STEPS} steps of h = {DT}",
        kernel.cond()
    );
    println!(
        "  end to end {total:.1} s (kernel + b-map {t_setup:.1} s, steps {steps_total:.1} s, first 100 steps {first100:.1} s); median step {:.4} s, largest {max_step:.3} s",
        median(times.clone())
    );
    println!(
        "  factorisations {} (complement path {}, complement fallbacks {}); largest KKT residual {kkt:.2e}; final support {support}, mass {mass:.6}",
        res.factorisations(),
        res.complement_factorisations(),
        res.complement_fallbacks()
    );
    println!(
        "  per-step dense LU of M (median of 3): {dense_med:.3} s; {STEPS} such steps {:.0} s = {:.1} x the run's steps",
        dense_med * STEPS as f64,
        dense_med * STEPS as f64 / steps_total
    );
    println!(
        "  the same LU with subnormals flushed (median of 3): {flushed_med:.3} s; {STEPS} such steps {:.0} s = {:.1} x the run's steps",
        flushed_med * STEPS as f64,
        flushed_med * STEPS as f64 / steps_total
    );
    let mut g = c.benchmark_group("finite_flow_50x50");
    g.sample_size(10);
    // warm: the final support is cached
    res.step(&a, STEPS + 1).unwrap();
    g.bench_function("settled_step", |b| {
        b.iter(|| res.step(black_box(&a), STEPS + 1).unwrap())
    });
    g.bench_function("dense_lu_per_step", |b| {
        b.iter(|| {
            let rhs = Col::<f64>::from_fn(n, |i| bvec[i]);
            black_box(m.partial_piv_lu().solve(&rhs))
        })
    });
    g.bench_function("dense_lu_per_step_flushed", |b| {
        b.iter(|| flush_subnormals(dense_lu))
    });
    g.finish();
}

criterion_group!(benches, bench_step, bench_flow_50x50);
criterion_main!(benches);
