//! `sinkflow gaussian ...`: JSON shapes, output grid, exit codes, negative values (DESIGN.md
//! "CLI contract" and "Bad input").

use std::process::{Command, Output};

use serde_json::Value;

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

fn assert_fails(args: &[&str], code: i32) {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: stdout must be empty on error"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.trim().is_empty(),
        "{args:?}: an error message on stderr"
    );
}

const PAIR: [&str; 8] = [
    "--mean-a",
    "-0.3,1.2",
    "--cov-a",
    "2,-0.3;-0.3,1",
    "--mean-b",
    "0,-1",
    "--cov-b",
    "1,0;0,0.5",
];

fn with(head: &[&str], tail: &[&str]) -> Vec<String> {
    head.iter().chain(tail).map(|s| s.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn divergence_json_has_the_contract_keys_and_matches_the_library() {
    let args = with(&["gaussian", "divergence", "--eps", "0.5", "--json"], &PAIR);
    let v = json_ok(&strs(&args));
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["divergence", "ot_aa", "ot_ab", "ot_bb"]);
    // library value for the same input (the CLI prints full precision: exact match)
    use nalgebra::{DMatrix, DVector};
    use sinkflow::gaussian::{divergence_parts, Gaussian};
    let mu = Gaussian::new(
        DVector::from_vec(vec![-0.3, 1.2]),
        DMatrix::from_row_slice(2, 2, &[2.0, -0.3, -0.3, 1.0]),
    )
    .unwrap();
    let nu = Gaussian::new(
        DVector::from_vec(vec![0.0, -1.0]),
        DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.5]),
    )
    .unwrap();
    let p = divergence_parts(&mu, &nu, 0.5, sinkflow::Cost::SqEuclidean).unwrap();
    assert_eq!(v["divergence"].as_f64().unwrap(), p.divergence);
    assert_eq!(v["ot_ab"].as_f64().unwrap(), p.ot_ab);
    // half cost is accepted and differs
    let args = with(
        &[
            "gaussian",
            "divergence",
            "--eps",
            "0.5",
            "--cost",
            "half-sq",
            "--json",
        ],
        &PAIR,
    );
    let h = json_ok(&strs(&args));
    assert!(h["divergence"].as_f64().unwrap() != p.divergence);
}

#[test]
fn flow_json_has_k_plus_one_times() {
    let v = json_ok(&[
        "gaussian",
        "flow",
        "--eps",
        "0.5",
        "--mean0",
        "-1,0",
        "--cov0",
        "1,0;0,0",
        "--mean-target",
        "1,-1",
        "--cov-target",
        "2,0.5;0.5,1",
        "--t-end",
        "2",
        "--samples",
        "8",
        "--method",
        "dop853",
        "--json",
    ]);
    let t = v["t"].as_array().unwrap();
    assert_eq!(t.len(), 9);
    assert_eq!(t[0].as_f64(), Some(0.0));
    assert_eq!(t[8].as_f64(), Some(2.0));
    for key in ["mean", "cov", "divergence", "dissipation"] {
        assert_eq!(v[key].as_array().unwrap().len(), 9, "{key}");
    }
    let cov0 = &v["cov"][0];
    assert_eq!(cov0.as_array().unwrap().len(), 2);
    assert_eq!(cov0[0].as_array().unwrap().len(), 2);
    assert_eq!(v["mean"][3].as_array().unwrap().len(), 2);
    // divergence decreases along the flow
    let s: Vec<f64> = v["divergence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(s.windows(2).all(|w| w[1] <= w[0]));
}

#[test]
fn other_subcommands_produce_json() {
    let ot = json_ok(&strs(&with(
        &["gaussian", "ot", "--eps", "1", "--json"],
        &PAIR,
    )));
    let val = ot["value"].as_f64().unwrap();
    let tc = ot["transport_cost"].as_f64().unwrap();
    let mi = ot["mutual_information"].as_f64().unwrap();
    assert!((val - (tc + mi)).abs() < 1e-12 * val.abs());
    let plan = json_ok(&strs(&with(
        &["gaussian", "plan", "--eps", "1", "--json"],
        &PAIR,
    )));
    assert_eq!(plan["cov"].as_array().unwrap().len(), 4);
    assert_eq!(plan["cross_covariance"].as_array().unwrap().len(), 2);
    let map = json_ok(&strs(&with(
        &["gaussian", "map", "--eps", "1", "--x", "-1,2", "--json"],
        &PAIR,
    )));
    assert_eq!(map["image"].as_array().unwrap().len(), 2);
    let pot = json_ok(&strs(&with(
        &["gaussian", "potentials", "--eps", "1", "--json"],
        &PAIR,
    )));
    assert!(pot["f"]["constant"].is_f64() && pot["g"]["quad"].is_array());
    let w2 = json_ok(&strs(&with(&["gaussian", "w2", "--json"], &PAIR)));
    assert!(w2["w2_sq"].as_f64().unwrap() > 0.0);
    assert_eq!(w2["brenier_map"].as_array().unwrap().len(), 2);
    let bf = json_ok(&[
        "gaussian",
        "bures-flow",
        "--mean0",
        "0",
        "--cov0",
        "1",
        "--mean-target",
        "-1",
        "--cov-target",
        "4",
        "--t-end",
        "1",
        "--samples",
        "4",
        "--json",
    ]);
    assert_eq!(bf["t"].as_array().unwrap().len(), 5);
    // 1D: W2^2(mu_0, mu*) = 1 + (2 - 1)^2 = 2, and it decays like e^{-4t}
    let w: Vec<f64> = bf["divergence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!((w[0] - 2.0).abs() < 1e-14);
    assert!((w[4] - 2.0 * (-4.0f64).exp()).abs() < 1e-13);
}

#[test]
fn human_readable_output_without_json() {
    let args = with(&["gaussian", "divergence", "--eps", "0.5"], &PAIR);
    let out = run(&strs(&args));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("S_eps"));
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[test]
fn bad_input_exits_2_with_empty_stdout() {
    let base = ["gaussian", "divergence", "--json"];
    // eps <= 0, NaN, inf (negative values reach the validator)
    for eps in ["0", "-1", "nan", "inf"] {
        assert_fails(
            &strs(&with(&[&base[..], &["--eps", eps]].concat(), &PAIR)),
            2,
        );
    }
    let pair = |ma: &str, ca: &str, mb: &str, cb: &str| -> Vec<String> {
        with(
            &["gaussian", "divergence", "--json", "--eps", "1"],
            &["--mean-a", ma, "--cov-a", ca, "--mean-b", mb, "--cov-b", cb],
        )
    };
    // indefinite covariance typed with a leading minus sign
    assert_fails(&strs(&pair("0,0", "-1,0;0,1", "0,0", "1,0;0,1")), 2);
    // non-symmetric
    assert_fails(&strs(&pair("0,0", "1,0.5;0,1", "0,0", "1,0;0,1")), 2);
    // ragged
    assert_fails(&strs(&pair("0,0", "1,0;0", "0,0", "1,0;0,1")), 2);
    // dimension mismatch mean/cov and mu/nu
    assert_fails(&strs(&pair("0,0,0", "1,0;0,1", "0,0", "1,0;0,1")), 2);
    assert_fails(&strs(&pair("0", "1", "0,0", "1,0;0,1")), 2);
    // NaN / inf / garbage entries
    assert_fails(&strs(&pair("nan,0", "1,0;0,1", "0,0", "1,0;0,1")), 2);
    assert_fails(&strs(&pair("0,0", "1,0;0,inf", "0,0", "1,0;0,1")), 2);
    assert_fails(&strs(&pair("0,x", "1,0;0,1", "0,0", "1,0;0,1")), 2);
    // unknown cost
    assert_fails(
        &strs(&with(
            &["gaussian", "ot", "--eps", "1", "--cost", "l1"],
            &PAIR,
        )),
        2,
    );
    // flow: negative t_end, zero samples, bad tolerance, bad method
    let flow = |extra: &[&str]| -> Vec<String> {
        with(
            &[
                "gaussian",
                "flow",
                "--json",
                "--eps",
                "0.5",
                "--mean0",
                "0",
                "--cov0",
                "1",
                "--mean-target",
                "1",
                "--cov-target",
                "2",
            ],
            extra,
        )
    };
    assert_fails(&strs(&flow(&["--t-end", "-1"])), 2);
    assert_fails(&strs(&flow(&["--t-end", "1", "--samples", "0"])), 2);
    assert_fails(&strs(&flow(&["--t-end", "1", "--rtol", "-1e-8"])), 2);
    assert_fails(&strs(&flow(&["--t-end", "1", "--method", "euler"])), 2);
    assert_fails(&strs(&flow(&["--t-end", "nan"])), 2);
    // map at a point of the wrong dimension
    assert_fails(
        &strs(&with(
            &["gaussian", "map", "--eps", "1", "--x", "1,2,3"],
            &PAIR,
        )),
        2,
    );
    // a missing argument is a usage error: exit 2
    assert_fails(&["gaussian", "divergence", "--eps", "1"], 2);
}

#[test]
fn numerical_failure_exits_1_with_empty_stdout() {
    // |a - b|^2 overflows: valid input, non-finite result
    assert_fails(
        &[
            "gaussian", "ot", "--eps", "1", "--mean-a", "1e200", "--cov-a", "1", "--mean-b",
            "-1e200", "--cov-b", "1", "--json",
        ],
        1,
    );
}
