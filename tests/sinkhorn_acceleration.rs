//! Over-relaxation of the alternating solver (`SinkhornParams::over_relaxation`,
//! `theory/sinkhorn.md` §4b): same solution, fewer iterations, Young's rate, and the documented
//! parameter range.

mod common;

use common::{cloud, rel};
use sinkflow::sinkhorn::{solve, SinkhornError, SinkhornParams};

/// Geometric-mean ratio of `h` over `[from, to)`.
fn rate(h: &[f64], from: usize, to: usize) -> f64 {
    (h[to - 1] / h[from]).powf(1.0 / (to - 1 - from) as f64)
}

/// At eps = 0.01 (unit-scale clouds, slow linear rate θ close to 1) the relaxed solves reach the
/// same OT_eps — every solve stops at a marginal violation ≤ 1e-10, which moves OT_eps by at
/// most ~max|f|·1e-10, hence the 1e-8 relative tolerance — in fewer iterations, and the returned
/// pair keeps the plain contract (its reported violation is ≤ tol).
#[test]
fn over_relaxation_converges_to_the_same_solution_in_fewer_iterations() {
    let x = cloud(11, 200, 2, 0.0, true);
    let y = cloud(12, 180, 2, 0.5, true);
    let plain = SinkhornParams::new(0.01)
        .with_tol(1e-10)
        .with_max_iters(200_000);
    let a = solve(&x, &y, &plain).unwrap();
    assert!(a.converged);
    for (name, p) in [
        ("omega = 1.9", plain.with_over_relaxation(1.9)),
        ("adaptive", plain.with_adaptive_over_relaxation()),
    ] {
        let b = solve(&x, &y, &p).unwrap();
        assert!(b.converged && b.marginal_error <= 1e-10, "{name}");
        assert!(rel(a.ot, b.ot) <= 1e-8, "{name}: {} vs {}", a.ot, b.ot);
        let ratio = a.iterations as f64 / b.iterations as f64;
        eprintln!(
            "iterations: plain {}, {name}: {} (ratio {ratio:.2})",
            a.iterations, b.iterations
        );
        // Young: the local rate goes from θ to about 1 − 2√(1 − θ); a factor 2 is a clear gain.
        assert!(ratio > 2.0, "{name}: ratio {ratio}");
    }
    // omega = 1 is plain Sinkhorn, bit for bit.
    let one = solve(&x, &y, &plain.with_over_relaxation(1.0)).unwrap();
    assert_eq!(one.iterations, a.iterations);
    assert_eq!(one.ot.to_bits(), a.ot.to_bits());
}

/// Young's theorem for the two-block SOR: for ω above the optimum ω* = 2/(1 + √(1 − θ)) the
/// local rate is exactly ω − 1 (a complex-conjugate pair of modulus ω − 1). We measure θ from
/// the tail of a plain solve, relax with ω = ω* + 0.05 and compare the geometric-mean rate of
/// the relaxed tail with ω − 1. The tolerance 0.01 covers the oscillation of a complex pair over
/// a finite window.
#[test]
fn relaxed_rate_above_the_optimum_is_omega_minus_one() {
    let x = cloud(21, 60, 2, 0.0, true);
    let y = cloud(22, 50, 2, 0.3, true);
    let plain = SinkhornParams::new(0.3)
        .with_tol(1e-13)
        .with_max_iters(100_000);
    let a = solve(&x, &y, &plain).unwrap();
    let h = &a.history;
    let n = h.len();
    let theta = rate(h, n / 2, n);
    let omega_star = 2.0 / (1.0 + (1.0 - theta).sqrt());
    let omega = (omega_star + 0.05).min(1.99);
    let b = solve(&x, &y, &plain.with_over_relaxation(omega)).unwrap();
    assert!(b.converged);
    assert!(rel(a.ot, b.ot) <= 1e-10);
    // The relaxed phase: from the first residual below 1e-3 to the last relaxed one (the last
    // iterations are the plain finish).
    let hb = &b.history;
    let start = hb.iter().position(|&e| e < 1e-3).unwrap();
    let end = hb.len() - 2;
    let rho = rate(hb, start, end);
    eprintln!(
        "theta {theta:.5}, omega* {omega_star:.4}, omega {omega:.4}: relaxed rate {rho:.4} \
         (predicted {:.4}); iterations {} -> {}",
        omega - 1.0,
        a.iterations,
        b.iterations
    );
    assert!(end > start + 20, "relaxed phase too short to measure");
    assert!(
        (rho - (omega - 1.0)).abs() <= 0.01,
        "rate {rho} vs {}",
        omega - 1.0
    );
}

/// The adaptive variant never starts on an easy problem (its residual falls below the start
/// threshold before a rate window is available), so it costs nothing there.
#[test]
fn adaptive_relaxation_is_harmless_on_a_fast_problem() {
    let x = cloud(31, 150, 2, 0.0, false);
    let y = cloud(32, 150, 2, 1.0, false);
    let plain = SinkhornParams::new(1.0).with_tol(1e-10);
    let a = solve(&x, &y, &plain).unwrap();
    let b = solve(&x, &y, &plain.with_adaptive_over_relaxation()).unwrap();
    assert!(a.converged && b.converged);
    assert!(
        b.iterations <= a.iterations,
        "{} > {}",
        b.iterations,
        a.iterations
    );
    assert!(rel(a.ot, b.ot) <= 1e-10);
}

#[test]
fn over_relaxation_outside_its_range_is_rejected() {
    let x = cloud(1, 10, 2, 0.0, false);
    for w in [0.5, 2.0, 2.5, f64::NAN] {
        let p = SinkhornParams::new(0.1).with_over_relaxation(w);
        assert!(matches!(
            solve(&x, &x, &p),
            Err(SinkhornError::InvalidParameter { .. })
        ));
    }
}
