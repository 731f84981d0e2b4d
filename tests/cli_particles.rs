//! `sinkflow particles flow`: JSON contract, trajectory file, bad input → exit 2 with one
//! stderr line and nothing on stdout.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sinkflow"))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sinkflow-cli-particles-{tag}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_csv(path: &Path, rows: &[&[f64]]) {
    let text: String = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

fn setup(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = tmpdir(tag);
    let x = d.join("x.csv");
    let y = d.join("y.csv");
    write_csv(&x, &[&[0.0, 0.0], &[0.5, 0.1], &[-0.3, 0.4], &[0.2, -0.6]]);
    write_csv(&y, &[&[2.0, 1.0], &[2.5, 1.2], &[1.7, 0.6]]);
    (d, x, y)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = bin().args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn flow_json_and_trajectory() {
    let (d, x, y) = setup("ok");
    let out = d.join("traj");
    let (code, stdout, stderr) = run(&[
        "particles",
        "flow",
        "--x",
        x.to_str().unwrap(),
        "--y",
        y.to_str().unwrap(),
        "--eps",
        "0.5",
        "--t-end",
        "1",
        "--dt",
        "0.05",
        "--samples",
        "4",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["t"].as_array().unwrap().len(), 5);
    assert_eq!(v["mean"].as_array().unwrap().len(), 5);
    assert_eq!(v["cov"][0].as_array().unwrap().len(), 2);
    let div = v["divergence"].as_array().unwrap();
    assert_eq!(div.len(), 5);
    assert!(div[4].as_f64().unwrap() < div[0].as_f64().unwrap());
    // trajectory.npy: header declares shape (5, 4, 2); payload 5·4·2 float64 values.
    let bytes = std::fs::read(out.join("trajectory.npy")).unwrap();
    let header = String::from_utf8_lossy(&bytes[..128.min(bytes.len())]).into_owned();
    assert!(header.contains("(5, 4, 2"), "{header}");
    assert!(bytes.len() >= 5 * 4 * 2 * 8);
    // Other drifts run too.
    for extra in [
        &["--drift", "l-step", "--l", "3"][..],
        &["--drift", "one-sided", "--mask"][..],
    ] {
        let mut a = vec![
            "particles",
            "flow",
            "--x",
            x.to_str().unwrap(),
            "--y",
            y.to_str().unwrap(),
            "--eps",
            "0.5",
            "--t-end",
            "0.2",
            "--dt",
            "0.1",
            "--json",
            "--cost",
            "half-sq",
        ];
        a.extend_from_slice(extra);
        let (code, stdout, stderr) = run(&a);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.trim().starts_with('{'));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let (d, x, y) = setup("bad");
    let bad = d.join("bad.csv");
    std::fs::write(&bad, "1,2\n3,oops\n").unwrap();
    let y3 = d.join("y3.csv");
    write_csv(&y3, &[&[1.0, 2.0, 3.0]]);
    let xs = x.to_str().unwrap();
    let ys = y.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "--x",
            "no-such-dir/x.csv",
            "--y",
            ys,
            "--eps",
            "1",
            "--t-end",
            "1",
            "--dt",
            "0.1",
        ],
        vec![
            "--x",
            bad.to_str().unwrap(),
            "--y",
            ys,
            "--eps",
            "1",
            "--t-end",
            "1",
            "--dt",
            "0.1",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "0", "--t-end", "1", "--dt", "0.1",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "-1", "--t-end", "1", "--dt", "0.1",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "1", "--t-end", "1", "--dt", "0",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "1", "--t-end", "1", "--dt", "-0.1",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "1", "--t-end", "1", "--dt", "0.1", "--drift", "l-step",
            "--l", "4",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "1", "--t-end", "1", "--dt", "0.1", "--drift", "l-step",
        ],
        vec![
            "--x",
            xs,
            "--y",
            y3.to_str().unwrap(),
            "--eps",
            "1",
            "--t-end",
            "1",
            "--dt",
            "0.1",
        ],
        vec![
            "--x", xs, "--y", ys, "--eps", "1", "--t-end", "1", "--dt", "0.1", "--cost", "l1",
        ],
        vec![
            "--x",
            xs,
            "--y",
            ys,
            "--eps",
            "1",
            "--t-end",
            "1",
            "--dt",
            "0.1",
            "--samples",
            "0",
        ],
    ];
    for c in cases {
        let mut a = vec!["particles", "flow", "--json"];
        a.extend_from_slice(&c);
        let (code, stdout, stderr) = run(&a);
        assert_eq!(code, 2, "{c:?}: {stderr}");
        assert!(stdout.is_empty(), "{c:?}: stdout {stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{c:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
