//! `sinkflow finite`: the JSON contract of issue 10, the step-count and mu0 rules, exit codes
//! and empty stdout on every class of bad input.

use std::path::PathBuf;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sinkflow"))
        .arg("finite")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The argv `sub --key value ... flags...`.
fn argv<'a>(sub: &'a str, pairs: &[(&'a str, &'a str)], flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![sub];
    for (k, v) in pairs {
        a.push(k);
        a.push(v);
    }
    a.extend_from_slice(flags);
    a
}

/// Run, require exit 0 (stderr in the message) and parse the one JSON line.
fn run_json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{err}");
    json(&out)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sinkflow-cli-finite-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_col(path: &PathBuf, v: &[f64]) -> String {
    std::fs::write(
        path,
        v.iter().map(|x| format!("{x:e}\n")).collect::<String>(),
    )
    .unwrap();
    path.display().to_string()
}

fn json(out: &str) -> serde_json::Value {
    assert_eq!(
        out.trim().lines().count(),
        1,
        "one JSON line expected: {out}"
    );
    serde_json::from_str(out.trim()).unwrap()
}

fn col(v: &serde_json::Value, k: &str) -> Vec<f64> {
    v[k].as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn flow_json_contract_with_catalogue_shortcuts() {
    let pairs = [
        ("--grid", "-2:2:12"),
        ("--potential", "double-well"),
        ("--mu0", "gaussian:0.5:0.4"),
        ("--eps", "0.5"),
        ("--t-end", "0.5"),
        ("--dt", "0.05"),
    ];
    let v = run_json(&argv("flow", &pairs, &["--json"]));
    for k in ["t", "mu", "energy", "mass", "kkt_residual", "cond_k"] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    let t = col(&v, "t");
    assert_eq!(t.len(), 11, "one row per step including t = 0");
    for (k, tk) in t.iter().enumerate() {
        assert_eq!(*tk, k as f64 * 0.05);
    }
    let mu = v["mu"].as_array().unwrap();
    assert_eq!(mu.len(), 11);
    assert_eq!(mu[0].as_array().unwrap().len(), 12);
    let mass = col(&v, "mass");
    let energy = col(&v, "energy");
    let kkt = col(&v, "kkt_residual");
    assert_eq!(kkt[0], 0.0);
    assert!(kkt.iter().all(|&r| r <= 1e-9));
    // not renormalised: the mass decreases; mass[k] = sum mu[k]
    assert!(mass[10] < mass[0] && (mass[0] - 1.0).abs() < 1e-12);
    for (k, row) in mu.iter().enumerate() {
        let r: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(r.iter().all(|&x| x >= 0.0));
        assert!((r.iter().sum::<f64>() - mass[k]).abs() < 1e-14);
    }
    assert!(energy[10] < energy[0]);
    assert!(v["cond_k"].as_f64().unwrap() >= 1.0);

    // --renormalize: rows sum to one, and are the raw rows divided by their mass
    let w = run_json(&argv("flow", &pairs, &["--renormalize", "--json"]));
    let raw = v["mu"][10].as_array().unwrap();
    let ren = w["mu"][10].as_array().unwrap();
    for (x, y) in raw.iter().zip(ren) {
        assert!((x.as_f64().unwrap() / mass[10] - y.as_f64().unwrap()).abs() < 1e-14);
    }
    assert!((col(&w, "mass")[10] - 1.0).abs() < 1e-14);
}

#[test]
fn flow_from_files_agrees_with_the_library() {
    let d = tmpdir("files");
    let xs: Vec<f64> = (0..10).map(|i| -2.0 + 4.0 * i as f64 / 9.0).collect();
    let x = write_col(&d.join("x.csv"), &xs);
    let v = write_col(
        &d.join("v.csv"),
        &xs.iter().map(|x| x * x).collect::<Vec<_>>(),
    );
    let mu0 = write_col(&d.join("mu0.csv"), &[0.1; 10]);
    let j = run_json(&[
        "flow", "--x", &x, "--v", &v, "--mu0", &mu0, "--eps", "0.6", "--t-end", "0.3", "--dt",
        "0.1", "--json",
    ]);
    use sinkflow::finite::{resolvent_flow, FiniteSpace, FlowParams, Kernel};
    let s = FiniteSpace::new(xs.clone(), 1, sinkflow::Cost::SqEuclidean).unwrap();
    let k = Kernel::new(&s, 0.6, &Default::default()).unwrap();
    let vv: Vec<f64> = xs.iter().map(|x| x * x).collect();
    let p = FlowParams {
        dt: 0.1,
        steps: 3,
        lcp: Default::default(),
        bmap: Default::default(),
    };
    let lib = resolvent_flow(&s, &k, &vv, &[0.1; 10], &p).unwrap();
    assert_eq!(col(&j, "energy"), lib.energy);
}

#[test]
fn metric_subcommand() {
    let d = tmpdir("metric");
    let sigma = write_col(&d.join("s.csv"), &[0.1, -0.1, 0.05, -0.05, 0.0]);
    let v = run_json(&[
        "metric", "--grid", "0:1:5", "--eps", "0.2", "--mu", "uniform", "--sigma", &sigma, "--json",
    ]);
    assert!(v["g"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_exits_2_with_nothing_on_stdout() {
    let d = tmpdir("bad");
    let v_short = write_col(&d.join("v_short.csv"), &[1.0, 2.0]);
    let mu_neg = write_col(&d.join("mu_neg.csv"), &[0.5, 0.6, -0.1, 0.0, 0.0]);
    let mu_sum = write_col(&d.join("mu_sum.csv"), &[0.2, 0.2, 0.2, 0.2, 0.2 + 1e-9]);
    let mu_short = write_col(&d.join("mu_short.csv"), &[0.5, 0.5]);
    let x_dup = write_col(&d.join("x_dup.csv"), &[0.0, 1.0, 0.0]);
    let x_one = write_col(&d.join("x_one.csv"), &[0.3]);
    let nan = d.join("nan.csv");
    std::fs::write(&nan, "0.2\nnan\n0.2\n0.2\n0.4\n").unwrap();
    let nan = nan.display().to_string();
    let base = |over: &[(&str, &str)]| -> Vec<String> {
        let mut a: Vec<(String, String)> = [
            ("--grid", "0:1:5"),
            ("--potential", "quadratic"),
            ("--mu0", "uniform"),
            ("--eps", "0.2"),
            ("--t-end", "0.2"),
            ("--dt", "0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in over {
            if let Some(e) = a.iter_mut().find(|e| e.0 == *k) {
                e.1 = v.to_string();
            } else {
                a.push((k.to_string(), v.to_string()));
            }
        }
        let mut out = vec!["flow".to_string()];
        for (k, v) in a {
            if k == "--potential" && v.is_empty() {
                continue;
            }
            if k == "--grid" && v.is_empty() {
                continue;
            }
            out.push(k);
            out.push(v);
        }
        out.push("--json".into());
        out
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "V of the wrong length",
            base(&[("--potential", ""), ("--v", &v_short)]),
        ),
        ("mu0 of the wrong length", base(&[("--mu0", &mu_short)])),
        ("mu0 negative", base(&[("--mu0", &mu_neg)])),
        ("mu0 not summing to 1", base(&[("--mu0", &mu_sum)])),
        ("NaN in mu0", base(&[("--mu0", &nan)])),
        ("eps = 0", base(&[("--eps", "0")])),
        ("eps < 0", base(&[("--eps", "-0.1")])),
        ("eps NaN", base(&[("--eps", "nan")])),
        (
            "duplicate points",
            base(&[("--grid", ""), ("--x", &x_dup), ("--mu0", "uniform")]),
        ),
        ("one point", base(&[("--grid", ""), ("--x", &x_one)])),
        ("dt = 0", base(&[("--dt", "0")])),
        ("dt < 0", base(&[("--dt", "-0.1")])),
        ("t-end < 0", base(&[("--t-end", "-0.2")])),
        (
            "t-end not a whole number of steps",
            base(&[("--t-end", "0.25")]),
        ),
        ("missing file", base(&[("--mu0", "/nonexistent/mu.csv")])),
        ("unknown potential", base(&[("--potential", "sombrero")])),
        ("bad grid", base(&[("--grid", "0:1")])),
        ("unknown scheme", base(&[("--scheme", "explicit")])),
        // 100 points on [0,1] at eps = 0.04 (s = 392): refused, the message names the safe eps
        (
            "ill-conditioned",
            base(&[("--grid", "0:1:100"), ("--eps", "0.04")]),
        ),
    ];
    for (what, args) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&a);
        assert_eq!(code, 2, "{what}: exit {code}, stderr {err}");
        assert!(out.is_empty(), "{what}: stdout not empty: {out}");
        assert!(!err.is_empty(), "{what}: no message");
        if what == "ill-conditioned" {
            assert!(err.contains("largest safe eps"), "{err}");
            let tail = err
                .split("largest safe eps for this point set is ")
                .nth(1)
                .unwrap();
            let num: f64 = tail.split_whitespace().next().unwrap().parse().unwrap();
            assert!(num > 5e-4 && num < 2e-3, "safe eps {num}");
        }
    }
}

#[test]
fn step_rule_accepts_whole_numbers_within_1e9() {
    // 0.3 / 0.1 = 2.9999999999999996 in floating point: a whole number within 1e-9
    let flow = |t_end: &str| {
        run(&argv(
            "flow",
            &[
                ("--grid", "0:1:5"),
                ("--potential", "quadratic"),
                ("--mu0", "uniform"),
                ("--eps", "0.2"),
                ("--t-end", t_end),
                ("--dt", "0.1"),
            ],
            &["--json"],
        ))
    };
    let (code, out, err) = flow("0.3");
    assert_eq!(code, 0, "{err}");
    assert_eq!(col(&json(&out), "t").len(), 4);
    // t_end = 0: the initial row only
    let (code, out, _) = flow("0");
    assert_eq!(code, 0);
    assert_eq!(col(&json(&out), "t"), vec![0.0]);
}

#[test]
fn sjko_json_contract_and_refusals() {
    // the published regime: 100 points on [0,1], eps = 0.04 (refused by `flow`, fine for sjko)
    let v = run_json(&argv(
        "sjko",
        &[
            ("--grid", "0:1:100"),
            ("--potential", "quadratic"),
            ("--mu0", "gaussian:0.7:0.1"),
            ("--eps", "0.04"),
            ("--tau", "0.05"),
            ("--t-end", "0.05"),
            ("--tol", "1e-9"),
        ],
        &["--json"],
    ));
    for k in ["t", "mu", "energy", "mass", "kkt_residual", "cond_k"] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    assert!(v["cond_k"].is_null(), "sjko never forms K");
    assert_eq!(col(&v, "t"), vec![0.0, 0.05]);
    assert!(col(&v, "kkt_residual")[1] <= 1e-9);
    assert!((col(&v, "mass")[1] - 1.0).abs() < 1e-14);
    // --dt is not an sjko argument; tau must be > 0; t_end a whole number of steps
    let small = |step: (&'static str, &'static str), t_end: &'static str| {
        argv(
            "sjko",
            &[
                ("--grid", "0:1:5"),
                ("--potential", "quadratic"),
                ("--mu0", "uniform"),
                ("--eps", "0.2"),
                step,
                ("--t-end", t_end),
            ],
            &["--json"],
        )
    };
    for args in [
        small(("--tau", "0"), "0.1"),
        small(("--tau", "0.1"), "0.15"),
        small(("--dt", "0.1"), "0.1"),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
    }
}

#[test]
fn reflected_scheme_keeps_more_mass_than_the_implicit_one() {
    let get = |scheme: &str| {
        let v = run_json(&argv(
            "flow",
            &[
                ("--grid", "0:1:10"),
                ("--potential", "quadratic"),
                ("--mu0", "gaussian:0.6:0.25"),
                ("--eps", "0.05"),
                ("--t-end", "0.02"),
                ("--dt", "0.005"),
                ("--scheme", scheme),
            ],
            &["--json"],
        ));
        assert_eq!(v["scheme"], scheme);
        col(&v, "mass")
    };
    let (imp, refl) = (get("implicit"), get("reflected"));
    // implicit: loses O(h) mass; reflected (full support here): conserves it to round-off
    assert!(1.0 - imp[4] > 1e-4);
    assert!((1.0 - refl[4]).abs() < 1e-13);
}

#[test]
fn double_double_runs_past_the_double_range() {
    // 60 points on [-2, 2] at eps = 0.0735 (s = 16, cond(K) ~ 1e16): refused in double (exit 2),
    // certified in double-double (KKT evaluated in double-double)
    let base = argv(
        "flow",
        &[
            ("--grid", "-2:2:60"),
            ("--potential", "double-well"),
            ("--mu0", "gaussian:0.5:0.4"),
            ("--eps", "0.0735"),
            ("--t-end", "0.2"),
            ("--dt", "0.05"),
        ],
        &["--json"],
    );
    let (code, out, err) = run(&base);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty() && err.contains("double-double"));
    let mut dd: Vec<&str> = base.to_vec();
    dd.extend(["--precision", "double-double"]);
    let v = run_json(&dd);
    assert_eq!(v["precision"], "double-double");
    assert!(v["cond_k"].as_f64().unwrap() > 1e15);
    assert!(col(&v, "kkt_residual").iter().all(|&r| r < 1e-25));
    // the reflected scheme in double-double: certified too, and (order 2, unitary off the
    // boundary) it keeps more mass than the implicit resolvent
    let mut refl = dd.clone();
    refl.extend(["--scheme", "reflected"]);
    let r = run_json(&refl);
    assert_eq!(r["precision"], "double-double");
    assert!(col(&r, "kkt_residual").iter().all(|&x| x < 1e-25));
    let (m_imp, m_refl) = (col(&v, "mass"), col(&r, "mass"));
    assert!(1.0 - m_refl[4] < 1.0 - m_imp[4], "{m_refl:?} vs {m_imp:?}");
    // bad precision: exit 2; SJKO refuses double-double with a reason, nothing on stdout
    let mut bad = base.to_vec();
    bad.extend(["--precision", "quad"]);
    assert_eq!(run(&bad).0, 2);
    let sjko = argv(
        "sjko",
        &[
            ("--grid", "0:1:10"),
            ("--potential", "quadratic"),
            ("--mu0", "uniform"),
            ("--eps", "0.05"),
            ("--tau", "0.05"),
            ("--t-end", "0.1"),
            ("--precision", "double-double"),
        ],
        &["--json"],
    );
    let (code, out, err) = run(&sjko);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty() && err.contains("log domain"), "{err}");
}
