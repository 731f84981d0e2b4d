//! The validation campaign: experiments that turn the seeds' theorems into measured claims.
//!
//! * [`spec`] — the campaign as data (`validation/specs/*.toml`): id, claim, prediction,
//!   tolerance, per-profile parameters.
//! * [`experiments`] — the code that measures; each experiment registers itself in
//!   [`experiments::registry`] and never computes its own verdict.
//! * the runner (this module) — runs the selected experiments with progress bars, pairs each
//!   measured number with its check, computes the verdicts, prints the table and writes
//!   `REPORT.md`, `summary.json` and the plots ([`report`], [`plot`]).
//!
//! Adding an experiment: write `validation/specs/<id>.toml`, a type implementing
//! [`Experiment`] in `experiments/`, and one line in the registry. The runner is untouched.

pub mod experiments;
pub mod plot;
pub mod report;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use sinkflow::{Classify, ErrorClass};
use spec::{Params, Predicted, Spec};

/// Why `sinkflow validate` stopped: a bad argument (unknown id, unwritable directory) or a
/// failure of the campaign itself (an invalid spec, an experiment that errored, the report).
/// The campaign's own error, so that the validation room never imports the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateError {
    message: String,
    class: ErrorClass,
}

impl ValidateError {
    fn bad_input(message: impl Into<String>) -> Self {
        ValidateError {
            message: message.into(),
            class: ErrorClass::BadInput,
        }
    }
    fn numerical(message: impl Into<String>) -> Self {
        ValidateError {
            message: message.into(),
            class: ErrorClass::Numerical,
        }
    }
}

impl std::fmt::Display for ValidateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Classify for ValidateError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// `sinkflow validate` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Campaign profile: `quick` (minutes on 2 cores) or `full` (the long versions).
    #[arg(long, value_enum, default_value_t = Profile::Quick)]
    pub profile: Profile,
    /// Run only these experiment ids (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Output directory for REPORT.md, summary.json and plots/.
    #[arg(long, default_value = "validation/report")]
    pub out: PathBuf,
    /// List the experiment ids and exit.
    #[arg(long)]
    pub list: bool,
    /// Campaign seed: experiments that sample draw their replicates' seeds from it (and the
    /// experiment id), so a campaign is reproducible and `--seed 2` is an independent rerun.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Default for ValidateArgs {
    fn default() -> Self {
        ValidateArgs {
            profile: Profile::Quick,
            only: Vec::new(),
            out: PathBuf::from("validation/report"),
            list: false,
            seed: 1,
        }
    }
}

/// Campaign profile.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Minutes on 2 cores.
    Quick,
    /// The long versions.
    Full,
}

impl Profile {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }
}

/// An experiment: measures numbers; the runner judges them against its spec.
pub trait Experiment: Sync {
    /// The TOML text of its spec (`include_str!` of `validation/specs/<id>.toml`).
    fn spec_text(&self) -> &'static str;
    /// Run with the profile's parameters, recording measurements, plots and notes in `ctx`.
    fn run(&self, ctx: &mut Ctx) -> Result<(), String>;
}

/// A table of extra numbers shown in the report (and in summary.json).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Table {
    /// Caption.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of formatted cells.
    pub rows: Vec<Vec<String>>,
}

/// What an experiment sees while it runs.
pub struct Ctx {
    params: Params,
    /// The profile being run.
    pub profile: Profile,
    id: String,
    plots_dir: PathBuf,
    plots: Vec<String>,
    progress: ProgressBar,
    measured: BTreeMap<String, f64>,
    predicted: BTreeMap<String, f64>,
    intervals: BTreeMap<String, Interval>,
    notes: Vec<String>,
    tables: Vec<Table>,
    seed: u64,
}

/// A 95 % confidence interval of a sampled statistic, with how it was obtained.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Number of independent replicates behind it.
    pub replicates: usize,
    /// `t` (Student's t on the replicates' mean) or `bootstrap` (percentile, as stated by the
    /// experiment).
    pub method: &'static str,
}

/// The two-sided 97.5 % quantile of Student's t with `df` degrees of freedom (table to
/// df = 30, then the normal quantile with the first-order correction).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        _ => 1.959964 + 2.37 / df as f64,
    }
}

/// Mean and 95 % t-interval of replicate values (infinite width for fewer than two).
pub fn t_interval(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (mean, f64::NEG_INFINITY, f64::INFINITY);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    (mean, mean - half, mean + half)
}

impl Ctx {
    fn param(&self, key: &str) -> Result<&toml::Value, String> {
        self.params
            .get(key)
            .ok_or_else(|| format!("spec '{}' has no parameter '{key}'", self.id))
    }
    /// A float parameter (integers are accepted).
    pub fn f64(&self, key: &str) -> Result<f64, String> {
        match self.param(key)? {
            toml::Value::Float(x) => Ok(*x),
            toml::Value::Integer(i) => Ok(*i as f64),
            v => Err(format!("parameter '{key}' must be a number, got {v}")),
        }
    }
    /// A non-negative integer parameter.
    pub fn usize(&self, key: &str) -> Result<usize, String> {
        match self.param(key)? {
            toml::Value::Integer(i) if *i >= 0 => Ok(*i as usize),
            v => Err(format!(
                "parameter '{key}' must be a non-negative integer, got {v}"
            )),
        }
    }
    /// A list-of-numbers parameter.
    pub fn vec_f64(&self, key: &str) -> Result<Vec<f64>, String> {
        match self.param(key)? {
            toml::Value::Array(a) => a
                .iter()
                .map(|v| match v {
                    toml::Value::Float(x) => Ok(*x),
                    toml::Value::Integer(i) => Ok(*i as f64),
                    v => Err(format!("parameter '{key}' must hold numbers, got {v}")),
                })
                .collect(),
            v => Err(format!("parameter '{key}' must be a list, got {v}")),
        }
    }
    /// A list-of-integers parameter.
    pub fn vec_usize(&self, key: &str) -> Result<Vec<usize>, String> {
        self.vec_f64(key)?
            .into_iter()
            .map(|x| {
                if x >= 0.0 && x.fract() == 0.0 {
                    Ok(x as usize)
                } else {
                    Err(format!("parameter '{key}' must hold non-negative integers"))
                }
            })
            .collect()
    }
    /// Record a measured value for the check with this key.
    pub fn measure(&mut self, key: &str, value: f64) {
        self.measured.insert(key.to_string(), value);
    }
    /// Record a sampled statistic from independent replicates (one value per replicate, each
    /// from its own [`Ctx::replicate_seed`]): the runner takes the mean as the measured value
    /// and judges the check on the 95 % t-interval of the mean (`pass`, `fail` or
    /// `inconclusive`, see [`judge_interval`]).
    pub fn measure_replicates(&mut self, key: &str, values: &[f64]) {
        let (mean, lo, hi) = t_interval(values);
        self.measured.insert(key.to_string(), mean);
        self.intervals.insert(
            key.to_string(),
            Interval {
                lo,
                hi,
                replicates: values.len(),
                method: "t",
            },
        );
    }
    /// Record a sampled statistic with a 95 % bootstrap interval the experiment computed over
    /// `replicates` independent replicates (judged like [`Ctx::measure_replicates`]).
    pub fn measure_bootstrap(
        &mut self,
        key: &str,
        estimate: f64,
        lo: f64,
        hi: f64,
        replicates: usize,
    ) {
        self.measured.insert(key.to_string(), estimate);
        self.intervals.insert(
            key.to_string(),
            Interval {
                lo,
                hi,
                replicates,
                method: "bootstrap",
            },
        );
    }
    /// The seed of replicate `r` of this experiment: a hash of the campaign seed
    /// (`validate --seed`), the experiment id and `r` (SplitMix64), so replicates are
    /// independent of each other and of other experiments, and reproducible.
    pub fn replicate_seed(&self, r: usize) -> u64 {
        let mut h = self.seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in self.id.bytes().chain((r as u64).to_le_bytes()) {
            h = splitmix(h ^ u64::from(b));
        }
        h
    }
    /// Record a prediction computed from theory (for checks with `predicted = "computed"`).
    pub fn predict(&mut self, key: &str, value: f64) {
        self.predicted.insert(key.to_string(), value);
    }
    /// Add a note to the report (what the numbers say, caveats).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
    /// Add a table to the report.
    pub fn table(&mut self, title: impl Into<String>, header: &[&str], rows: Vec<Vec<String>>) {
        self.tables.push(Table {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows,
        });
    }
    /// Save a figure as `plots/<name>.png|svg` and attach it to the experiment.
    pub fn plot(&mut self, fig: &plot::Figure, name: &str) -> Result<(), String> {
        let files = fig.save(&self.plots_dir, name)?;
        self.plots
            .extend(files.into_iter().map(|f| format!("plots/{f}")));
        Ok(())
    }
    /// Set the length of this experiment's progress bar.
    pub fn set_steps(&self, n: u64) {
        self.progress.set_length(n);
        self.progress.set_position(0);
    }
    /// The progress bar itself (e.g. to show a message while a long step runs).
    pub fn progress(&self) -> &ProgressBar {
        &self.progress
    }
    /// Advance this experiment's progress bar by one.
    pub fn step(&self) {
        self.progress.inc(1);
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The verdict of a check whose measurement is a 95 % interval `[lo, hi]`: with the band of
/// accepted values `B` (`predicted ± tolerance` for `close`, `± tolerance·|predicted|` for
/// `rel_close`, `≤ predicted + tolerance` for `at_most`, `≥ predicted − tolerance` for
/// `at_least`), `pass` when the interval lies inside `B`, `fail` when it lies outside `B`, and
/// `inconclusive` when it straddles an end of `B` (the replicates cannot decide).
pub fn judge_interval(c: &spec::Check, predicted: f64, lo: f64, hi: f64) -> &'static str {
    if !(predicted.is_finite() && lo <= hi) || lo.is_nan() || hi.is_nan() {
        return "fail";
    }
    let (b_lo, b_hi) = match c.kind {
        spec::CheckKind::Close => (predicted - c.tolerance, predicted + c.tolerance),
        spec::CheckKind::RelClose => {
            let t = c.tolerance * predicted.abs();
            (predicted - t, predicted + t)
        }
        spec::CheckKind::AtMost => (f64::NEG_INFINITY, predicted + c.tolerance),
        spec::CheckKind::AtLeast => (predicted - c.tolerance, f64::INFINITY),
    };
    if lo >= b_lo && hi <= b_hi {
        "pass"
    } else if hi < b_lo || lo > b_hi {
        "fail"
    } else {
        "inconclusive"
    }
}

/// One judged row of the campaign.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    /// `<experiment id>/<check key>`.
    pub id: String,
    /// Experiment title.
    pub title: String,
    /// The claim.
    pub claim: String,
    /// Source of the claim.
    pub source: String,
    /// Predicted value.
    pub predicted: Option<f64>,
    /// Measured value.
    pub measured: Option<f64>,
    /// Tolerance.
    pub tolerance: f64,
    /// Human-readable tolerance.
    pub tolerance_text: String,
    /// Why this tolerance.
    pub tolerance_reason: String,
    /// 95 % interval of a sampled measurement (replicates), if any.
    pub interval: Option<Interval>,
    /// A claim of the theory, or an implementation check (reported apart).
    pub role: spec::Role,
    /// `pass`, `fail`, or (sampled measurements only) `inconclusive`.
    pub verdict: &'static str,
    /// Plots of the experiment (relative to the report directory).
    pub plots: Vec<String>,
    /// Wall time of the whole experiment.
    pub seconds: f64,
}

/// Everything one experiment produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExperimentResult {
    /// Experiment id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Source.
    pub source: String,
    /// Judged checks.
    pub rows: Vec<Row>,
    /// Notes.
    pub notes: Vec<String>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Plots.
    pub plots: Vec<String>,
    /// Error, if the experiment could not run.
    pub error: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// Parameters used.
    pub params: serde_json::Value,
}

/// Judge the measurements of one experiment against its spec (the only place verdicts are made).
fn judge(spec: &Spec, ctx: &Ctx, error: &Option<String>, seconds: f64) -> Vec<Row> {
    spec.checks
        .iter()
        .map(|c| {
            let predicted = match &c.predicted {
                Predicted::Value(v) => Some(*v),
                Predicted::Computed(_) => ctx.predicted.get(&c.key).copied(),
            };
            let measured = ctx.measured.get(&c.key).copied();
            let interval = ctx.intervals.get(&c.key).cloned();
            let verdict = match (error, predicted, measured, &interval) {
                (Some(_), ..) | (None, None, ..) | (None, _, None, _) => "fail",
                (None, Some(p), Some(_), Some(iv)) => judge_interval(c, p, iv.lo, iv.hi),
                (None, Some(p), Some(m), None) => {
                    if c.verdict(p, m) {
                        "pass"
                    } else {
                        "fail"
                    }
                }
            };
            Row {
                id: format!("{}/{}", spec.id, c.key),
                title: spec.title.clone(),
                claim: c.claim.clone(),
                source: spec.source.clone(),
                predicted,
                measured,
                tolerance: c.tolerance,
                tolerance_text: c.tolerance_text(),
                tolerance_reason: c.tolerance_reason.clone(),
                interval,
                role: c.role,
                verdict,
                plots: ctx.plots.clone(),
                seconds,
            }
        })
        .collect()
}

/// Run one experiment (used by the campaign and by tests).
pub fn run_experiment(
    exp: &dyn Experiment,
    profile: Profile,
    out: &Path,
    progress: ProgressBar,
    seed: u64,
) -> Result<ExperimentResult, String> {
    let spec = Spec::parse(exp.spec_text())?;
    let params = spec.params(profile == Profile::Full);
    let mut ctx = Ctx {
        params: params.clone(),
        profile,
        id: spec.id.clone(),
        plots_dir: out.join("plots"),
        plots: Vec::new(),
        progress,
        measured: BTreeMap::new(),
        predicted: BTreeMap::new(),
        intervals: BTreeMap::new(),
        notes: Vec::new(),
        tables: Vec::new(),
        seed,
    };
    let start = Instant::now();
    let error = exp.run(&mut ctx).err();
    let seconds = start.elapsed().as_secs_f64();
    for c in &spec.checks {
        if error.is_none() && !ctx.measured.contains_key(&c.key) {
            ctx.notes.push(format!(
                "check '{}' was not measured by the experiment",
                c.key
            ));
        }
    }
    let rows = judge(&spec, &ctx, &error, seconds);
    Ok(ExperimentResult {
        id: spec.id.clone(),
        title: spec.title.clone(),
        source: spec.source.clone(),
        rows,
        notes: ctx.notes,
        tables: ctx.tables,
        plots: ctx.plots,
        error,
        seconds,
        params: serde_json::to_value(&params).unwrap_or(serde_json::Value::Null),
    })
}

/// `sinkflow validate`: run the campaign, print the table, write the report.
pub fn run(args: &ValidateArgs) -> Result<(), ValidateError> {
    let registry = experiments::registry();
    let mut specs = Vec::new();
    for e in &registry {
        let s = Spec::parse(e.spec_text())
            .map_err(|m| ValidateError::numerical(format!("invalid experiment spec: {m}")))?;
        specs.push(s.id);
    }
    if args.list {
        for id in &specs {
            println!("{id}");
        }
        return Ok(());
    }
    for id in &args.only {
        if !specs.contains(id) {
            return Err(ValidateError::bad_input(format!(
                "unknown experiment id '{id}' (known: {})",
                specs.join(", ")
            )));
        }
    }
    let selected: Vec<&dyn Experiment> = registry
        .iter()
        .zip(&specs)
        .filter(|(_, id)| args.only.is_empty() || args.only.contains(id))
        .map(|(e, _)| e.as_ref())
        .collect();
    std::fs::create_dir_all(args.out.join("plots")).map_err(|e| {
        ValidateError::bad_input(format!("cannot create {}: {e}", args.out.display()))
    })?;

    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let overall = multi.add(ProgressBar::new(selected.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
            .expect("static template"),
    );
    overall.set_prefix("campaign");
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:30.green/white}] {pos}/{len} {msg} ({elapsed})",
    )
    .expect("static template");
    let start = Instant::now();
    let mut results = Vec::new();
    for exp in selected {
        let spec = Spec::parse(exp.spec_text()).map_err(ValidateError::numerical)?;
        overall.set_message(spec.id.clone());
        let bar = multi.add(ProgressBar::new(1));
        bar.set_style(style.clone());
        bar.set_prefix("running");
        bar.set_message(spec.id.clone());
        let res = run_experiment(exp, args.profile, &args.out, bar.clone(), args.seed)
            .map_err(ValidateError::numerical)?;
        bar.finish_and_clear();
        multi.remove(&bar);
        let fails = res.rows.iter().filter(|r| r.verdict == "fail").count();
        let undecided = res
            .rows
            .iter()
            .filter(|r| r.verdict == "inconclusive")
            .count();
        multi
            .println(format!(
                "  {} {:<40} {:>7.1}s",
                if fails > 0 {
                    "FAIL"
                } else if undecided > 0 {
                    "n.d."
                } else {
                    "pass"
                },
                res.id,
                res.seconds
            ))
            .ok();
        overall.inc(1);
        results.push(res);
    }
    overall.finish_and_clear();
    let total = start.elapsed().as_secs_f64();
    report::print_table(&results);
    report::write(&args.out, args.profile, &results, total)
        .map_err(|e| ValidateError::numerical(format!("writing the report: {e}")))?;
    let rows: Vec<&Row> = results
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| r.role == spec::Role::Claim)
        .collect();
    let checks: Vec<&Row> = results
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| r.role == spec::Role::Implementation)
        .collect();
    let passed = rows.iter().filter(|r| r.verdict == "pass").count();
    let undecided = rows.iter().filter(|r| r.verdict == "inconclusive").count();
    let checks_passed = checks.iter().filter(|r| r.verdict == "pass").count();
    println!(
        "\n{passed}/{} claims pass, {undecided} inconclusive; {checks_passed}/{} implementation checks pass ({} profile, {total:.1} s). Report: {}",
        rows.len(),
        checks.len(),
        args.profile.name(),
        args.out.join("REPORT.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: spec::CheckKind, tolerance: f64) -> spec::Check {
        spec::Check {
            key: "k".into(),
            claim: "c".into(),
            predicted: spec::Predicted::Value(0.0),
            tolerance,
            kind,
            tolerance_reason: String::new(),
            role: spec::Role::Claim,
        }
    }

    #[test]
    fn interval_verdicts_are_pass_fail_or_inconclusive() {
        let c = check(spec::CheckKind::Close, 0.2);
        assert_eq!(judge_interval(&c, -0.5, -0.6, -0.4), "pass");
        assert_eq!(judge_interval(&c, -0.5, -0.2, -0.1), "fail");
        assert_eq!(judge_interval(&c, -0.5, -0.8, -0.4), "inconclusive");
        assert_eq!(judge_interval(&c, -0.5, f64::NAN, -0.4), "fail");
        let m = check(spec::CheckKind::AtMost, 0.1);
        assert_eq!(judge_interval(&m, 0.0, -5.0, 0.05), "pass");
        assert_eq!(judge_interval(&m, 0.0, 0.2, 0.3), "fail");
        assert_eq!(judge_interval(&m, 0.0, 0.0, 0.3), "inconclusive");
    }

    #[test]
    fn t_interval_matches_the_textbook_case() {
        // n = 4, mean 2, sample sd 1: half-width t_{0.975,3} / 2 = 1.5915.
        let (m, lo, hi) = t_interval(&[1.0, 2.0, 3.0, 2.0 + 0.0f64.max(0.0)]);
        let sd = ((1.0 + 0.0 + 1.0 + 0.0) / 3.0f64).sqrt();
        assert!((m - 2.0).abs() < 1e-15);
        assert!((hi - lo - 2.0 * t975(3) * sd / 2.0).abs() < 1e-12);
        assert!(t_interval(&[1.0]).1.is_infinite());
        assert!((t975(1000) - 1.962).abs() < 1e-3);
    }
}
