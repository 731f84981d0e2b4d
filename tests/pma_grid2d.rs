//! PMA and IPFP on the 2-D torus (`theory/pma.md` §4.6): O(h²) to the manufactured Brenier map,
//! the CFL bound, IPFP through the separable engine kernel against the PMA as eps -> 0.

use sinkflow::pma::grid2d::{catalogue_2d, ipfp_2d, manufactured_map, solve_pma_2d, Grid2d};
use sinkflow::pma::PmaError;

const C: f64 = 0.2;

fn pair(n: usize) -> (Grid2d, Vec<f64>, Vec<f64>) {
    let grid = Grid2d::new(n).unwrap();
    let g = catalogue_2d(&grid, "cos:0.3:1").unwrap();
    let f = catalogue_2d(&grid, "pushed:0.2:cos_0.3_1").unwrap();
    (grid, f, g)
}

fn grad_gap(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn steady_state_converges_to_the_manufactured_map_at_second_order() {
    let mut errs = Vec::new();
    for n in [16usize, 32] {
        let (grid, f, g) = pair(n);
        let h = grid.h();
        // the slowest mode decays at ~40: t = 0.6 leaves e^{-24}, far below O(h^2)
        let t_end = 0.6;
        let dt = t_end / (t_end / (h * h / 5.0)).ceil();
        let s = solve_pma_2d(&grid, &f, &g, t_end, dt, 1).unwrap();
        let exact: Vec<[f64; 2]> = (0..n * n)
            .map(|k| manufactured_map(C, grid.point(k)).0)
            .collect();
        errs.push(grad_gap(&s[1].grad_phi, &exact));
    }
    let ratio = errs[0] / errs[1];
    // O(h^2): ratio 4 per halving; measured 3.84 at n = 16 -> 32 (pre-asymptotic by 4%)
    assert!((ratio - 4.0).abs() < 0.4, "ratio {ratio} ({errs:?})");
}

#[test]
fn cfl_and_coarse_grid_are_bad_input() {
    let (grid, f, g) = pair(16);
    let h = grid.h();
    // at phi_0 = |x|^2/2, det H / tr H = 1/2: the bound is h^2/4
    let dt = 0.01 / (0.01 / (0.3 * h * h)).floor();
    match solve_pma_2d(&grid, &f, &g, 0.01, dt, 1) {
        Err(PmaError::Cfl { step, dt_max, .. }) => {
            assert_eq!(step, 1);
            assert!((dt_max - 0.25 * h * h).abs() < 1e-15);
        }
        other => panic!("expected a CFL error, got {other:?}"),
    }
    assert!(matches!(
        ipfp_2d(&grid, &f, &g, 1e-3, 0.1, 1),
        Err(PmaError::GridTooCoarse { .. })
    ));
    assert!(solve_pma_2d(&grid, &f[..10], &g, 0.01, 1e-4, 1).is_err());
    assert!(catalogue_2d(&grid, "pushed:0.6:uniform").is_err());
}

#[test]
fn ipfp_2d_tends_to_the_pma() {
    let (grid, f, g) = pair(32);
    let h = grid.h();
    let t_end = 0.05;
    let dt = t_end / (t_end / (h * h / 5.0)).ceil();
    let pma = solve_pma_2d(&grid, &f, &g, t_end, dt, 1).unwrap();
    let mut errs = Vec::new();
    for eps in [0.0125, 0.00625] {
        let (k, its) = ipfp_2d(&grid, &f, &g, eps, t_end, 1).unwrap();
        let it = &its[1];
        assert_eq!(k as f64, (t_end / eps).round());
        let mass: f64 = it.rho.iter().sum::<f64>() * h * h;
        assert!((mass - 1.0).abs() < 1e-10, "mass {mass}");
        errs.push(grad_gap(&it.grad_phi, &pma[1].grad_phi));
    }
    // O(eps) (the 1-D slope is 0.98); with k = 4 and 8 steps the ratio is pre-asymptotic
    let ratio = errs[0] / errs[1];
    assert!(ratio > 1.6 && ratio < 2.4, "ratio {ratio} ({errs:?})");
}
