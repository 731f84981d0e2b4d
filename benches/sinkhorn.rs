//! Criterion benchmarks of the Sinkhorn engine (seeded inputs, setup outside the timing).
//!
//! Groups (ids are `variant/N`):
//! * `iteration`: one log-domain iteration (two half-steps, 2NM log-sum-exp terms) through the
//!   step API, N = M in {1000, 4000, 16000}, d in {2, 16}, dense vs streaming, on 1 and 2
//!   threads; plus streaming at N = M = 100 000, d = 2 (one iteration is 2·10^10 terms);
//! * `solve`: time to L1 marginal error 1e-6 from zero potentials: N = 1000 with d = 2 at
//!   eps in {1, 0.1, 0.01} and d = 16 at eps in {1, 0.1}; N = 4000, d = 2 at eps in {1, 0.1};
//!   N = 16 000, d = 2 at eps = 1. `SINKFLOW_BENCH_FULL=1` adds the rest of
//!   N in {1000, 4000, 16000} × d in {2, 16} × eps in {1, 0.1, 0.01} that is not absurd (each
//!   such solve takes from tens of seconds to many minutes, times 10 samples); time to
//!   tolerance is iterations × the cost of one iteration, and the iteration counts, which do
//!   not depend on the machine, are in `benches/results/peers.*`;
//! * `self_and_debiased`: an OT solve, the symmetric self solve and the debiased divergence of the
//!   same clouds, side by side (targets: symmetric ≤ 0.6×, divergence ≤ 2× the OT solve);
//! * `particles`: one drift evaluation of the Sinkhorn particle flow (cold and warm-started);
//! * `acceleration`: time to L1 1e-6 of the default solve (adaptive over-relaxation, eps-scaling
//!   at small eps) against the plain one, N = M = 1000, d = 2, X ~ N(0, I), Y ~ N(1, I/2) (the
//!   peer harness's input), eps in {1, 0.1, 0.01}; the iteration counts of both are printed
//!   once per case (theory/sinkhorn.md §4c);
//! * the Gaussian closed forms are in `benches/gaussian.rs`.
//!
//! Conventions: cost |x-y|^2 (`Cost::SqEuclidean`, the default), eps in the units of that cost,
//! uniform weights, stopping on the L1 violation of the first marginal (theory/sinkhorn.md §3).
//! Points are standard normal scaled by sqrt(2/d), so that E|x-y|^2 = 4 in every dimension and
//! a given eps means the same regime for d = 2 and d = 16 (unscaled, d = 16 at eps = 0.1
//! needs ~10^4 iterations and a single solve takes minutes).
//!
//! `cargo bench --bench sinkhorn` runs the default sweep (about 25 minutes on 2 cores);
//! a single group: `cargo bench --bench sinkhorn -- solve/`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sinkflow::particles::drift::DriftParams;
use sinkflow::particles::flow::velocity;
use sinkflow::sinkhorn::{
    divergence, solve, solve_symmetric, Geometry, Mode, PointCloud, SinkhornParams, Stepper,
};

/// The peer harness's input: `n` points of N(mean·1, sd² I) in dimension `d`.
fn gaussian_cloud(seed: u64, n: usize, d: usize, mean: f64, sd: f64) -> PointCloud {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            mean + sd * z
        })
        .collect();
    PointCloud::from_flat(v, d, None, false).expect("valid cloud")
}

fn points(seed: u64, n: usize, d: usize, shift: f64) -> Vec<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let scale = (2.0 / d as f64).sqrt();
    (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            scale * z + shift
        })
        .collect()
}

fn cloud(seed: u64, n: usize, d: usize, shift: f64) -> PointCloud {
    PointCloud::from_flat(points(seed, n, d, shift), d, None, false).expect("valid cloud")
}

/// Run `f` on a rayon pool of `threads` threads.
fn on_threads<R: Send>(pool: &rayon::ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    pool.install(f)
}

fn full() -> bool {
    std::env::var_os("SINKFLOW_BENCH_FULL").is_some()
}

/// The CPU model (from `/proc/cpuinfo` where there is one) and the kernels' dispatched path,
/// recorded in the name of every per-iteration benchmark.
fn machine_tag() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().replace(' ', "_"))
        })
        .unwrap_or_else(|| "unknown-cpu".into());
    let path = sinkflow::sinkhorn::kernel::simd_path()
        .map(|p| p.name())
        .unwrap_or("invalid-SINKFLOW_SIMD");
    format!("{model}/{path}")
}

fn iteration(c: &mut Criterion) {
    let tag = machine_tag();
    eprintln!("per-iteration benchmarks on {tag}");
    let mut g = c.benchmark_group(format!("iteration/{tag}"));
    g.sample_size(10);
    let pools: Vec<(usize, rayon::ThreadPool)> = [1usize, 2]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool");
            (t, pool)
        })
        .collect();
    let mut cases: Vec<(usize, usize, Mode)> = Vec::new();
    for n in [1000usize, 4000, 16000] {
        for d in [2usize, 16] {
            for mode in [Mode::Dense, Mode::Streaming] {
                cases.push((n, d, mode));
            }
        }
    }
    cases.push((100_000, 2, Mode::Streaming));
    for (n, d, mode) in cases {
        let x = cloud(1, n, d, 0.0);
        let y = cloud(2, n, d, 0.5);
        g.throughput(Throughput::Elements((2 * n * n) as u64));
        let p = SinkhornParams::new(1.0).with_mode(mode);
        let mut st = Stepper::from_geometry(
            Geometry::Clouds { x: &x, y: &y },
            &p,
            &vec![0.0; n],
            &vec![0.0; n],
        )
        .expect("stepper");
        for (t, pool) in &pools {
            // 1 thread only where it takes seconds, not minutes.
            if *t == 1 && n > 16000 {
                continue;
            }
            let id = BenchmarkId::new(format!("{}-d{d}-{t}t", mode.name()), n);
            g.bench_function(id, |b| {
                b.iter(|| on_threads(pool, || black_box(st.run(2, false))))
            });
        }
    }
    g.finish();
}

fn to_tolerance(c: &mut Criterion) {
    let mut g = c.benchmark_group("solve");
    g.sample_size(10);
    // Default sweep: what runs in minutes. SINKFLOW_BENCH_FULL=1 adds the slow corners
    // (each solve there takes from tens of seconds to many minutes, times 10 samples).
    let mut cases = vec![
        (1000usize, 2usize, 1.0),
        (1000, 2, 0.1),
        (1000, 2, 0.01),
        (1000, 16, 1.0),
        (1000, 16, 0.1),
        (4000, 2, 1.0),
        (4000, 2, 0.1),
        (16000, 2, 1.0),
    ];
    if full() {
        cases.extend([
            (1000, 16, 0.01),
            (4000, 2, 0.01),
            (4000, 16, 1.0),
            (4000, 16, 0.1),
            (4000, 16, 0.01),
            (16000, 2, 0.1),
            (16000, 2, 0.01),
        ]);
    }
    for (n, d, eps) in cases {
        let x = cloud(3, n, d, 0.0);
        let y = cloud(4, n, d, 0.5);
        let modes: &[Mode] = if n >= 16000 {
            &[Mode::Streaming]
        } else {
            &[Mode::Dense, Mode::Streaming]
        };
        for &mode in modes {
            let p = SinkhornParams::new(eps)
                .with_tol(1e-6)
                .with_max_iters(100_000)
                .with_mode(mode);
            let id = BenchmarkId::new(format!("{}-d{d}-eps{eps}", mode.name()), n);
            g.bench_function(id, |b| {
                b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
            });
        }
    }
    g.finish();
}

fn self_and_debiased(c: &mut Criterion) {
    let mut g = c.benchmark_group("self_and_debiased");
    g.sample_size(10);
    for (n, eps) in [(1000usize, 1.0), (1000, 0.1), (1000, 0.01), (4000, 0.1)] {
        let x = cloud(5, n, 2, 0.0);
        let y = cloud(6, n, 2, 0.5);
        let p = SinkhornParams::new(eps)
            .with_tol(1e-6)
            .with_max_iters(100_000);
        let tag = format!("d2-eps{eps}");
        g.bench_function(BenchmarkId::new(format!("ot-{tag}"), n), |b| {
            b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
        });
        g.bench_function(BenchmarkId::new(format!("symmetric-{tag}"), n), |b| {
            b.iter(|| black_box(solve_symmetric(&x, &p).expect("solve")))
        });
        g.bench_function(BenchmarkId::new(format!("divergence-{tag}"), n), |b| {
            b.iter(|| black_box(divergence(&x, &y, &p).expect("solve")))
        });
    }
    g.finish();
}

/// Default (accelerated) vs plain solve to L1 1e-6: time, and the iteration counts on stderr.
fn acceleration(c: &mut Criterion) {
    let mut g = c.benchmark_group("acceleration");
    g.sample_size(10);
    let n = 1000;
    let x = gaussian_cloud(11, n, 2, 0.0, 1.0);
    let y = gaussian_cloud(12, n, 2, 1.0, 0.5f64.sqrt());
    for eps in [1.0, 0.1, 0.01] {
        let default = SinkhornParams::new(eps)
            .with_tol(1e-6)
            .with_max_iters(100_000);
        let plain = default.plain();
        let (od, op) = (
            solve(&x, &y, &default).expect("solve"),
            solve(&x, &y, &plain).expect("solve"),
        );
        eprintln!(
            "acceleration N={n} d=2 eps={eps}: iterations default {} plain {} ({:?}); OT {} vs {}",
            od.iterations, op.iterations, od.acceleration, od.ot, op.ot
        );
        for (name, p) in [("default", default), ("plain", plain)] {
            g.bench_function(BenchmarkId::new(format!("{name}-d2-eps{eps}"), n), |b| {
                b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
            });
        }
    }
    g.finish();
}

fn particle_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("particles");
    g.sample_size(10);
    let n = 1000;
    let x = DMatrix::from_row_slice(n, 2, &points(7, n, 2, 0.0));
    let y = DMatrix::from_row_slice(n, 2, &points(8, n, 2, 1.0));
    let params = DriftParams {
        tau: 0.1,
        tol: 1e-6,
        ..DriftParams::default()
    };
    g.bench_function(BenchmarkId::new("drift-cold-d2-tau0.1", n), |b| {
        b.iter(|| black_box(velocity(&x, &y, &params, None).expect("drift")))
    });
    // Warm start from the potentials of a nearby configuration (one explicit Euler step of the
    // flow, dt = 0.01), as inside `particle_flow`.
    let (v, out) = velocity(&x, &y, &params, None).expect("drift");
    let x1 = &x + v * 0.01;
    let warm = out
        .potentials
        .expect("converged drift keeps its potentials");
    g.bench_function(BenchmarkId::new("drift-warm-d2-tau0.1", n), |b| {
        b.iter(|| black_box(velocity(&x1, &y, &params, Some(&warm)).expect("drift")))
    });
    g.finish();
}

/// The sparse (truncated-kernel) mode against streaming: the same eps-scaled solve, a fixed
/// budget of 20 iterations at the target eps (so the time is work, not convergence luck), on
/// the pair (X ~ N(0, I_2), Y ~ N(1, 0.5 I_2) up to the scale of `points`).
/// Default: N = 2000, eps in {0.01, 1e-3}; `SINKFLOW_BENCH_FULL=1` adds N = 8000 and eps = 0.1.
/// theory/sinkhorn.md §12.
fn sparse_vs_dense(c: &mut Criterion) {
    let mut g = c.benchmark_group("sparse_vs_dense");
    g.sample_size(10);
    let (sizes, epss): (&[usize], &[f64]) = if full() {
        (&[2000, 8000], &[0.1, 0.01, 1e-3])
    } else {
        (&[2000], &[0.01, 1e-3])
    };
    for &n in sizes {
        let x = cloud(1, n, 2, 0.0);
        let y = cloud(2, n, 2, 1.0);
        for &eps in epss {
            for mode in [Mode::Streaming, Mode::Sparse] {
                let p = SinkhornParams::new(eps)
                    .with_tol(1e-12)
                    .with_max_iters(20)
                    .with_mode(mode)
                    .with_eps_scaling();
                g.bench_function(
                    BenchmarkId::new(format!("{}/eps{eps}", mode.name()), n),
                    |b| b.iter(|| solve(&x, &y, &p).expect("solve")),
                );
            }
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    iteration,
    to_tolerance,
    self_and_debiased,
    particle_step,
    acceleration,
    sparse_vs_dense
);
criterion_main!(benches);
