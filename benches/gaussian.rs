//! Criterion benchmarks of the Gaussian closed forms and of one flow right-hand side.
//!
//! Sizes d = 2, 10, 50; seeded inputs from `gaussian::catalog`; all setup outside the timed
//! closures. Run with `cargo bench --bench gaussian`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sinkflow::gaussian::flow::covariance_rhs;
use sinkflow::gaussian::{catalog, ot_eps, sinkhorn_divergence, velocity, EntropicOt};
use sinkflow::Cost;

const SIZES: [usize; 3] = [2, 10, 50];
const EPS: f64 = 0.1;

fn pair(d: usize) -> (sinkflow::gaussian::Gaussian, sinkflow::gaussian::Gaussian) {
    let mut rng = catalog::seeded(2026 + d as u64);
    let mu = catalog::random_gaussian(d, 100.0, &mut rng);
    let nu = catalog::random_gaussian(d, 100.0, &mut rng);
    (mu, nu)
}

fn bench_closed_forms(c: &mut Criterion) {
    let mut g = c.benchmark_group("gaussian");
    for &d in &SIZES {
        let (mu, nu) = pair(d);
        g.bench_with_input(BenchmarkId::new("ot_eps", d), &d, |b, _| {
            b.iter(|| ot_eps(black_box(&mu), black_box(&nu), EPS, Cost::SqEuclidean).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("sinkhorn_divergence", d), &d, |b, _| {
            b.iter(|| {
                sinkhorn_divergence(black_box(&mu), black_box(&nu), EPS, Cost::SqEuclidean).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("entropic_ot_full", d), &d, |b, _| {
            b.iter(|| {
                EntropicOt::new(black_box(&mu), black_box(&nu), EPS, Cost::SqEuclidean).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("velocity", d), &d, |b, _| {
            b.iter(|| velocity(black_box(&mu), black_box(&nu), EPS, Cost::SqEuclidean).unwrap())
        });
        let s = mu.cov().clone();
        g.bench_with_input(BenchmarkId::new("flow_rhs", d), &d, |b, _| {
            b.iter(|| {
                covariance_rhs(black_box(&s), black_box(&nu), EPS, Cost::SqEuclidean).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_closed_forms);
criterion_main!(benches);
