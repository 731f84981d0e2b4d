//! `sinkflow sinkhorn`: JSON contract, exit codes, empty stdout on errors, .npy and .csv
//! inputs.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sinkflow"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sinkflow-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = bin().arg("sinkhorn").args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Two small clouds written as .csv and .npy.
fn inputs(d: &std::path::Path) -> (String, String, String, String) {
    let x: Vec<f64> = (0..20).map(|i| ((i as f64) * 0.7).sin()).collect(); // 10 x 2
    let y: Vec<f64> = (0..16).map(|i| ((i as f64) * 0.3).cos() + 0.5).collect(); // 8 x 2
    let xc = d.join("x.csv");
    let mut s = String::from("# x points\n");
    for r in x.chunks(2) {
        s.push_str(&format!("{:e},{:e}\n", r[0], r[1]));
    }
    std::fs::write(&xc, s).unwrap();
    let yn = d.join("y.npy");
    sinkflow::io::write_npy_2d(&yn, 8, 2, &y).unwrap();
    let wx = d.join("wx.csv");
    std::fs::write(&wx, (1..=10).map(|i| format!("{i}\n")).collect::<String>()).unwrap();
    let wy = d.join("wy.npy");
    sinkflow::io::write_npy_2d(&wy, 8, 1, &[0.125; 8]).unwrap();
    let p = |p: PathBuf| p.display().to_string();
    (p(xc), p(yn), p(wx), p(wy))
}

#[test]
fn json_contract_and_library_agreement() {
    let d = tmpdir("ok");
    let (x, y, wx, wy) = inputs(&d);
    let (code, out, err) = run(&["--x", &x, "--y", &y, "--eps", "0.5", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out.trim().lines().count(), 1);
    for k in [
        "ot",
        "transport_cost",
        "primal",
        "iterations",
        "marginal_error",
        "converged",
        "seconds",
        "mode",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {out}");
    }
    assert_eq!(v["converged"], true);
    assert!(v.get("divergence").is_none());
    // the CLI reports the library's value (same files read back through sinkflow::io)
    let xs = sinkflow::io::read_points(&x).unwrap();
    let ys = sinkflow::io::read_points(&y).unwrap();
    let xc = sinkflow::sinkhorn::PointCloud::from_flat(xs.data, 2, None, false).unwrap();
    let yc = sinkflow::sinkhorn::PointCloud::from_flat(ys.data, 2, None, false).unwrap();
    let lib =
        sinkflow::sinkhorn::solve(&xc, &yc, &sinkflow::sinkhorn::SinkhornParams::new(0.5)).unwrap();
    // The CSV stores {:e} (shortest round-trip) so the data are identical; serde_json's
    // default float parser is not correctly rounded (no `float_roundtrip` feature) and may be
    // 1 ulp off: 1e-15 relative.
    let cli = v["ot"].as_f64().unwrap();
    assert!(
        (cli - lib.ot).abs() <= 1e-15 * lib.ot.abs(),
        "{cli} vs {}",
        lib.ot
    );

    // --debias, weights, half cost, forced mode
    let (code, out, err) = run(&[
        "--x",
        &x,
        "--y",
        &y,
        "--wx",
        &wx,
        "--wy",
        &wy,
        "--normalise",
        "--eps",
        "1",
        "--cost",
        "half-sq",
        "--mode",
        "dense",
        "--debias",
        "--eps-scaling",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for k in ["divergence", "ot_xx", "ot_yy"] {
        assert!(v[k].is_f64(), "missing {k}");
    }
    assert_eq!(v["mode"], "dense");
    assert_eq!(v["cost"], "half-sq");
    let s = v["ot"].as_f64().unwrap()
        - 0.5 * v["ot_xx"].as_f64().unwrap()
        - 0.5 * v["ot_yy"].as_f64().unwrap();
    assert!((s - v["divergence"].as_f64().unwrap()).abs() < 1e-15);
    assert!(v["divergence"].as_f64().unwrap() >= 0.0);

    // without --json: human-readable, still exit 0
    let (code, out, _) = run(&["--x", &x, "--y", &y, "--eps", "0.5"]);
    assert_eq!(code, 0);
    assert!(out.contains("ot"));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_input_exits_2_with_empty_stdout() {
    let d = tmpdir("bad");
    let (x, y, wx, _) = inputs(&d);
    let y3 = d.join("y3.csv");
    std::fs::write(&y3, "1,2,3\n4,5,6\n").unwrap();
    let hdr = d.join("hdr.csv");
    std::fs::write(&hdr, "a,b\n1,2\n").unwrap();
    let nan = d.join("nan.csv");
    std::fs::write(&nan, "1,nan\n").unwrap();
    let neg = d.join("neg.csv");
    std::fs::write(&neg, "1\n-1\n1\n1\n1\n1\n1\n1\n1\n1\n").unwrap();
    let y3 = y3.display().to_string();
    let hdr = hdr.display().to_string();
    let nan = nan.display().to_string();
    let neg = neg.display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--x", &x, "--y", &y, "--eps", "0", "--json"],
        vec!["--x", &x, "--y", &y, "--eps", "-0.1", "--json"],
        vec!["--x", &x, "--y", &y, "--eps", "abc", "--json"],
        vec!["--x", &x, "--y", &y, "--eps", "1", "--tol", "-1", "--json"],
        vec!["--x", &x, "--y", &y, "--eps", "1", "--cost", "l1", "--json"],
        vec![
            "--x", &x, "--y", &y, "--eps", "1", "--mode", "gpu", "--json",
        ],
        vec!["--x", &x, "--y", &y3, "--eps", "1", "--json"],
        vec!["--x", &hdr, "--y", &y, "--eps", "1", "--json"],
        vec!["--x", &nan, "--y", &y, "--eps", "1", "--json"],
        vec!["--x", "missing.npy", "--y", &y, "--eps", "1", "--json"],
        vec![
            "--x",
            &x,
            "--y",
            &y,
            "--wx",
            &neg,
            "--normalise",
            "--eps",
            "1",
            "--json",
        ],
        // weights not summing to one without --normalise
        vec!["--x", &x, "--y", &y, "--wx", &wx, "--eps", "1", "--json"],
        vec!["--x", &x, "--eps", "1", "--json"],
    ];
    for c in cases {
        let (code, out, err) = run(&c);
        assert_eq!(code, 2, "{c:?}: {err}");
        assert!(out.is_empty(), "{c:?}: stdout {out}");
        assert!(!err.trim().is_empty());
        if !c.contains(&"--json") || c.len() > 3 {
            // one line of message for our own errors (clap's usage errors may be longer)
            if !err.contains("Usage") {
                assert_eq!(err.trim().lines().count(), 1, "{err}");
            }
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn nonconvergence_exit_1_unless_allowed() {
    let d = tmpdir("nc");
    let (x, y, _, _) = inputs(&d);
    let args = [
        "--x",
        &x,
        "--y",
        &y,
        "--eps",
        "0.01",
        "--max-iters",
        "2",
        "--json",
    ];
    let (code, out, err) = run(&args);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("residual"), "{err}");
    let mut allowed = args.to_vec();
    allowed.push("--allow-nonconvergence");
    let (code, out, _) = run(&allowed);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["converged"], false);
    assert!(v["marginal_error"].as_f64().unwrap() > 1e-9);
    std::fs::remove_dir_all(&d).ok();
}

/// `--potentials-out` writes the library's potentials (JSON, shortest round-trip decimals) and
/// the over-relaxation option accepts a factor, `auto` or `anderson[:M]` (and the JSON names the
/// kind that ran); bad values are bad input (exit 2).
#[test]
fn potentials_out_and_over_relaxation() {
    let d = tmpdir("pot");
    let (x, y, _, _) = inputs(&d);
    let pot = d.join("pot.json");
    let pot_s = pot.display().to_string();
    let (code, out, err) = run(&[
        "--x",
        &x,
        "--y",
        &y,
        "--eps",
        "0.5",
        "--json",
        "--potentials-out",
        &pot_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&pot).unwrap())
        .expect("potentials file is JSON");
    let f: Vec<f64> = serde_json::from_value(p["f"].clone()).unwrap();
    let g: Vec<f64> = serde_json::from_value(p["g"].clone()).unwrap();
    assert_eq!((f.len(), g.len()), (10, 8));
    // ot = <a, f> + <b, g> with uniform weights (1 ulp per parsed value at most).
    let ot = f.iter().sum::<f64>() / 10.0 + g.iter().sum::<f64>() / 8.0;
    assert!((ot - v["ot"].as_f64().unwrap()).abs() <= 1e-14 * ot.abs());

    for w in ["auto", "1.5", "anderson", "anderson:3"] {
        let (code, out, err) = run(&[
            "--x",
            &x,
            "--y",
            &y,
            "--eps",
            "0.05",
            "--json",
            "--over-relaxation",
            w,
        ]);
        assert_eq!(code, 0, "{w}: {err}");
        let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r["converged"], true);
        let kind = &r["acceleration"]["over_relaxation"]["kind"];
        assert_eq!(
            kind,
            if w.starts_with("anderson") {
                "anderson"
            } else if w == "auto" {
                "adaptive"
            } else {
                "fixed"
            }
        );
    }
    for (flag, value) in [
        ("--over-relaxation", "fast"),
        ("--over-relaxation", "2"),
        ("--over-relaxation", "anderson:0"),
        ("--over-relaxation", "anderson:x"),
        ("--potentials-out", "/nonexistent-dir/p.json"),
    ] {
        let (code, out, err) = run(&["--x", &x, "--y", &y, "--eps", "0.5", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(out.is_empty());
        // The message names the option (or the library parameter behind it).
        let field = flag.trim_start_matches("--").replace('-', "_");
        assert!(err.contains(flag) || err.contains(&field), "{err}");
    }
    std::fs::remove_dir_all(&d).ok();
}

/// `SINKFLOW_SIMD` selects the kernels' path: the JSON reports it, the AVX2 build agrees with
/// the portable one bit for bit (kernel.rs contract), and a path the CPU lacks or an unknown
/// name is bad input (exit 2, nothing on stdout).
#[test]
fn simd_path_is_selectable_and_reported() {
    let d = tmpdir("simd");
    let (x, y, _, _) = inputs(&d);
    let solve = |path: &str| {
        let o = bin()
            .env("SINKFLOW_SIMD", path)
            .args(["sinkhorn", "--x", &x, "--y", &y, "--eps", "0.3", "--json"])
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = solve("baseline");
    assert_eq!(code, 0, "{err}");
    let base: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(base["simd"], "baseline");
    let has = |f: &str| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && f == "avx2"
                || std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
                    && f == "avx512"
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = f;
            false
        }
    };
    for path in ["avx2", "avx512"] {
        let (code, out, err) = solve(path);
        if has(path) {
            assert_eq!(code, 0, "{err}");
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(v["simd"], path);
            // Both FMA paths (AVX2, AVX-512) round the fast exponential's sum differently
            // from the baseline, by a few ulp per row (tests/sinkhorn_kernel.rs), which
            // stays far below 1e-12 of OT_eps.
            let (a, b) = (v["ot"].as_f64().unwrap(), base["ot"].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        } else {
            assert_eq!(code, 2, "{err}");
            assert!(out.is_empty());
            assert!(err.contains("cannot run the"), "{err}");
        }
    }
    let (code, out, err) = solve("sse9");
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("SINKFLOW_SIMD"), "{err}");
    let (code, out, err) = solve("");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(["avx512", "avx2", "baseline"].contains(&v["simd"].as_str().unwrap()));
}

/// `--plain` runs plain Sinkhorn; the default accelerates; `"acceleration"` says what ran
/// (schema: README, theory/sinkhorn.md §4c), and both agree on OT_eps to the first-order
/// duality bound max|f|·tol of each solve (theory/sinkhorn.md §3), max|f| read back from
/// `--potentials-out`.
#[test]
fn plain_flag_and_acceleration_report() {
    let d = tmpdir("plain");
    let (x, y, _, _) = inputs(&d);
    // eps = 0.004 is below 1/2000 of the squared bounding-box diagonal (12.5): annealed.
    let args = [
        "--x",
        &x,
        "--y",
        &y,
        "--eps",
        "0.004",
        "--tol",
        "1e-9",
        "--max-iters",
        "1000000",
        "--json",
    ];
    let pa = d.join("pa.json").display().to_string();
    let pp = d.join("pp.json").display().to_string();
    let (code, out, err) = run(&[&args[..], &["--potentials-out", &pa]].concat());
    assert_eq!(code, 0, "{err}");
    let acc: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let (code, out, err) = run(&[&args[..], &["--plain", "--potentials-out", &pp]].concat());
    assert_eq!(code, 0, "{err}");
    let plain: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let fmax = |p: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["f"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap().abs())
            .fold(0.0f64, f64::max)
    };
    let bound = (fmax(&pa) + fmax(&pp)) * 1e-9 + 1e-14;
    assert_eq!(
        plain["acceleration"],
        serde_json::json!({"policy": "plain", "over_relaxation": null, "eps_scaling": null})
    );
    let a = &acc["acceleration"];
    assert_eq!(a["policy"], "auto");
    assert_eq!(a["over_relaxation"]["kind"], "anderson");
    for k in ["omega", "relaxed_iterations", "restored"] {
        assert!(a["over_relaxation"].get(k).is_some(), "{k}");
    }
    for k in ["stages", "iterations", "start"] {
        assert!(a["eps_scaling"].get(k).is_some(), "{k}");
    }
    let (oa, op) = (acc["ot"].as_f64().unwrap(), plain["ot"].as_f64().unwrap());
    assert!((oa - op).abs() <= bound, "{oa} vs {op}");
    assert_eq!(acc["converged"], plain["converged"]);
    // --plain excludes the explicit accelerations (bad input: exit 2, nothing on stdout)
    for extra in [&["--eps-scaling"][..], &["--over-relaxation", "1.5"][..]] {
        let (code, out, _) = run(&[&args[..], &["--plain"], extra].concat());
        assert_eq!((code, out.as_str()), (2, ""));
    }
    std::fs::remove_dir_all(&d).ok();
}
