//! The separable tensor-grid kernel of the engine (`Geometry::Grid`, `theory/pma.md` §6) against
//! the dense kernel on the same points: half-steps and full solves agree to 1e-12 relative, for
//! squared-Euclidean, half and periodic costs, in 1-D, 2-D and 3-D.

use nalgebra::DMatrix;
use rand::Rng;
use sinkflow::sinkhorn::{
    solve_geometry, CostMatrix, Geometry, Mode, PointCloud, SinkhornParams, Stepper, TensorGrid,
};
use sinkflow::Cost;

fn axis(n: usize, lo: f64, hi: f64, jitter: f64, rng: &mut impl Rng) -> Vec<f64> {
    (0..n)
        .map(|i| lo + (hi - lo) * (i as f64 + jitter * rng.random_range(-0.3..0.3)) / n as f64)
        .collect()
}

fn weights(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|_| rng.random_range(0.2..1.0)).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|t| t / s).collect()
}

fn cloud(grid: &TensorGrid, first: bool) -> PointCloud {
    let (n, d) = (if first { grid.len_x() } else { grid.len_y() }, grid.dim());
    let pts: Vec<f64> = (0..n)
        .flat_map(|i| {
            if first {
                grid.x_point(i)
            } else {
                grid.y_point(i)
            }
        })
        .collect();
    let w = if first { grid.a() } else { grid.b() };
    PointCloud::from_flat(pts, d, Some(w.to_vec()), false).unwrap()
}

/// max |a - b| / max |b| over the potentials after `steps` half-steps of both steppers.
fn stepper_gap(grid: &TensorGrid, dense: Geometry<'_>, eps: f64, cost: Cost, steps: usize) -> f64 {
    let params = SinkhornParams::new(eps).with_cost(cost);
    let params_dense = SinkhornParams {
        mode: Mode::Dense,
        ..params
    };
    let (n, m) = (grid.len_x(), grid.len_y());
    let mut s1 =
        Stepper::from_geometry(Geometry::Grid(grid), &params, &vec![0.0; n], &vec![0.0; m])
            .unwrap();
    let mut s2 =
        Stepper::from_geometry(dense, &params_dense, &vec![0.0; n], &vec![0.0; m]).unwrap();
    let mut worst: f64 = 0.0;
    for _ in 0..steps {
        s1.half_step();
        s2.half_step();
        let scale = s2
            .f()
            .iter()
            .chain(s2.g())
            .fold(0.0f64, |a, &b| a.max(b.abs()));
        let diff = s1
            .f()
            .iter()
            .zip(s2.f())
            .chain(s1.g().iter().zip(s2.g()))
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
        worst = worst.max(diff / scale);
    }
    worst
}

#[test]
fn grid_half_steps_equal_the_dense_kernel_euclidean() {
    let mut rng = sinkflow::gaussian::catalog::seeded(3);
    for (dims_x, dims_y) in [
        (vec![40], vec![33]),
        (vec![12, 10], vec![9, 11]),
        (vec![5, 4, 6], vec![6, 5, 3]),
    ] {
        let xa: Vec<Vec<f64>> = dims_x
            .iter()
            .map(|&n| axis(n, -1.0, 1.0, 1.0, &mut rng))
            .collect();
        let ya: Vec<Vec<f64>> = dims_y
            .iter()
            .map(|&n| axis(n, -0.5, 1.5, 1.0, &mut rng))
            .collect();
        let nx: usize = dims_x.iter().product();
        let ny: usize = dims_y.iter().product();
        let g = TensorGrid::new(
            xa,
            ya,
            Some(weights(nx, &mut rng)),
            Some(weights(ny, &mut rng)),
            false,
        )
        .unwrap();
        let (x, y) = (cloud(&g, true), cloud(&g, false));
        for (eps, cost) in [
            (0.05, Cost::SqEuclidean),
            (0.5, Cost::SqEuclidean),
            (0.02, Cost::HalfSqEuclidean),
        ] {
            let gap = stepper_gap(&g, Geometry::Clouds { x: &x, y: &y }, eps, cost, 20);
            // both are log-domain evaluations of the same sums: rounding of a few ulp per axis
            // pass, amplified by at most |c|/eps in the potentials
            assert!(gap < 1e-12, "{dims_x:?} eps {eps} {cost}: gap {gap:e}");
        }
    }
}

#[test]
fn grid_half_steps_equal_the_dense_kernel_periodic() {
    let mut rng = sinkflow::gaussian::catalog::seeded(4);
    for dims in [vec![48], vec![14, 12]] {
        let ax: Vec<Vec<f64>> = dims
            .iter()
            .map(|&n| (0..n).map(|i| i as f64 / n as f64).collect())
            .collect();
        let n: usize = dims.iter().product();
        let period = vec![1.0; dims.len()];
        let g = TensorGrid::periodic(
            ax.clone(),
            ax,
            period,
            Some(weights(n, &mut rng)),
            Some(weights(n, &mut rng)),
            false,
        )
        .unwrap();
        let c = DMatrix::from_fn(n, n, |i, j| g.cost(i, j, 0.5));
        let cm = CostMatrix::new(&c, Some(g.a().to_vec()), Some(g.b().to_vec()), false).unwrap();
        for eps in [0.002, 0.05] {
            let gap = stepper_gap(&g, Geometry::Matrix(&cm), eps, Cost::HalfSqEuclidean, 20);
            assert!(gap < 1e-12, "{dims:?} eps {eps}: gap {gap:e}");
        }
        // the periodic distance: the largest cost is (1/2)^2 d / 2 on the unit torus
        let cmax = c.max();
        assert!(cmax <= 0.125 * dims.len() as f64 + 1e-15);
    }
}

#[test]
fn grid_solve_equals_the_dense_solve() {
    let mut rng = sinkflow::gaussian::catalog::seeded(5);
    let xa = vec![
        axis(20, 0.0, 1.0, 0.0, &mut rng),
        axis(18, 0.0, 1.0, 0.0, &mut rng),
    ];
    let g = TensorGrid::new(xa.clone(), xa, None, None, false).unwrap();
    let x = cloud(&g, true);
    let params = SinkhornParams::new(0.01);
    let a = solve_geometry(Geometry::Grid(&g), &params, None).unwrap();
    let b = solve_geometry(Geometry::Clouds { x: &x, y: &x }, &params, None).unwrap();
    assert!(a.converged && b.converged);
    assert_eq!(a.iterations, b.iterations);
    assert!((a.ot - b.ot).abs() < 1e-12 * b.ot.abs());
}

#[test]
fn bad_grids_are_rejected() {
    assert!(TensorGrid::new(vec![], vec![], None, None, false).is_err());
    assert!(TensorGrid::new(vec![vec![]], vec![vec![0.0]], None, None, false).is_err());
    assert!(TensorGrid::new(
        vec![vec![0.0, f64::NAN]],
        vec![vec![0.0]],
        None,
        None,
        false
    )
    .is_err());
    assert!(TensorGrid::new(
        vec![vec![0.0]],
        vec![vec![0.0], vec![1.0]],
        None,
        None,
        false
    )
    .is_err());
    assert!(TensorGrid::periodic(
        vec![vec![0.0]],
        vec![vec![0.0]],
        vec![0.0],
        None,
        None,
        false
    )
    .is_err());
    let huge = vec![vec![0.0; 1 << 15]; 2];
    assert!(TensorGrid::new(huge.clone(), huge, None, None, false).is_err());
    assert!(TensorGrid::new(
        vec![vec![0.0, 1.0]],
        vec![vec![0.0]],
        Some(vec![0.7, 0.7]),
        None,
        false
    )
    .is_err());
}
