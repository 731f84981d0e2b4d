//! Criterion benchmarks of the Sinkhorn engine (seeded inputs, setup outside the timing).
//!
//! * `iteration/*`: one log-domain iteration (two half-steps, 2NM log-sum-exp terms) through
//!   the step API, N = M in {1000, 4000}, d in {2, 16}, dense vs streaming;
//! * `solve/*`: time to tolerance 1e-6 (L1 marginal), eps in {1, 0.1};
//!
//! Points are standard normal scaled by sqrt(2/d), so that E|x-y|^2 = 4 in every dimension and
//! eps in {1, 0.1} means the same regime for d = 2 and d = 16 (unscaled, d = 16 at eps = 0.1
//! needs ~10^4 iterations and a single solve takes minutes).
//! * `symmetric`, `divergence`: the averaged self solve and the debiased divergence.
//!
//! `cargo bench --bench sinkhorn -- --quick` runs in a few minutes on 2 cores.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sinkflow::sinkhorn::{
    divergence, solve, solve_symmetric, Geometry, Mode, PointCloud, SinkhornParams, Stepper,
};

fn cloud(seed: u64, n: usize, d: usize, shift: f64) -> PointCloud {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let scale = (2.0 / d as f64).sqrt();
    let pts: Vec<f64> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            scale * z + shift
        })
        .collect();
    PointCloud::from_flat(pts, d, None, false).expect("valid cloud")
}

fn iteration(c: &mut Criterion) {
    let mut g = c.benchmark_group("iteration");
    g.sample_size(10);
    for &n in &[1000usize, 4000] {
        for &d in &[2usize, 16] {
            let x = cloud(1, n, d, 0.0);
            let y = cloud(2, n, d, 0.5);
            g.throughput(Throughput::Elements((2 * n * n) as u64));
            for mode in [Mode::Dense, Mode::Streaming] {
                let p = SinkhornParams::new(1.0).with_mode(mode);
                let mut st = Stepper::from_geometry(
                    Geometry::Clouds { x: &x, y: &y },
                    &p,
                    &vec![0.0; n],
                    &vec![0.0; n],
                )
                .expect("stepper");
                let id = BenchmarkId::new(format!("{}-d{d}", mode.name()), n);
                g.bench_function(id, |b| b.iter(|| black_box(st.run(2, false))));
            }
        }
    }
    g.finish();
}

fn to_tolerance(c: &mut Criterion) {
    let mut g = c.benchmark_group("solve");
    g.sample_size(10);
    for &(n, d, eps) in &[
        (1000usize, 2usize, 1.0),
        (1000, 2, 0.1),
        (1000, 16, 1.0),
        (1000, 16, 0.1),
        (4000, 2, 1.0),
    ] {
        let x = cloud(3, n, d, 0.0);
        let y = cloud(4, n, d, 0.5);
        for mode in [Mode::Dense, Mode::Streaming] {
            let p = SinkhornParams::new(eps).with_tol(1e-6).with_mode(mode);
            let id = BenchmarkId::new(format!("{}-d{d}-eps{eps}", mode.name()), n);
            g.bench_function(id, |b| {
                b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
            });
        }
    }
    g.finish();
}

fn symmetric_and_divergence(c: &mut Criterion) {
    let mut g = c.benchmark_group("debiased");
    g.sample_size(10);
    let x = cloud(5, 1000, 2, 0.0);
    let y = cloud(6, 1000, 2, 0.5);
    let p = SinkhornParams::new(0.1).with_tol(1e-6);
    g.bench_function("symmetric/1000-d2-eps0.1", |b| {
        b.iter(|| black_box(solve_symmetric(&x, &p).expect("solve")))
    });
    g.bench_function("divergence/1000-d2-eps0.1", |b| {
        b.iter(|| black_box(divergence(&x, &y, &p).expect("solve")))
    });
    g.finish();
}

criterion_group!(benches, iteration, to_tolerance, symmetric_and_divergence);
criterion_main!(benches);
