//! The fuzz campaign's input classes, kept as a table of argv (issue: "inputs that cannot
//! break it"). Every row states the exit code the CLI must give; an error must print one
//! `error:` line on stderr and nothing on stdout, and no row may panic (101) or abort (134).

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sinkflow-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `.npy` file with an arbitrary header (shape and dtype as written) and raw data bytes.
fn raw_npy(path: &Path, shape: &str, descr: &str, data: &[u8]) {
    let mut hdr = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + hdr.len() + 1) % 64 != 0 {
        hdr.push(' ');
    }
    hdr.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((hdr.len() as u16).to_le_bytes());
    bytes.extend(hdr.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn csv(path: &Path, rows: &[Vec<f64>]) {
    let s: String = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(path, s).unwrap();
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[String]) -> Outcome {
    let o = Command::new(env!("CARGO_BIN_EXE_sinkflow"))
        .args(args)
        .output()
        .unwrap();
    Outcome {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn argv(s: &str, files: &[(&str, &Path)]) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            files
                .iter()
                .find(|(k, _)| *k == w)
                .map(|(_, p)| p.display().to_string())
                .unwrap_or_else(|| w.to_string())
        })
        .collect()
}

#[test]
fn fuzz_classes_exit_cleanly() {
    let d = tmpdir();
    let x = d.join("x.csv");
    let y = d.join("y.csv");
    csv(
        &x,
        &(0..12)
            .map(|i| vec![(i as f64 * 0.7).sin(), (i as f64 * 0.3).cos()])
            .collect::<Vec<_>>(),
    );
    csv(
        &y,
        &(0..9)
            .map(|i| vec![(i as f64 * 0.5).cos() + 1.0, (i as f64 * 0.9).sin()])
            .collect::<Vec<_>>(),
    );
    let huge_square = d.join("huge_square.npy");
    raw_npy(
        &huge_square,
        "(4294967296, 4294967296)",
        "<f8",
        &f64s(&[1.0, 2.0]),
    );
    let huge_rows = d.join("huge_rows.npy");
    raw_npy(
        &huge_rows,
        "(9223372036854775809, 2)",
        "<f8",
        &f64s(&[1.0, 2.0]),
    );
    let ints = d.join("ints.npy");
    raw_npy(&ints, "(2, 1)", "<i8", &[0u8; 16]);
    let w_over = d.join("w_over.csv");
    std::fs::write(&w_over, "1e308\n1e308\n").unwrap();
    let p2 = d.join("p2.csv");
    std::fs::write(&p2, "1,1\n2,2\n").unwrap();
    let bom = d.join("bom.csv");
    std::fs::write(&bom, "\u{feff}1,1\n2,2\n").unwrap();
    let w32 = d.join("w32.npy");
    let w: Vec<u8> = (0..12)
        .flat_map(|_| (1.0f32 / 12.0).to_le_bytes())
        .collect();
    raw_npy(&w32, "(12,)", "<f4", &w);
    let files = [
        ("X", x.as_path()),
        ("Y", y.as_path()),
        ("HUGE_SQUARE", huge_square.as_path()),
        ("HUGE_ROWS", huge_rows.as_path()),
        ("INTS", ints.as_path()),
        ("W_OVER", w_over.as_path()),
        ("P2", p2.as_path()),
        ("BOM", bom.as_path()),
        ("W32", w32.as_path()),
    ];
    let g = "--mean0 0 --cov0 1 --mean-target 1 --cov-target 2";
    // (argv, expected exit code, a fragment the stderr must contain, one it must not).
    let table: Vec<(String, i32, &str, &str)> = vec![
        // Sizes: refused before allocating, never a capacity-overflow panic or an abort.
        (format!("gaussian flow --eps 1 {g} --t-end 1 --samples 18446744073709551615 --json"), 2, "memory", "panicked"),
        (format!("gaussian bures-flow {g} --t-end 1 --samples 18446744073709551615 --json"), 2, "memory", "panicked"),
        (format!("gaussian flow --eps 1 {g} --t-end 1 --samples 1000000000000 --json"), 2, "memory", "panicked"),
        ("particles flow --x X --y Y --eps 1 --t-end 1 --dt 0.1 --samples 18446744073709551615 --json".into(), 2, "output intervals", "panicked"),
        ("particles flow --x X --y Y --eps 1 --t-end 0.1 --dt 0.05 --samples 5 --json".into(), 2, "output intervals", "panicked"),
        // .npy headers whose shape overflows or exceeds the file: not one point, not "empty".
        ("particles flow --x HUGE_SQUARE --y Y --eps 1 --t-end 1 --dt 0.1 --json".into(), 2, "header declares shape (4294967296, 4294967296)", "line 0"),
        ("particles flow --x HUGE_ROWS --y Y --eps 1 --t-end 1 --dt 0.1 --json".into(), 2, "header declares shape", "empty"),
        ("sinkhorn --x HUGE_ROWS --y Y --eps 1 --json".into(), 2, "header declares shape", "line 0"),
        ("sinkhorn --x INTS --y Y --eps 1 --json".into(), 2, "'<i8'", "DType"),
        // Non-convergence inside a flow is exit 1 with the residual, never hidden.
        ("particles flow --x X --y Y --eps 1e-8 --t-end 0.02 --dt 0.01 --samples 1 --json".into(), 1, "residual", "panicked"),
        ("particles flow --x X --y Y --eps 1e-8 --t-end 0.02 --dt 0.01 --samples 1 --json --allow-nonconvergence".into(), 0, "", "panicked"),
        // Tiny and huge eps.
        ("gaussian divergence --eps 5e-324 --mean-a 0 --cov-a 1 --mean-b 1 --cov-b 2 --json".into(), 2, "5e-324", "0.0000"),
        ("sinkhorn --x X --y Y --eps -5e-324 --json".into(), 2, "-5e-324", "0.0000"),
        ("gaussian divergence --eps 1e-308 --mean-a 0 --cov-a 1 --mean-b 1 --cov-b 2 --json".into(), 0, "", "too large"),
        ("sinkhorn --x X --y Y --eps 1e300 --debias --json".into(), 0, "", "panicked"),
        // A flow that has converged is not "stiff".
        (format!("gaussian flow --eps 1 {g} --t-end 1500 --samples 1 --json"), 0, "", "stiff"),
        // Weights: an overflowing sum with --normalise is fine; float32 weights pass the sum
        // check; a UTF-8 byte-order mark is not a header line.
        ("sinkhorn --x P2 --y P2 --wx W_OVER --normalise --eps 1 --json".into(), 0, "", "panicked"),
        ("sinkhorn --x X --y X --wx W32 --eps 1 --json".into(), 0, "", "sum"),
        ("sinkhorn --x BOM --y P2 --eps 1 --json".into(), 0, "", "header line"),
    ];
    for (cmd, code, must, must_not) in table {
        let o = run(&argv(&cmd, &files));
        assert_eq!(o.code, code, "{cmd}\nstderr: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{cmd}: {}", o.stderr);
        if code == 0 {
            let v: serde_json::Value = serde_json::from_str(&o.stdout)
                .unwrap_or_else(|e| panic!("{cmd}: stdout is not one JSON object ({e})"));
            assert!(v.is_object(), "{cmd}");
        } else {
            assert!(o.stdout.is_empty(), "{cmd}: stdout {}", o.stdout);
            assert_eq!(o.stderr.lines().count(), 1, "{cmd}: {}", o.stderr);
            assert!(o.stderr.starts_with("error: "), "{cmd}: {}", o.stderr);
            assert!(
                o.stderr.contains(must),
                "{cmd}: '{must}' not in {}",
                o.stderr
            );
        }
        if !must_not.is_empty() {
            assert!(
                !o.stderr.contains(must_not),
                "{cmd}: '{must_not}' in {}",
                o.stderr
            );
        }
    }
}

/// Explicit dense mode on a problem whose two cost matrices exceed half the machine's memory
/// is refused before allocating (the size is derived from this machine's memory, so the test
/// allocates nothing large anywhere).
#[test]
fn dense_mode_is_refused_past_the_memory_budget() {
    let phys = sinkflow::error::physical_memory_bytes() as f64;
    // 2 n² 8 bytes > phys / 2  <=>  n > sqrt(phys / 32).
    let n = (phys / 32.0).sqrt() as usize + 1;
    let d = tmpdir();
    let x = d.join("many.csv");
    let mut s = String::with_capacity(n * 12);
    for i in 0..n {
        s.push_str(&format!("{}\n", i as f64 / n as f64));
    }
    std::fs::write(&x, s).unwrap();
    let xs = x.display().to_string();
    let o = run(&[
        "sinkhorn".into(),
        "--x".into(),
        xs.clone(),
        "--y".into(),
        xs,
        "--eps".into(),
        "1".into(),
        "--mode".into(),
        "dense".into(),
        "--json".into(),
    ]);
    assert_eq!(o.code, 2, "stderr: {}", o.stderr);
    assert!(o.stdout.is_empty());
    assert!(o.stderr.contains("memory"), "{}", o.stderr);
}
