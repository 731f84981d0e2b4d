//! `sinkflow sinkhorn`: entropic OT (and optionally the debiased divergence) between two
//! point clouds read from `.npy` / `.csv` files.
//!
//! Exit codes: 0 success; 2 bad input (unreadable file, NaN, bad weights, eps <= 0, ...);
//! 1 non-convergence (the residual is printed on stderr) unless `--allow-nonconvergence`, in
//! which case the result is printed with `"converged": false`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use sinkflow::sinkhorn::{
    auto_picks_sparse, divergence, solve, solve_sparse, Acceleration, AccelerationReport,
    EpsScaling, Mode, OverRelaxation, PointCloud, SinkhornParams, SparseParams,
    ANDERSON_DEFAULT_MEMORY,
};
use sinkflow::{io, Cost};

use super::{print_json, CliError};

/// Arguments of `sinkflow sinkhorn`.
#[derive(clap::Args, Debug, Clone)]
pub struct SinkhornArgs {
    /// Points of mu: `.npy` (float64/float32, 2-D) or `.csv` (one point per row).
    #[arg(long)]
    pub x: PathBuf,
    /// Points of nu (same formats, same dimension).
    #[arg(long)]
    pub y: PathBuf,
    /// Weights of mu (1-D `.npy` or `.csv`); uniform if absent.
    #[arg(long)]
    pub wx: Option<PathBuf>,
    /// Weights of nu; uniform if absent.
    #[arg(long)]
    pub wy: Option<PathBuf>,
    /// Rescale weights that do not sum to one (otherwise that is an error).
    #[arg(long)]
    pub normalise: bool,
    /// Regularisation eps > 0 (units of the cost).
    #[arg(long, allow_hyphen_values = true)]
    pub eps: String,
    /// Ground cost: `sq` (|x-y|^2) or `half-sq` (|x-y|^2/2).
    #[arg(long, default_value = "sq")]
    pub cost: String,
    /// Stopping tolerance on the L1 violation of the first marginal.
    #[arg(long, default_value = "1e-9", allow_hyphen_values = true)]
    pub tol: String,
    /// Maximal number of iterations (at the target eps).
    #[arg(long, default_value_t = 10_000)]
    pub max_iters: usize,
    /// Kernel mode: auto, dense, streaming or sparse (truncated kernel for small eps; auto
    /// picks it for large clouds in d <= 2 when the estimated kept fraction is at most 80 %).
    #[arg(long, default_value = "auto")]
    pub mode: String,
    /// Sparse mode: relative truncation bound exp(-theta) in (0, 1e-2] (a pair is dropped when
    /// its plan entry is below this times a_i b_j); the JSON reports the certified
    /// "truncation_bound".
    #[arg(long, default_value = "1e-16", allow_hyphen_values = true)]
    pub truncation: String,
    /// Anneal eps geometrically from the squared diameter of the supports (forced on; by
    /// default the solver decides, see --plain).
    #[arg(long, conflicts_with = "plain")]
    pub eps_scaling: bool,
    /// Plain Sinkhorn: no automatic acceleration (by default Anderson mixing, and
    /// eps-scaling when eps is below 1/2000 of the squared diagonal of the bounding box of
    /// both supports).
    #[arg(long)]
    pub plain: bool,
    /// Also compute OT_eps(x,x), OT_eps(y,y) and the Sinkhorn divergence.
    #[arg(long)]
    pub debias: bool,
    /// Print the result (converged = false) instead of failing with exit code 1.
    #[arg(long)]
    pub allow_nonconvergence: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Over-relax both half-steps: a factor OMEGA in [1, 2), or `auto` to choose it from the
    /// measured rate (see `OverRelaxation`); or `anderson` / `anderson:M` for Anderson mixing
    /// of the f-updates with memory M (default 7; `anderson` is the default unless --plain)
    #[arg(
        long,
        value_name = "OMEGA",
        allow_hyphen_values = true,
        conflicts_with = "plain"
    )]
    pub over_relaxation: Option<String>,
    /// Write the potentials (f on x, g on y, sinkflow's convention) to FILE as JSON
    /// `{"f": [...], "g": [...]}` (shortest round-trip decimals, so exact), e.g. to check them
    /// independently.
    #[arg(long, value_name = "FILE")]
    pub potentials_out: Option<PathBuf>,
}

fn write_potentials(path: &Path, f: &[f64], g: &[f64]) -> Result<(), CliError> {
    let text = serde_json::to_string(&json!({ "f": f, "g": g }))
        .map_err(|e| CliError::numerical(format!("--potentials-out: {e}")))?;
    std::fs::write(path, text).map_err(|e| {
        CliError::bad_input(format!(
            "--potentials-out: cannot write {}: {e}",
            path.display()
        ))
    })
}

/// The `"acceleration"` object of the JSON output (schema in README and theory/sinkhorn.md
/// §4c): what the alternating solve ran.
pub fn acceleration_json(r: &AccelerationReport) -> serde_json::Value {
    json!({
        "policy": r.policy.name(),
        "over_relaxation": r.over_relaxation.map(|o| json!({
            "kind": o.kind.name(),
            "omega": o.omega,
            "relaxed_iterations": o.relaxed_iterations,
            "restored": o.restored,
        })),
        "eps_scaling": r.eps_scaling.map(|s| json!({
            "stages": s.stages,
            "iterations": s.iterations,
            "start": s.start,
        })),
    })
}

fn number(text: &str, what: &str) -> Result<f64, CliError> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| CliError::bad_input(format!("{what}: '{text}' is not a number")))
}

fn read_cloud(
    points: &Path,
    weights: Option<&Path>,
    normalise: bool,
    name: &str,
) -> Result<PointCloud, CliError> {
    let a = io::read_points(points).map_err(|e| CliError::from_lib(&format!("--{name}"), e))?;
    let w = match weights {
        Some(p) => {
            Some(io::read_weights(p).map_err(|e| CliError::from_lib(&format!("--w{name}"), e))?)
        }
        None => None,
    };
    PointCloud::from_flat(a.data, a.cols, w, normalise)
        .map_err(|e| CliError::from_lib(&format!("{name} ({})", points.display()), e))
}

/// Run the subcommand.
pub fn run(args: &SinkhornArgs) -> Result<(), CliError> {
    let eps = number(&args.eps, "--eps")?;
    let tol = number(&args.tol, "--tol")?;
    let cost: Cost = args
        .cost
        .parse()
        .map_err(|e: String| CliError::bad_input(format!("--cost: {e}")))?;
    let mode: Mode = args
        .mode
        .parse()
        .map_err(|e: String| CliError::bad_input(format!("--mode: {e}")))?;
    let params = SinkhornParams {
        eps,
        cost,
        tol,
        max_iters: args.max_iters,
        mode,
        eps_scaling: args.eps_scaling.then(EpsScaling::default),
        strict: false,
        record_history: false,
        acceleration: if args.plain {
            Acceleration::Plain
        } else {
            Acceleration::Auto
        },
        over_relaxation: args
            .over_relaxation
            .as_deref()
            .map(|t| match t.trim() {
                "auto" => Ok(OverRelaxation::Adaptive),
                "anderson" => Ok(OverRelaxation::Anderson {
                    memory: ANDERSON_DEFAULT_MEMORY,
                }),
                t if t.starts_with("anderson:") => t["anderson:".len()..]
                    .parse::<usize>()
                    .map(|memory| OverRelaxation::Anderson { memory })
                    .map_err(|_| {
                        CliError::bad_input(format!(
                            "--over-relaxation: '{t}' is not anderson:<memory>"
                        ))
                    }),
                _ => number(t, "--over-relaxation").map(OverRelaxation::Fixed),
            })
            .transpose()?,
    };
    params
        .validate()
        .map_err(|e| CliError::from_lib("parameters", e))?;
    let sparse = SparseParams {
        truncation: number(&args.truncation, "--truncation")?,
    };
    sparse
        .validate()
        .map_err(|e| CliError::from_lib("parameters", e))?;
    let x = read_cloud(&args.x, args.wx.as_deref(), args.normalise, "x")?;
    let y = read_cloud(&args.y, args.wy.as_deref(), args.normalise, "y")?;
    if x.dim() != y.dim() {
        return Err(CliError::bad_input(format!(
            "x has points of dimension {} but y of dimension {}",
            x.dim(),
            y.dim()
        )));
    }

    let start = Instant::now();
    let (mut out, converged, residual) = if args.debias {
        let d = with_progress(|| divergence(&x, &y, &params))
            .map_err(|e| CliError::from_lib("sinkhorn", e))?;
        let seconds = start.elapsed().as_secs_f64();
        let worst = d.xy.marginal_error.max(d.xx.residual).max(d.yy.residual);
        if let Some(p) = &args.potentials_out {
            write_potentials(p, &d.xy.f, &d.xy.g)?;
        }
        (
            json!({
                "ot": d.ot_xy,
                "transport_cost": d.xy.transport_cost,
                "primal": d.xy.primal,
                "divergence": d.divergence,
                "ot_xx": d.ot_xx,
                "ot_yy": d.ot_yy,
                "iterations": d.xy.iterations,
                "iterations_xx": d.xx.iterations,
                "iterations_yy": d.yy.iterations,
                "marginal_error": d.xy.marginal_error,
                "residual_xx": d.xx.residual,
                "residual_yy": d.yy.residual,
                "converged": d.converged(),
                "seconds": seconds,
                "mode": d.xy.mode.name(),
                "acceleration": acceleration_json(&d.xy.acceleration),
                "truncation_bound": d.xy.truncation_bound,
            }),
            d.converged(),
            worst,
        )
    } else {
        let o = with_progress(|| {
            // Auto's sparse choice honours --truncation (the library's Auto uses the default).
            let sparse_mode = mode == Mode::Sparse
                || (mode == Mode::Auto && auto_picks_sparse(&x, &y, params.eps, params.cost));
            if sparse_mode {
                solve_sparse(&x, &y, &params, &sparse)
            } else {
                solve(&x, &y, &params)
            }
        })
        .map_err(|e| CliError::from_lib("sinkhorn", e))?;
        let seconds = start.elapsed().as_secs_f64();
        if let Some(p) = &args.potentials_out {
            write_potentials(p, &o.f, &o.g)?;
        }
        (
            json!({
                "ot": o.ot,
                "transport_cost": o.transport_cost,
                "primal": o.primal,
                "iterations": o.iterations,
                "marginal_error": o.marginal_error,
                "converged": o.converged,
                "seconds": seconds,
                "mode": o.mode.name(),
                "acceleration": acceleration_json(&o.acceleration),
                "truncation_bound": o.truncation_bound,
            }),
            o.converged,
            o.marginal_error,
        )
    };
    if !converged && !args.allow_nonconvergence {
        let self_hint = if x == y {
            " (--x and --y hold the same cloud: the alternating iteration stalls on self problems at small eps; --debias reports OT_eps(x, x) from the symmetric solver as ot_xx)"
        } else {
            ""
        };
        return Err(CliError::numerical(format!(
            "Sinkhorn did not converge to tol {tol:e} within {} iterations (residual {residual:.3e}); raise --max-iters, use --eps-scaling, or pass --allow-nonconvergence{self_hint}",
            args.max_iters
        )));
    }
    if let Some(obj) = out.as_object_mut() {
        obj.insert("eps".into(), json!(eps));
        obj.insert("cost".into(), json!(cost.name()));
        obj.insert("n".into(), json!(x.len()));
        obj.insert("m".into(), json!(y.len()));
        obj.insert("d".into(), json!(x.dim()));
        if let Ok(path) = sinkflow::sinkhorn::kernel::simd_path() {
            obj.insert("simd".into(), json!(path.name()));
        }
    }
    if args.json {
        print_json(&out);
    } else if let Some(obj) = out.as_object() {
        for (k, v) in obj {
            println!("{k:>15}: {v}");
        }
    }
    Ok(())
}

thread_local! {
    /// The progress line of the running solve (see [`with_progress`]): bar, start,
    /// iterations, whether its draw target is set.
    static PROGRESS: std::cell::RefCell<Option<(indicatif::ProgressBar, Instant, u64, bool)>> =
        const { std::cell::RefCell::new(None) };
}

/// Count one solver iteration for the progress line; never asks the solve to stop (the solvers
/// call the thread's check once per iteration, `sinkflow::interrupt`).
fn tick() -> bool {
    PROGRESS.with(|p| {
        if let Some((bar, start, n, shown)) = p.borrow_mut().as_mut() {
            *n += 1;
            if !*shown && start.elapsed().as_secs_f64() >= 2.0 {
                *shown = true;
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "sinkhorn {spinner} {pos} iterations, {elapsed} elapsed",
                ) {
                    bar.set_style(style);
                }
            }
            bar.set_position(*n);
        }
    });
    false
}

/// Run `solve` with a spinner on stderr that counts iterations, drawn once the solve has run
/// for 2 s and only on a terminal (indicatif hides it otherwise), cleared at the end.
fn with_progress<R>(solve: impl FnOnce() -> R) -> R {
    PROGRESS.with(|p| {
        *p.borrow_mut() = Some((indicatif::ProgressBar::hidden(), Instant::now(), 0, false));
    });
    let r = sinkflow::interrupt::with_check(tick, solve);
    if let Some((bar, ..)) = PROGRESS.with(|p| p.borrow_mut().take()) {
        bar.finish_and_clear();
    }
    r
}
