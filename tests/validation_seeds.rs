//! The campaign's sampled verdicts do not depend on the campaign seed: every experiment that
//! samples is rerun with `validate --seed 1`, `--seed 2` and `--seed 3` (independent replicate
//! draws), and each claim must get the same verdict for the three (or be `inconclusive` for
//! all three). Checks without replicates must not depend on the seed at all (same measured
//! value, bit for bit).

use std::path::PathBuf;
use std::process::Command;

/// The experiments that draw samples (their checks carry replicate intervals).
const SAMPLED: [&str; 5] = [
    "particles-engine-closed-form",
    "particles-gaussian-crossval",
    "particles-sample-complexity",
    "particles-temperature-sweep",
    "pma-particles",
];

fn run(seed: u64) -> Vec<serde_json::Value> {
    let out: PathBuf = std::env::temp_dir().join(format!(
        "sinkflow-seed-consistency-{}-{seed}",
        std::process::id()
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinkflow"));
    cmd.arg("validate").arg("--seed").arg(seed.to_string());
    for id in SAMPLED {
        cmd.arg("--only").arg(id);
    }
    let status = cmd
        .arg("--out")
        .arg(&out)
        .output()
        .expect("the binary runs");
    assert!(
        status.status.success(),
        "validate --seed {seed} failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    let _ = std::fs::remove_dir_all(&out);
    let summary: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    summary["experiments"].as_array().expect("rows").to_vec()
}

#[test]
fn sampled_verdicts_agree_for_seeds_1_2_3() {
    let runs: Vec<Vec<serde_json::Value>> = [1, 2, 3].into_iter().map(run).collect();
    let rows = &runs[0];
    assert!(!rows.is_empty());
    let mut sampled = 0;
    for (k, row) in rows.iter().enumerate() {
        let id = row["id"].as_str().expect("id");
        let others: Vec<&serde_json::Value> = runs[1..].iter().map(|r| &r[k]).collect();
        for o in &others {
            assert_eq!(o["id"], row["id"], "rows in the same order");
        }
        if row["interval"].is_null() {
            for o in &others {
                assert!(o["interval"].is_null(), "{id}: interval for one seed only");
                assert_eq!(
                    o["measured"], row["measured"],
                    "{id}: a check without replicates depends on the campaign seed"
                );
            }
        } else {
            sampled += 1;
            let verdicts: Vec<&str> = std::iter::once(row)
                .chain(others.iter().copied())
                .map(|r| r["verdict"].as_str().expect("verdict"))
                .collect();
            assert!(
                verdicts.iter().all(|v| *v == verdicts[0]),
                "{id}: verdicts differ across seeds 1, 2, 3: {verdicts:?} (measured {}, {}, {})",
                row["measured"],
                others[0]["measured"],
                others[1]["measured"]
            );
        }
    }
    assert!(sampled >= 10, "only {sampled} sampled checks found");
}
