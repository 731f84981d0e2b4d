//! Criterion benchmarks of the PMA part (seeded / deterministic inputs, setup outside timing).
//!
//! Groups (ids are `variant/side`):
//! * `grid_half_step`: one half-step (`Stepper::step_f`) on an n×n tensor grid of [0,1)² with
//!   the periodic cost d²/2 at eps = 4/n² (the smallest safe eps), through the separable kernel
//!   (`Geometry::Grid`) and through the engine's point-cloud kernel on the same points (the O(N²)
//!   path, streaming: a dense 128² cost matrix would take 2 GiB). n in {64, 128}; n = 256
//!   (separable, and the O(N²) path, ~5·10⁹ terms per half-step) with `SINKFLOW_BENCH_FULL=1`.
//!   The point-cloud path uses the non-periodic cost |x−y|²/2 (clouds have no torus); the
//!   work per term is the same. Target (issue 11): separable ≥ 50× faster at 128².
//! * `pma_step`: one explicit and one implicit (Newton, sparse 9-point Jacobian, faer sparse LU)
//!   PMA step on the 2-D torus at 128², and one implicit (Newton, faer LU) PMA step on a 1-D grid
//!   of 1024 nodes.
//! * `end_to_end`: the quick 2-D IPFP-vs-PMA comparison of validation `pma-grid2d` (32² torus,
//!   t = 0.05: the explicit PMA and IPFP at eps = 0.00625, k = 8, with the barycentric projection).
//!
//! `cargo bench --bench pma` (a few minutes on 2 cores).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sinkflow::pma::grid::{catalogue, solve_pma, Domain, Grid1d, PmaParams, Scheme};
use sinkflow::pma::grid2d::{catalogue_2d, solve_pma_2d, solve_pma_2d_from, Grid2d};
use sinkflow::sinkhorn::{Geometry, Mode, PointCloud, SinkhornParams, Stepper, TensorGrid};
use sinkflow::Cost;

fn full() -> bool {
    std::env::var_os("SINKFLOW_BENCH_FULL").is_some()
}

fn weights(n: usize, shift: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = ((k / n) as f64 / n as f64, (k % n) as f64 / n as f64);
            1.0 + 0.3
                * (std::f64::consts::TAU * (i + shift)).cos()
                * (std::f64::consts::TAU * j).cos()
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

fn grid_half_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid_half_step");
    g.sample_size(10);
    let mut sides = vec![64usize, 128];
    if full() {
        sides.push(256);
    }
    for &n in &sides {
        let axis: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let axes = vec![axis.clone(), axis];
        let (a, b) = (weights(n, 0.0), weights(n, 0.25));
        let eps = 4.0 / (n * n) as f64;
        let params = SinkhornParams::new(eps).with_cost(Cost::HalfSqEuclidean);
        let tg = TensorGrid::periodic(
            axes.clone(),
            axes,
            vec![1.0, 1.0],
            Some(a.clone()),
            Some(b.clone()),
            false,
        )
        .expect("valid grid");
        let zeros = vec![0.0; n * n];
        let mut st =
            Stepper::from_geometry(Geometry::Grid(&tg), &params, &zeros, &zeros).expect("stepper");
        g.bench_with_input(BenchmarkId::new("separable", n), &n, |bch, _| {
            bch.iter(|| black_box(st.step_f()))
        });
        if n <= 128 || full() {
            let pts: Vec<f64> = (0..n * n)
                .flat_map(|k| [(k / n) as f64 / n as f64, (k % n) as f64 / n as f64])
                .collect();
            let x = PointCloud::from_flat(pts.clone(), 2, Some(a), false).expect("cloud");
            let y = PointCloud::from_flat(pts, 2, Some(b), false).expect("cloud");
            let p = SinkhornParams {
                mode: Mode::Streaming,
                ..params
            };
            let mut sd =
                Stepper::from_geometry(Geometry::Clouds { x: &x, y: &y }, &p, &zeros, &zeros)
                    .expect("stepper");
            g.bench_with_input(BenchmarkId::new("pairwise", n), &n, |bch, _| {
                bch.iter(|| black_box(sd.step_f()))
            });
        }
    }
    g.finish();
}

/// The n×n torus of validation `pma-grid2d` and its potentials (f, g) of the manufactured pair.
fn torus_problem(n: usize) -> (Grid2d, Vec<f64>, Vec<f64>) {
    let grid = Grid2d::new(n).expect("grid");
    let gg = catalogue_2d(&grid, "cos:0.3:1").expect("g");
    let f = catalogue_2d(&grid, "pushed:0.2:cos_0.3_1").expect("f");
    (grid, f, gg)
}

fn pma_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("pma_step");
    g.sample_size(10);
    let n = 128;
    let (grid, f, gg) = torus_problem(n);
    let h = grid.h();
    let dt = h * h / 8.0;
    g.bench_function(BenchmarkId::new("explicit_2d", n), |bch| {
        bch.iter(|| black_box(solve_pma_2d(&grid, &f, &gg, dt, dt, 1).expect("step")))
    });
    // one backward-Euler step at 128² (Newton with the sparse 9-point Jacobian, faer sparse LU)
    // at dt = 0.01 (~650 times the explicit bound h²/4)
    let p2 = PmaParams {
        t_end: 0.01,
        dt: 0.01,
        samples: 1,
        scheme: Scheme::Implicit,
        ..PmaParams::default()
    };
    g.bench_function(BenchmarkId::new("implicit_2d", n), |bch| {
        bch.iter(|| black_box(solve_pma_2d_from(&grid, &f, &gg, None, &p2).expect("step")))
    });
    let m = 1024;
    let grid = Grid1d::new(Domain::Torus, m).expect("grid");
    let gg = catalogue(&grid, "cos:0.4:1").expect("g");
    let f = catalogue(&grid, "pushed:0.3:cos_0.4_1").expect("f");
    let p = PmaParams {
        t_end: 0.01,
        dt: 0.01,
        samples: 1,
        scheme: Scheme::Implicit,
        ..PmaParams::default()
    };
    g.bench_function(BenchmarkId::new("implicit_1d", m), |bch| {
        bch.iter(|| black_box(solve_pma(&grid, &f, &gg, &p).expect("step")))
    });
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    use sinkflow::pma::grid2d::ipfp_2d;
    let mut g = c.benchmark_group("end_to_end");
    g.sample_size(10);
    let n = 32;
    let (grid, f, gg) = torus_problem(n);
    let h = grid.h();
    let t = 0.05;
    let dt = t / (t / (h * h / 5.0)).ceil();
    g.bench_function(BenchmarkId::new("ipfp_vs_pma_2d", n), |bch| {
        bch.iter(|| {
            let p = solve_pma_2d(&grid, &f, &gg, t, dt, 1).expect("pma");
            let (_, it) = ipfp_2d(&grid, &f, &gg, 0.00625, t, 1).expect("ipfp");
            black_box((p, it))
        })
    });
    g.finish();
}

criterion_group!(benches, grid_half_step, pma_step, end_to_end);
criterion_main!(benches);
