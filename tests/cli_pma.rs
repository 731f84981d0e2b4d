//! `sinkflow pma ...`: the issue-11 JSON contract of `pma gaussian`, agreement with the library,
//! the k = round(T/eps) rule, and bad input (exit 2, nothing on stdout).

use std::process::{Command, Output};

use nalgebra::DMatrix;
use serde_json::Value;
use sinkflow::pma::gaussian::GaussianPma;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sinkflow"))
        .args(args)
        .output()
        .expect("the sinkflow binary runs")
}

fn json_ok(args: &[&str]) -> Value {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim().lines().count(),
        1,
        "one JSON object on one line"
    );
    serde_json::from_str(&text).expect("valid JSON")
}

fn assert_fails(args: &[&str], code: i32) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: stdout must be empty on error"
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !err.trim().is_empty(),
        "{args:?}: an error message on stderr"
    );
    err
}

fn matrix(v: &Value) -> DMatrix<f64> {
    let rows = v.as_array().unwrap();
    let n = rows.len();
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    DMatrix::from_row_slice(n, flat.len() / n, &flat)
}

const SIGMA: &str = "1,0.2;0.2,2";
const THETA: &str = "0.5,-0.1;-0.1,1";

#[test]
fn gaussian_json_has_the_contract_keys_and_matches_the_library() {
    let v = json_ok(&[
        "pma", "gaussian", "--sigma", SIGMA, "--theta", THETA, "--eps", "0.05", "--t-end", "1.5",
        "--json",
    ]);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["A", "P", "correction", "k", "w2"]);
    assert_eq!(v["k"].as_u64(), Some(30));
    let s = DMatrix::from_row_slice(2, 2, &[1.0, 0.2, 0.2, 2.0]);
    let t = DMatrix::from_row_slice(2, 2, &[0.5, -0.1, -0.1, 1.0]);
    let c = GaussianPma::new(&s, &t)
        .unwrap()
        .compare(0.05, 1.5)
        .unwrap();
    // full-precision JSON: the library's numbers, up to the 1-ulp rounding of serde_json's
    // default (non-roundtrip) float parser
    let ulps = |a: &DMatrix<f64>, b: &DMatrix<f64>| (a - b).amax() <= 2.0 * f64::EPSILON * b.amax();
    assert!(ulps(&matrix(&v["P"]), &c.p));
    assert!(ulps(&matrix(&v["A"]), &c.a));
    assert!(ulps(&matrix(&v["correction"]), &c.correction));
    assert!((v["w2"].as_f64().unwrap() - c.w2).abs() <= 2.0 * f64::EPSILON * c.w2);
    // A is the closed form at T: it solves the Riccati ODE (checked against the ODE path)
    let a_ode = GaussianPma::new(&s, &t)
        .unwrap()
        .riccati_ode(&[1.5], 1e-13, 1e-15)
        .unwrap();
    assert!((&a_ode[0] - &c.a).amax() < 1e-12);
}

#[test]
fn k_rounds_half_up_and_is_at_least_one() {
    for (t_end, eps, k) in [
        ("0.25", "0.1", 3),
        ("0.24", "0.1", 2),
        ("0", "0.1", 1),
        ("0.01", "1", 1),
    ] {
        let v = json_ok(&[
            "pma", "gaussian", "--sigma", "1", "--theta", "2", "--eps", eps, "--t-end", t_end,
            "--json",
        ]);
        assert_eq!(v["k"].as_u64(), Some(k), "T = {t_end}, eps = {eps}");
    }
}

#[test]
fn scalar_case_matches_the_tanh_formula() {
    // Sigma = 1, Theta = 2: a(t) = sqrt(2) tanh(t / sqrt(2) + artanh(1/sqrt(2)))
    let v = json_ok(&[
        "pma", "gaussian", "--sigma", "1", "--theta", "2", "--eps", "0.01", "--t-end", "1.5",
        "--json",
    ]);
    let r2 = 2f64.sqrt();
    let a = r2 * (1.5 / r2 + (1.0 / r2).atanh()).tanh();
    assert!((v["A"][0][0].as_f64().unwrap() - a).abs() < 1e-14);
    // O(eps) agreement of the IPFP iterate, W2 of the same order
    assert!((v["P"][0][0].as_f64().unwrap() - a).abs() < 0.01);
    assert!(v["w2"].as_f64().unwrap() < 0.01);
}

#[test]
fn bad_input_exits_2_with_nothing_on_stdout() {
    let base = |sigma: &str, theta: &str, eps: &str, t: &str| -> Vec<String> {
        [
            "pma", "gaussian", "--sigma", sigma, "--theta", theta, "--eps", eps, "--t-end", t,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases = [
        base("1,0;0,-1", "1,0;0,1", "0.1", "1"),  // indefinite
        base("1,0;0,0", "1,0;0,1", "0.1", "1"),   // singular: no density
        base("1,0.5;0,1", "1,0;0,1", "0.1", "1"), // not symmetric
        base("1,0;0,1", "1", "0.1", "1"),         // dimension mismatch
        base("1,0;0", "1", "0.1", "1"),           // ragged
        base("1,x", "1", "0.1", "1"),             // not a number
        base("1", "1", "0", "1"),                 // eps = 0
        base("1", "1", "-0.1", "1"),              // eps < 0
        base("1", "1", "nan", "1"),               // eps NaN
        base("1", "1", "0.1", "-1"),              // T < 0
        base("1", "1", "0.1", "inf"),             // T infinite
        base("1", "1", "1e-9", "1"),              // k above the iteration limit
    ];
    for c in &cases {
        let args: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        assert_fails(&args, 2);
    }
    let err = assert_fails(
        &[
            "pma", "gaussian", "--sigma", "1", "--theta", "1", "--eps", "1e-9", "--t-end", "1",
        ],
        2,
    );
    assert!(err.contains("iterations"), "{err}");
}

#[test]
fn mirror_examples_from_the_shell() {
    // example 1: entropy, Theta = S_0 = 1: mirror S_t = (1 + t)^2, Wasserstein (heat) 1 + 2t
    let v = json_ok(&[
        "pma",
        "mirror",
        "--energy",
        "entropy",
        "--s0",
        "1",
        "--theta",
        "1",
        "--t-end",
        "2",
        "--samples",
        "4",
        "--json",
    ]);
    let ts: Vec<f64> = v["t"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(ts.len(), 5);
    for (i, t) in ts.iter().enumerate() {
        let m = v["mirror_cov"][i][0][0].as_f64().unwrap();
        let w = v["wasserstein_cov"][i][0][0].as_f64().unwrap();
        assert!((m - (1.0 + t).powi(2)).abs() < 1e-9, "t {t}: {m}");
        assert!((w - (1.0 + 2.0 * t)).abs() < 1e-9, "t {t}: {w}");
    }
    assert_fails(
        &[
            "pma", "mirror", "--energy", "kl", "--s0", "1", "--theta", "1", "--t-end", "1",
            "--json",
        ],
        2,
    );
    assert_fails(
        &[
            "pma", "mirror", "--energy", "entropy", "--s0", "-1", "--theta", "1", "--t-end", "1",
            "--json",
        ],
        2,
    );
}
