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

/// `head` followed by the arguments `common` to several calls.
fn with_common<'a>(head: &[&'a str], common: &[&'a str]) -> Vec<&'a str> {
    [head, common].concat()
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

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sinkflow-cli-pma-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn grid_and_ipfp_json_contract_and_library_agreement() {
    use sinkflow::pma::grid::{catalogue, ipfp, solve_pma, Domain, Grid1d, PmaParams};
    let common = [
        "--f",
        "pushed:0.3:cos_0.4_1",
        "--g",
        "cos:0.4:1",
        "--domain",
        "torus",
        "--n",
        "32",
        "--t-end",
        "0.5",
        "--samples",
        "2",
        "--json",
    ];
    let args = with_common(&["pma", "grid", "--dt", "0.0001"], &common);
    let v = json_ok(&args);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["grad_phi", "phi", "residual", "rho", "t", "x"]);
    assert_eq!(v["t"].as_array().unwrap().len(), 3);
    assert_eq!(v["x"][1].as_f64(), Some(1.0 / 32.0));
    let grid = Grid1d::new(Domain::Torus, 32).unwrap();
    let f = catalogue(&grid, "pushed:0.3:cos_0.4_1").unwrap();
    let g = catalogue(&grid, "cos:0.4:1").unwrap();
    let lib = solve_pma(
        &grid,
        &f,
        &g,
        &PmaParams {
            t_end: 0.5,
            dt: 1e-4,
            samples: 2,
            ..PmaParams::default()
        },
    )
    .unwrap();
    for j in 0..32 {
        let a = v["grad_phi"][2][j].as_f64().unwrap();
        assert!((a - lib[2].grad_phi[j]).abs() <= 4.0 * f64::EPSILON);
    }
    // phi_0 = x^2/2 exactly
    assert_eq!(v["phi"][0][2].as_f64(), Some(0.5 * (2.0f64 / 32.0).powi(2)));
    let args = with_common(&["pma", "ipfp", "--eps", "0.02"], &common);
    let v = json_ok(&args);
    assert_eq!(v["k"].as_u64(), Some(25));
    let (_, snaps) = ipfp(&grid, &f, &g, 0.02, 0.5, 2).unwrap();
    for j in 0..32 {
        let a = v["phi"][2][j].as_f64().unwrap();
        assert!((a - snaps[2].phi[j]).abs() <= 4.0 * f64::EPSILON);
    }
}

#[test]
fn grid_bad_input_exits_2() {
    let n = 16;
    let ones: String = (0..n).map(|_| "0\n").collect();
    let good = temp_file("good.csv", &ones);
    let mut zero: Vec<String> = (0..n).map(|_| "0".to_string()).collect();
    zero[5] = "inf".into();
    let zero = temp_file("zero.csv", &zero.join("\n"));
    let nan = temp_file("nan.csv", &ones.replacen('0', "nan", 1));
    let short = temp_file("short.csv", &"0\n".repeat(n - 1));
    let heavy = temp_file("heavy.csv", &"-0.1\n".repeat(n));
    let (good, zero, nan, short, heavy) = (
        good.to_str().unwrap().to_string(),
        zero.to_str().unwrap().to_string(),
        nan.to_str().unwrap().to_string(),
        short.to_str().unwrap().to_string(),
        heavy.to_str().unwrap().to_string(),
    );
    let grid = |f: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "pma", "grid", "--f", f, "--g", &good, "--domain", "torus", "--n", "16", "--t-end",
            "0.01", "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let dt = ["--dt", "0.001"];
    for f in [&zero, &nan, &short, &heavy] {
        let a = grid(f, &dt);
        assert_fails(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>(), 2);
    }
    // the mean of e^{-f} off by 10%: accepted with --normalise
    let a = grid(&heavy, &["--dt", "0.001", "--normalise"]);
    json_ok(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    for bad in [
        vec!["--dt", "0"],
        vec!["--dt", "-0.001"],
        vec!["--dt", "0.003"],
        vec!["--dt", "0.001", "--scheme", "rk4"],
        vec!["--dt", "0.001", "--samples", "3"],
    ] {
        let a = grid(&good, &bad);
        assert_fails(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>(), 2);
    }
    // past the CFL bound h^2/2 = 1/512: the message names the largest stable dt
    let a = grid(&good, &["--dt", "0.005"]);
    let err = assert_fails(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>(), 2);
    assert!(err.contains("1.953125e-3"), "{err}");
    let a: Vec<String> = grid(&good, &["--dt", "0.001"])
        .into_iter()
        .map(|s| if s == "torus" { "box".to_string() } else { s })
        .collect();
    assert_fails(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>(), 2);
    // a grid too coarse for eps: 4 h^2 = 1/64 named
    let err = assert_fails(
        &[
            "pma", "ipfp", "--f", &good, "--g", &good, "--domain", "torus", "--n", "16", "--t-end",
            "0.1", "--eps", "0.01", "--json",
        ],
        2,
    );
    assert!(err.contains("1.5625e-2"), "{err}");
}

#[test]
fn two_dimensional_torus_from_the_shell() {
    let common = [
        "--dim",
        "2",
        "--f",
        "pushed:0.2:cos_0.3_1",
        "--g",
        "cos:0.3:1",
        "--domain",
        "torus",
        "--n",
        "16",
        "--t-end",
        "0.1",
        "--json",
    ];
    let args = with_common(&["pma", "grid", "--dt", "0.0001"], &common);
    let v = json_ok(&args);
    assert_eq!(v["x"].as_array().unwrap().len(), 256);
    assert_eq!(v["x"][17], serde_json::json!([0.0625, 0.0625]));
    assert_eq!(v["grad_phi"][1][0].as_array().unwrap().len(), 2);
    let args = with_common(&["pma", "ipfp", "--eps", "0.02"], &common);
    let v = json_ok(&args);
    assert_eq!(v["k"].as_u64(), Some(5));
    // implicit stepping in 2-D: the library's backward Euler, to round-off
    let args = with_common(
        &["pma", "grid", "--dt", "0.05", "--scheme", "implicit"],
        &common,
    );
    let v = json_ok(&args);
    {
        use sinkflow::pma::grid::{PmaParams, Scheme};
        use sinkflow::pma::grid2d::{catalogue_2d, solve_pma_2d_from, Grid2d};
        let grid = Grid2d::new(16).unwrap();
        let f = catalogue_2d(&grid, "pushed:0.2:cos_0.3_1").unwrap();
        let g = catalogue_2d(&grid, "cos:0.3:1").unwrap();
        let p = PmaParams {
            t_end: 0.1,
            dt: 0.05,
            scheme: Scheme::Implicit,
            ..PmaParams::default()
        };
        let s = solve_pma_2d_from(&grid, &f, &g, None, &p).unwrap();
        for (k, gp) in s[1].grad_phi.iter().enumerate() {
            let c = v["grad_phi"][1][k].as_array().unwrap();
            assert!((c[0].as_f64().unwrap() - gp[0]).abs() < 1e-13);
            assert!((c[1].as_f64().unwrap() - gp[1]).abs() < 1e-13);
        }
    }
    // a safe eps (4 h^2 = 1/64)
    let bad = with_common(&["pma", "ipfp", "--eps", "0.01"], &common);
    let err = assert_fails(&bad, 2);
    assert!(err.contains("1.5625e-2"), "{err}");
}

#[test]
fn particles_from_sample_files() {
    let xs: String = (0..40)
        .map(|i| format!("{},{}\n", (i as f64 * 0.37).sin(), (i as f64 * 0.71).cos()))
        .collect();
    let ys: String = (0..30)
        .map(|i| {
            format!(
                "{},{}\n",
                0.5 * (i as f64 * 0.53).sin(),
                (i as f64 * 0.29).cos()
            )
        })
        .collect();
    let x = temp_file("x.csv", &xs);
    let y = temp_file("y.csv", &ys);
    let (x, y) = (x.to_str().unwrap(), y.to_str().unwrap());
    let v = json_ok(&[
        "pma",
        "particles",
        "--x",
        x,
        "--y",
        y,
        "--eps",
        "0.1",
        "--t-end",
        "0.25",
        "--json",
    ]);
    assert_eq!(v["k"].as_u64(), Some(3));
    // the contract's form `pma ipfp --x --y` is the same computation
    let w = json_ok(&[
        "pma", "ipfp", "--x", x, "--y", y, "--eps", "0.1", "--t-end", "0.25", "--json",
    ]);
    assert_eq!(v, w);
    assert_eq!(v["phi"][0].as_array().unwrap().len(), 40);
    // rho_k / e^{-f} is the density of the X-marginal against the empirical measure: mean 1
    let ratio = v["rho_ratio"][0].as_array().unwrap();
    let mean = ratio.iter().map(|r| r.as_f64().unwrap()).sum::<f64>() / 40.0;
    assert!((mean - 1.0).abs() < 1e-12, "{mean}");
    assert_fails(
        &["pma", "ipfp", "--x", x, "--eps", "0.1", "--t-end", "0.25"],
        2,
    );
    assert_fails(
        &[
            "pma", "ipfp", "--x", x, "--y", y, "--n", "16", "--eps", "0.1", "--t-end", "0.25",
        ],
        2,
    );
    let g = v["grad_phi"][0].as_array().unwrap();
    assert_eq!(g.len(), 40);
    // a barycentric projection: inside the bounding box of the y samples
    for p in g {
        let p = p.as_array().unwrap();
        assert!(p[0].as_f64().unwrap().abs() <= 0.5 && p[1].as_f64().unwrap().abs() <= 1.0);
    }
    assert_fails(
        &[
            "pma",
            "particles",
            "--x",
            x,
            "--y",
            y,
            "--eps",
            "0",
            "--t-end",
            "1",
            "--json",
        ],
        2,
    );
    assert_fails(
        &[
            "pma",
            "particles",
            "--x",
            "/nonexistent.csv",
            "--y",
            y,
            "--eps",
            "0.1",
            "--t-end",
            "1",
        ],
        2,
    );
}

#[test]
fn box_initial_potential_and_euclidean_mirror_from_the_shell() {
    // --domain box is 2-D; the explicit step past the CFL bound is exit 2, implicit runs
    let common = [
        "--f",
        "gauss:0.5:0.5:0.01:0.004:0.0144",
        "--g",
        "gauss:0.5:0.5:0.016:-0.005:0.012",
        "--domain",
        "box",
        "--n",
        "16",
        "--t-end",
        "0.01",
        "--dt",
        "0.001",
        "--json",
    ];
    let err = assert_fails(&with_common(&["pma", "grid"], &common), 2);
    assert!(err.contains("largest stable dt"), "{err}");
    let v = json_ok(&with_common(
        &["pma", "grid", "--scheme", "implicit"],
        &common,
    ));
    assert_eq!(v["x"][0], serde_json::json!([0.03125, 0.03125]));
    assert_eq!(v["t"].as_array().unwrap().len(), 2);
    // a given phi_0 (1-D torus): phi_0 = |x|^2/2 reproduces the default run; a non-convex one
    // is bad input
    let n = 32;
    let quad: String = (0..n)
        .map(|j| format!("{}\n", 0.5 * (j as f64 / n as f64).powi(2)))
        .collect();
    let bent: String = (0..n)
        .map(|j| {
            let x = j as f64 / n as f64;
            format!(
                "{}\n",
                0.5 * x * x - 0.1 * (std::f64::consts::TAU * x).cos()
            )
        })
        .collect();
    let (q, b) = (temp_file("phi0q.csv", &quad), temp_file("phi0b.csv", &bent));
    let one_d = [
        "pma",
        "grid",
        "--f",
        "cos:0.3:1",
        "--g",
        "uniform",
        "--domain",
        "torus",
        "--n",
        "32",
        "--t-end",
        "0.01",
        "--dt",
        "0.0001",
        "--json",
    ];
    let plain = json_ok(&one_d);
    let given = json_ok(&with_common(&one_d, &["--phi0", q.to_str().unwrap()]));
    for (a, b) in plain["grad_phi"][1]
        .as_array()
        .unwrap()
        .iter()
        .zip(given["grad_phi"][1].as_array().unwrap())
    {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-12);
    }
    let err = assert_fails(&with_common(&one_d, &["--phi0", b.to_str().unwrap()]), 2);
    assert!(err.contains("not convex"), "{err}");
    // the Euclidean mirror examples: closed forms
    let v = json_ok(&[
        "pma",
        "mirror",
        "--energy",
        "euclidean",
        "--mirror",
        "reciprocal",
        "--t-end",
        "2",
        "--samples",
        "2",
        "--json",
    ]);
    let z = v["mirror_z"][2].as_f64().unwrap();
    assert!((z - 4f64.powf(-1.0 / 3.0)).abs() < 1e-15, "{z}");
    assert_fails(
        &["pma", "mirror", "--energy", "euclidean", "--t-end", "1"],
        2,
    );
}
