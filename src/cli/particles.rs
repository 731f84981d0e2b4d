//! `sinkflow particles flow ...`: the particle Sinkhorn / drifting flow from the shell.
//!
//! Reads the initial particles `--x` and the target `--y` (`.npy` float64/float32 2-D arrays
//! or `.csv`, one point per row), integrates $\dot x_i=2\kappa V(x_i)$ (theory/particles.md)
//! and prints the sampled moments (and $S_\tau$ to the target) as one JSON object with
//! `--json`. With `--out DIR`, writes `DIR/trajectory.npy` (times × n × d, float64) and
//! `DIR/times.npy`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use nalgebra::DMatrix;
use serde_json::json;
use sinkflow::particles::drift::{DriftKind, DriftParams};
use sinkflow::particles::flow::{particle_flow, step_count, FlowParams, Integrator};
use sinkflow::Cost;

use super::{matrix_json, print_json, vector_json, CliError};

/// `sinkflow particles` arguments.
#[derive(Args, Debug)]
pub struct ParticlesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ParticlesCommand,
}

/// The `particles` subcommands.
#[derive(Subcommand, Debug)]
pub enum ParticlesCommand {
    /// Integrate the particle flow x' = 2 kappa (T_cross - T_self) towards a target cloud.
    Flow(FlowArgs),
}

/// The drift of the flow.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftArg {
    /// Converged Sinkhorn plans (the S_tau gradient flow).
    Sinkhorn,
    /// Row-softmax (Deng et al. drifting).
    OneSided,
    /// sqrt(rowsoftmax * colsoftmax), row-normalised.
    TwoSided,
    /// L half-steps of Sinkhorn (needs --l, odd).
    LStep,
}

/// The time integrator.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegratorArg {
    /// Explicit Euler.
    Euler,
    /// Heun (RK2).
    Heun,
}

/// `sinkflow particles flow` arguments.
#[derive(Args, Debug)]
pub struct FlowArgs {
    /// Initial particles: .npy (2-D float) or .csv, one point per row.
    #[arg(long)]
    pub x: PathBuf,
    /// Target points: .npy or .csv, one point per row.
    #[arg(long)]
    pub y: PathBuf,
    /// Temperature / entropic regularisation eps > 0.
    #[arg(long, allow_hyphen_values = true)]
    pub eps: f64,
    /// Drift kind.
    #[arg(long, value_enum, default_value_t = DriftArg::Sinkhorn)]
    pub drift: DriftArg,
    /// Number of Sinkhorn half-steps for --drift l-step (odd).
    #[arg(long, allow_hyphen_values = true)]
    pub l: Option<i64>,
    /// Mask the diagonal of the self plan (Deng et al.).
    #[arg(long)]
    pub mask: bool,
    /// Ground cost: sq = |x-y|^2 (velocity 2 V) or half-sq = |x-y|^2/2 (velocity V).
    #[arg(long, default_value = "sq")]
    pub cost: String,
    /// Final time T >= 0.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: f64,
    /// Time step > 0 (the step used is T / ceil(T / dt)).
    #[arg(long, allow_hyphen_values = true)]
    pub dt: f64,
    /// Number K of output intervals (K + 1 output times, each a distinct time step; at most
    /// the number of steps) [default: 10, or the number of steps if fewer].
    #[arg(long)]
    pub samples: Option<usize>,
    /// Time integrator.
    #[arg(long, value_enum, default_value_t = IntegratorArg::Heun)]
    pub integrator: IntegratorArg,
    /// Tolerance of the converged Sinkhorn solves.
    #[arg(long, default_value_t = 1e-9, allow_hyphen_values = true)]
    pub tol: f64,
    /// Write trajectory.npy (times x n x d) and times.npy into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the result even when some converged Sinkhorn solves stopped at their iteration
    /// cap, instead of failing with exit code 1 (the counts and the residual are in the output).
    #[arg(long)]
    pub allow_nonconvergence: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn read_cloud(path: &PathBuf, what: &str) -> Result<DMatrix<f64>, CliError> {
    let a = sinkflow::io::read_points(path).map_err(|e| CliError::from_lib(what, e))?;
    if a.rows == 0 || a.cols == 0 {
        return Err(CliError::bad_input(format!(
            "{what}: {} holds no points",
            path.display()
        )));
    }
    Ok(DMatrix::from_row_slice(a.rows, a.cols, &a.data))
}

/// Run `sinkflow particles ...`.
pub fn run(args: &ParticlesArgs) -> Result<(), CliError> {
    match &args.command {
        ParticlesCommand::Flow(a) => flow(a),
    }
}

fn flow(a: &FlowArgs) -> Result<(), CliError> {
    let cost: Cost = a.cost.parse().map_err(CliError::bad_input)?;
    let kind = match (a.drift, a.l) {
        (DriftArg::LStep, None) => {
            return Err(CliError::bad_input(
                "--drift l-step needs --l L (an odd number of half-steps)",
            ))
        }
        (DriftArg::LStep, Some(l)) if l <= 0 || l % 2 == 0 => {
            return Err(CliError::bad_input(format!(
                "--l must be a positive odd number of Sinkhorn half-steps, got {l}"
            )))
        }
        (DriftArg::LStep, Some(l)) => DriftKind::LStep(l as usize),
        (_, Some(_)) => {
            return Err(CliError::bad_input(
                "--l is only meaningful with --drift l-step",
            ))
        }
        (DriftArg::Sinkhorn, None) => DriftKind::Sinkhorn,
        (DriftArg::OneSided, None) => DriftKind::OneSided,
        (DriftArg::TwoSided, None) => DriftKind::TwoSided,
    };
    if !(a.eps.is_finite() && a.eps > 0.0) {
        return Err(CliError::bad_input(format!(
            "--eps must be finite and > 0, got {}",
            a.eps
        )));
    }
    if !(a.dt.is_finite() && a.dt > 0.0) {
        return Err(CliError::bad_input(format!(
            "--dt must be finite and > 0, got {}",
            a.dt
        )));
    }
    let x = read_cloud(&a.x, "--x")?;
    let y = read_cloud(&a.y, "--y")?;
    if x.ncols() != y.ncols() {
        return Err(CliError::bad_input(format!(
            "dimension mismatch: --x has points of dimension {}, --y of dimension {}",
            x.ncols(),
            y.ncols()
        )));
    }
    let params = FlowParams {
        drift: DriftParams {
            tau: a.eps,
            cost,
            kind,
            mask_self: a.mask,
            tol: a.tol,
            ..DriftParams::default()
        },
        t_end: a.t_end,
        dt: a.dt,
        samples: a.samples.unwrap_or_else(|| {
            if a.t_end.is_finite() && a.t_end >= 0.0 && a.t_end / a.dt <= 1e8 {
                step_count(a.t_end, a.dt).clamp(1, 10)
            } else {
                10
            }
        }),
        integrator: match a.integrator {
            IntegratorArg::Euler => Integrator::Euler,
            IntegratorArg::Heun => Integrator::Heun,
        },
        keep_positions: a.out.is_some(),
        ..FlowParams::default()
    };
    let out = particle_flow(&x, &y, &params).map_err(|e| CliError::from_lib("particle flow", e))?;
    let unconverged = out.unconverged_evaluations + out.unconverged_monitor_solves;
    if unconverged > 0 && !a.allow_nonconvergence {
        return Err(CliError::numerical(format!(
            "particle flow: {} of {} drift evaluations and {} divergence-monitor solves did not reach tol {:e} (largest drift residual {:.3e}); loosen --tol, raise --eps, or pass --allow-nonconvergence",
            out.unconverged_evaluations,
            out.drift_evaluations,
            out.unconverged_monitor_solves,
            a.tol,
            out.max_unconverged_residual
        )));
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::bad_input(format!("cannot create {}: {e}", dir.display())))?;
        let (n, d) = x.shape();
        let mut flat = Vec::with_capacity(out.positions.len() * n * d);
        for p in &out.positions {
            for i in 0..n {
                flat.extend(p.row(i).iter().copied());
            }
        }
        sinkflow::io::write_npy_3d(
            dir.join("trajectory.npy"),
            [out.positions.len(), n, d],
            &flat,
        )
        .map_err(|e| CliError::from_lib("writing trajectory.npy", e))?;
        sinkflow::io::write_npy_2d(dir.join("times.npy"), out.times.len(), 1, &out.times)
            .map_err(|e| CliError::from_lib("writing times.npy", e))?;
    }
    if a.json {
        print_json(&json!({
            "t": out.times,
            "mean": out.means.iter().map(vector_json).collect::<Vec<_>>(),
            "cov": out.covs.iter().map(matrix_json).collect::<Vec<_>>(),
            "divergence": out.divergence,
            "drift": kind.name(),
            "cost": cost.name(),
            "eps": a.eps,
            "mask": a.mask,
            "dt": out.dt,
            "steps": out.steps,
            "drift_evaluations": out.drift_evaluations,
            "sinkhorn_iterations": out.sinkhorn_iterations,
            "unconverged_evaluations": out.unconverged_evaluations,
            "max_unconverged_residual": out.max_unconverged_residual,
            "unconverged_monitor_solves": out.unconverged_monitor_solves,
            "converged": unconverged == 0,
        }));
    } else {
        println!(
            "particle flow: {} particles, {} target points, d = {}, drift {}, cost {}, eps {}",
            x.nrows(),
            y.nrows(),
            x.ncols(),
            kind.name(),
            cost.name(),
            a.eps
        );
        for (k, t) in out.times.iter().enumerate() {
            println!(
                "t = {t:<10.4} S_eps = {:<12} mean = {:?}",
                super::fmt_sig(out.divergence[k], 7),
                out.means[k].as_slice()
            );
        }
        if unconverged > 0 {
            println!(
                "warning: {} drift evaluations (largest residual {:.3e}) and {} monitor solves stopped at the Sinkhorn iteration cap",
                out.unconverged_evaluations,
                out.max_unconverged_residual,
                out.unconverged_monitor_solves
            );
        }
    }
    Ok(())
}
