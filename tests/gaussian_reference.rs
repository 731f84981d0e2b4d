//! Held-out reference: 50-digit mpmath values (tests/data/gaussian_reference.py, formulas of
//! Janati et al. 2020 Thm 1 for invertible pairs and the M-form for singular ones) for
//! d = 1..6, eps in {1e-3, 1e-1, 1, 10, 1e2}, random / wide-spectrum (1e-8..1e4) / exactly
//! singular covariances. OT_eps, S_eps, the transport part and W2^2 must agree to 1e-9 relative.

mod gaussian_util;

use gaussian_util::{json_matrix, json_vector};
use serde_json::Value;
use sinkflow::gaussian::{
    bures_wasserstein_sq, divergence_parts, sinkhorn_divergence, EntropicOt, Gaussian,
};
use sinkflow::Cost;

/// The requested agreement with the 50-digit reference (relative).
const REL_TOL: f64 = 1e-9;

fn rel(x: f64, r: f64) -> f64 {
    (x - r).abs() / r.abs()
}

#[test]
fn closed_forms_agree_with_the_50_digit_reference() {
    let data: Value = serde_json::from_str(include_str!("data/gaussian_reference.json")).unwrap();
    assert!(data["mpmath_version"].is_string());
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 120);
    let mut worst = [
        (0.0_f64, String::new()),
        (0.0, String::new()),
        (0.0, String::new()),
        (0.0, String::new()),
    ];
    let mut failures = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap().to_string();
        let eps = c["eps"].as_f64().unwrap();
        let mu = Gaussian::new(json_vector(&c["mean_a"]), json_matrix(&c["cov_a"])).unwrap();
        let nu = Gaussian::new(json_vector(&c["mean_b"]), json_matrix(&c["cov_b"])).unwrap();
        let ot = EntropicOt::new(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
        let s = sinkhorn_divergence(&mu, &nu, eps, Cost::SqEuclidean).unwrap();
        assert_eq!(
            s,
            divergence_parts(&mu, &nu, eps, Cost::SqEuclidean)
                .unwrap()
                .divergence
        );
        let w2 = bures_wasserstein_sq(&mu, &nu).unwrap();
        let got = [ot.value(), s, ot.transport_cost(), w2];
        let keys = ["ot_eps", "s_eps", "transport", "w2_sq"];
        for k in 0..4 {
            let r = c[keys[k]].as_f64().unwrap();
            let e = rel(got[k], r);
            if e > worst[k].0 {
                worst[k] = (e, name.clone());
            }
            if e > REL_TOL {
                failures.push(format!(
                    "{name} {}: {} vs reference {r} (rel {e:.2e})",
                    keys[k], got[k]
                ));
            }
        }
    }
    for k in 0..4 {
        eprintln!(
            "{:>9}: worst relative error {:.2e} ({})",
            ["OT_eps", "S_eps", "transport", "W2^2"][k],
            worst[k].0,
            worst[k].1
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
