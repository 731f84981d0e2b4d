//! The debiased divergence against GeomLoss (tests/data/geomloss_reference.json, produced by
//! tests/data/geomloss_reference.py): GeomLoss `SamplesLoss("sinkhorn", p=2, blur=b,
//! debias=True)` is sinkflow's `divergence` with the cost |x-y|^2/2 at eps = b^2.
//!
//! Tolerance: GeomLoss has no stopping criterion (eps-annealing with ratio `scaling`); the script
//! stores the change of its value between scaling 0.995 and 0.999 as an estimate of its own
//! error, and we allow 10x that, but never less than 1e-9 relative (our solves stop at a
//! marginal violation of 1e-11, which moves S_eps by O(max|f|·1e-11)).

mod common;

use common::weyl_cloud;
use sinkflow::sinkhorn::{divergence, SinkhornParams};
use sinkflow::Cost;

#[test]
fn debiased_divergence_agrees_with_geomloss() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("data/geomloss_reference.json")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9, "d in {{1,2,5}} x blur^2 in {{0.05,0.5,2}}");
    let mut worst: f64 = 0.0;
    for c in cases {
        let d = c["d"].as_u64().unwrap() as usize;
        let n = c["n"].as_u64().unwrap() as usize;
        let m = c["m"].as_u64().unwrap() as usize;
        let eps = c["blur2"].as_f64().unwrap();
        let reference = c["divergence_half_cost"].as_f64().unwrap();
        let spread = c["geomloss_spread"].as_f64().unwrap();
        let x = weyl_cloud(n, d, 0, 0.0);
        let y = weyl_cloud(m, d, 1, 0.3);
        let p = SinkhornParams::new(eps)
            .with_cost(Cost::HalfSqEuclidean)
            .with_tol(1e-11)
            .with_max_iters(200_000);
        let out = divergence(&x, &y, &p).unwrap();
        assert!(out.converged(), "d = {d}, eps = {eps}");
        let err = (out.divergence - reference).abs() / reference.abs();
        let tol = (10.0 * spread / reference.abs()).max(1e-9);
        assert!(
            err <= tol,
            "d = {d}, eps = {eps}: sinkflow {} vs GeomLoss {reference}: rel. error {err:e} > {tol:e}",
            out.divergence
        );
        worst = worst.max(err);
    }
    eprintln!("worst relative difference to GeomLoss: {worst:e}");
}
