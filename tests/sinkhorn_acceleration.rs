//! Over-relaxation of the alternating solver (`SinkhornParams::over_relaxation`,
//! `theory/sinkhorn.md` §4b) and Anderson mixing (§4d): same solution, fewer iterations, Young's
//! rate, and the documented parameter range.

mod common;

use common::{cloud, rel};
use sinkflow::sinkhorn::{
    marginals, solve, solve_warm, Acceleration, EpsScaling, Mode, OverRelaxation, PointCloud,
    SinkhornError, SinkhornOutput, SinkhornParams, Termination, ANDERSON_DEFAULT_MEMORY,
    AUTO_EPS_SCALING_BELOW,
};
use sinkflow::Cost;

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
        .with_max_iters(200_000)
        .plain();
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
        .with_max_iters(100_000)
        .plain();
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
    let plain = SinkhornParams::new(1.0).with_tol(1e-10).plain();
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
    for memory in [0, 33] {
        let p = SinkhornParams {
            over_relaxation: Some(OverRelaxation::Anderson { memory }),
            ..SinkhornParams::new(0.1)
        };
        assert!(matches!(
            solve(&x, &x, &p),
            Err(SinkhornError::InvalidParameter { .. })
        ));
    }
}

/// Squared diagonal of the bounding box of both supports: the cost scale of |x−y|² that
/// eps-scaling starts from (`EpsScaling`, theory/sinkhorn.md §4).
fn bbox_sq_diameter(x: &PointCloud, y: &PointCloud) -> f64 {
    (0..x.dim())
        .map(|k| {
            let coords = (0..x.len())
                .map(|i| x.point(i)[k])
                .chain((0..y.len()).map(|j| y.point(j)[k]));
            let (lo, hi) = coords.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
            (hi - lo).powi(2)
        })
        .sum()
}

/// Centred difference of two potential pairs in the $a\oplus b$-weighted L2 norm, modulo the
/// shift $(f+c, g-c)$: $\min_c\sum_ia_i(\delta f_i+c)^2+\sum_jb_j(\delta g_j-c)^2$, with
/// $c^*=(\sum_jb_j\delta g_j-\sum_ia_i\delta f_i)/2$ (both weights sum to one).
fn centred_distance(a: &[f64], b: &[f64], p: &SinkhornOutput, q: &SinkhornOutput) -> f64 {
    let df: Vec<f64> = p.f.iter().zip(&q.f).map(|(u, v)| u - v).collect();
    let dg: Vec<f64> = p.g.iter().zip(&q.g).map(|(u, v)| u - v).collect();
    let mf: f64 = a.iter().zip(&df).map(|(w, v)| w * v).sum();
    let mg: f64 = b.iter().zip(&dg).map(|(w, v)| w * v).sum();
    let c = (mg - mf) / 2.0;
    let s: f64 = a
        .iter()
        .zip(&df)
        .map(|(w, v)| w * (v + c).powi(2))
        .sum::<f64>()
        + b.iter()
            .zip(&dg)
            .map(|(w, v)| w * (v - c).powi(2))
            .sum::<f64>();
    s.sqrt()
}

/// Distance bound of a solved pair to the exact potentials (linearised dual,
/// theory/sinkhorn.md §4c): the dual's Hessian in the $a\oplus b$ metric has the eigenvalues
/// $(1\pm\sigma_k)/\varepsilon$, the smallest non-zero one $(1-\sqrt\theta)/\varepsilon$ with
/// $\theta=\sigma_2^2$ the plain linear rate, and the gradient is the marginal residual
/// $r=P\mathbb 1-a$ (second marginal exact), so the error is at most
/// $\varepsilon\lVert r\rVert_{a^{-1}}/(1-\sqrt\theta)$.
fn potential_error_bound(
    out: &SinkhornOutput,
    x: &PointCloud,
    y: &PointCloud,
    eps: f64,
    theta: f64,
) -> f64 {
    let (r, _) = marginals(out, x, y);
    let s: f64 = r
        .iter()
        .zip(x.weights())
        .map(|(p, a)| (p - a).powi(2) / a)
        .sum();
    eps * s.sqrt() / (1.0 - theta.sqrt())
}

/// The default (accelerated) solve and the plain one give the same answer to the requested
/// tolerance: both converge with the same termination and a first-marginal violation ≤ tol
/// (recomputed independently from the potentials), OT_eps agrees to the first-order duality
/// bound $\max\lvert f\rvert\cdot$tol of each (theory/sinkhorn.md §3) plus round-off, and the
/// potentials agree modulo the shift within the sum of the two linearised error bounds
/// (`potential_error_bound`, ×2 for the second-order terms). Cases: small and large eps (with
/// and without eps-scaling and relaxation), weighted clouds, dense and streaming, both costs.
#[test]
fn default_agrees_with_plain() {
    agrees_with_plain("default", |p| p);
}

/// The same cases with the adaptive over-relaxation (`OverRelaxation::Adaptive`, §4b; the
/// default before Anderson mixing) instead of the default: the same answer to the same bounds,
/// and the report says it ran.
#[test]
fn adaptive_over_relaxation_agrees_with_plain() {
    agrees_with_plain("adaptive", |p| p.with_adaptive_over_relaxation());
}

/// The body of the two tests above: `accelerate` turns the parameters of a case into the
/// accelerated ones.
fn agrees_with_plain(label: &str, accelerate: fn(SinkhornParams) -> SinkhornParams) {
    let tol = 1e-10;
    let cases = [
        (41, 150, 2, 0.5, true, 0.01, Cost::SqEuclidean, Mode::Auto),
        (
            42,
            120,
            3,
            0.3,
            false,
            0.05,
            Cost::HalfSqEuclidean,
            Mode::Dense,
        ),
        (
            43,
            200,
            2,
            1.0,
            true,
            0.1,
            Cost::SqEuclidean,
            Mode::Streaming,
        ),
        (44, 100, 1, 0.2, true, 0.003, Cost::SqEuclidean, Mode::Auto),
        (45, 80, 5, 0.0, false, 1.0, Cost::SqEuclidean, Mode::Auto),
        (46, 90, 2, 0.7, true, 50.0, Cost::SqEuclidean, Mode::Auto),
    ];
    for (seed, n, d, shift, weighted, eps, cost, mode) in cases {
        let x = cloud(seed, n, d, 0.0, weighted);
        let y = cloud(seed + 100, n + 7, d, shift, weighted);
        let p = SinkhornParams::new(eps)
            .with_cost(cost)
            .with_mode(mode)
            .with_tol(tol)
            .with_max_iters(200_000);
        let plain = solve(&x, &y, &p.plain()).unwrap();
        let acc = solve(&x, &y, &accelerate(p)).unwrap();
        let name = format!("{label}: seed {seed} eps {eps}");
        let r = acc.acceleration.over_relaxation.expect("report");
        if label == "adaptive" {
            assert_eq!(r.kind, OverRelaxation::Adaptive, "{name}");
        } else {
            assert_eq!(
                r.kind,
                OverRelaxation::Anderson {
                    memory: ANDERSON_DEFAULT_MEMORY,
                },
                "{name}"
            );
            eprintln!("{name}: restored {}", r.restored);
        }
        assert_eq!(plain.termination, Termination::Converged, "{name}");
        assert_eq!(acc.termination, plain.termination, "{name}");
        assert_eq!(acc.converged, plain.converged, "{name}");
        for o in [&plain, &acc] {
            let (r, c) = marginals(o, &x, &y);
            let e1: f64 = r.iter().zip(x.weights()).map(|(u, v)| (u - v).abs()).sum();
            let e2: f64 = c.iter().zip(y.weights()).map(|(u, v)| (u - v).abs()).sum();
            // recomputed in another summation order: equal to the reported one to round-off
            assert!(e1 <= tol * (1.0 + 1e-6) + 1e-14, "{name}: {e1}");
            assert!(e2 <= 1e-13, "{name}: second marginal {e2}");
        }
        let fmax = |o: &SinkhornOutput| o.f.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let ot_bound = (fmax(&plain) + fmax(&acc)) * tol + 1e-13 * plain.ot.abs();
        let dot = (acc.ot - plain.ot).abs();
        // The plain linear rate θ from the tail of the plain history.
        let h = &plain.history;
        let k = h.len().min(20);
        let theta = if k >= 3 {
            (h[h.len() - 1] / h[h.len() - k]).powf(1.0 / (k - 1) as f64)
        } else {
            0.5
        }
        .min(1.0 - 1e-12);
        let pot_bound = 2.0
            * (potential_error_bound(&plain, &x, &y, eps, theta)
                + potential_error_bound(&acc, &x, &y, eps, theta))
            + 1e-13 * fmax(&plain);
        let dpot = centred_distance(x.weights(), y.weights(), &plain, &acc);
        eprintln!(
            "{name}: iterations plain {} default {} ({:?}); |dOT| {dot:.1e} (bound {ot_bound:.1e}), \
             potentials {dpot:.1e} (bound {pot_bound:.1e}, theta {theta:.4})",
            plain.iterations, acc.iterations, acc.acceleration
        );
        assert!(dot <= ot_bound, "{name}: OT {} vs {}", acc.ot, plain.ot);
        assert!(dpot <= pot_bound, "{name}: potentials {dpot} > {pot_bound}");
    }
}

/// Where acceleration cannot help — eps at or above the cost scale, where plain Sinkhorn
/// converges in fewer iterations than the adaptive rule needs to estimate a rate — the
/// default costs at most 5 % more iterations than plain (here: it *is* plain, bit for bit,
/// and says so), and near the threshold of the eps-scaling rule it still costs at most 5 %.
#[test]
fn large_eps_default_costs_at_most_five_percent_more_than_plain() {
    let x = cloud(51, 300, 2, 0.0, false);
    let y = cloud(52, 300, 2, 1.0, false);
    let scale = bbox_sq_diameter(&x, &y);
    for ratio in [10.0, 1.0, 0.3, 0.1, 0.03] {
        let eps = ratio * scale;
        let p = SinkhornParams::new(eps).with_tol(1e-9);
        let plain = solve(&x, &y, &p.plain()).unwrap();
        let acc = solve(&x, &y, &p).unwrap();
        eprintln!(
            "eps = {ratio} x scale: iterations plain {} default {}",
            plain.iterations, acc.iterations
        );
        assert!(plain.converged && acc.converged);
        assert!(acc.iterations as f64 <= 1.05 * plain.iterations as f64);
        let r = acc.acceleration;
        assert_eq!(r.policy, Acceleration::Auto);
        assert!(r.eps_scaling.is_none());
        let relax = r.over_relaxation.unwrap();
        assert_eq!(
            relax.kind,
            OverRelaxation::Anderson {
                memory: ANDERSON_DEFAULT_MEMORY
            }
        );
        if relax.relaxed_iterations == 0 {
            // never mixed: plain Sinkhorn bit for bit
            assert_eq!(acc.iterations, plain.iterations);
            assert_eq!(acc.ot.to_bits(), plain.ot.to_bits());
            assert_eq!(acc.f, plain.f);
        }
    }
}

/// The report says what ran; explicit options override the policy; a warm start is not
/// annealed; plain means plain.
#[test]
fn acceleration_report_and_overrides() {
    let x = cloud(61, 100, 2, 0.0, true);
    let y = cloud(62, 100, 2, 0.5, true);
    let scale = bbox_sq_diameter(&x, &y);
    let eps = 0.2 * AUTO_EPS_SCALING_BELOW * scale;
    let p = SinkhornParams::new(eps).with_tol(1e-8);
    // default at small eps: eps-scaling from the cost scale, Anderson mixing that ran
    let acc = solve(&x, &y, &p).unwrap();
    let s = acc.acceleration.eps_scaling.expect("eps-scaling chosen");
    assert_eq!(s.start, scale);
    assert_eq!(s.stages, EpsScaling::default().stages(eps, scale).len());
    assert_eq!(s.iterations, 3 * s.stages);
    let relax = acc.acceleration.over_relaxation.unwrap();
    assert_eq!(
        relax.kind,
        OverRelaxation::Anderson {
            memory: ANDERSON_DEFAULT_MEMORY
        }
    );
    assert_eq!(relax.omega, None);
    assert!(relax.relaxed_iterations > 0);
    // plain: nothing
    let plain = solve(&x, &y, &p.plain()).unwrap();
    assert_eq!(plain.acceleration.policy, Acceleration::Plain);
    assert!(plain.acceleration.over_relaxation.is_none());
    assert!(plain.acceleration.eps_scaling.is_none());
    assert!(acc.iterations < plain.iterations);
    // explicit over-relaxation ω = 1 under Auto at a large eps: plain Sinkhorn, bit for bit
    let big = SinkhornParams::new(scale).with_over_relaxation(1.0);
    let a = solve(&x, &y, &big).unwrap();
    let b = solve(&x, &y, &big.plain()).unwrap();
    assert_eq!(a.f, b.f);
    assert_eq!(a.iterations, b.iterations);
    // explicit eps-scaling under Plain runs
    let ps = solve(&x, &y, &p.plain().with_eps_scaling()).unwrap();
    assert!(ps.acceleration.eps_scaling.is_some());
    assert!(ps.acceleration.over_relaxation.is_none());
    // a warm start is not annealed (it is assumed close to the target eps already)
    let warm = solve_warm(&x, &y, &p, &acc.f, &acc.g).unwrap();
    assert!(warm.acceleration.eps_scaling.is_none());
    assert!(warm.converged);
}
