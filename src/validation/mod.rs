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
}

impl Default for ValidateArgs {
    fn default() -> Self {
        ValidateArgs {
            profile: Profile::Quick,
            only: Vec::new(),
            out: PathBuf::from("validation/report"),
            list: false,
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
    notes: Vec<String>,
    tables: Vec<Table>,
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
    /// `pass` or `fail`.
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
            let pass = error.is_none()
                && matches!((predicted, measured), (Some(p), Some(m)) if c.verdict(p, m));
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
                verdict: if pass { "pass" } else { "fail" },
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
        notes: Vec::new(),
        tables: Vec::new(),
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
        let res = run_experiment(exp, args.profile, &args.out, bar.clone())
            .map_err(ValidateError::numerical)?;
        bar.finish_and_clear();
        multi.remove(&bar);
        let fails = res.rows.iter().filter(|r| r.verdict == "fail").count();
        multi
            .println(format!(
                "  {} {:<40} {:>7.1}s",
                if fails == 0 { "pass" } else { "FAIL" },
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
    let rows: Vec<&Row> = results.iter().flat_map(|r| &r.rows).collect();
    let passed = rows.iter().filter(|r| r.verdict == "pass").count();
    println!(
        "\n{passed}/{} claims pass ({} profile, {total:.1} s). Report: {}",
        rows.len(),
        args.profile.name(),
        args.out.join("REPORT.md").display()
    );
    Ok(())
}
