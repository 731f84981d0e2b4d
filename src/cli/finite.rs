//! `sinkflow finite flow|sjko|metric`: the Sinkhorn potential flow on a finite space (seed 000,
//! `theory/finite_flow.md`).
//!
//! Contract (issue 10): `--x` rows are points (or `--grid lo:hi:n[,lo:hi:n]`); `--v`, `--mu0`
//! one value per point (`.csv` one per row, or `.npy`), or the catalogue shortcuts
//! `--potential double-well|quadratic|tilted-multiwell`, `--mu0 dirac:X|uniform|gaussian:M:S`.
//! The number of steps is `round(t_end/dt)`; a `t_end` that is not a whole number of steps to
//! 1e-9 relative is an error. `mu0` must sum to 1 within 1e-12 relative and is then used as
//! given. Output: one row per step including t = 0. Bad input (and a refusal for
//! conditioning, whose message names the largest safe eps) → exit 2, nothing on stdout;
//! an LCP not solved to its KKT tolerance → exit 1 with the residual.

use std::path::Path;

use serde_json::json;
use sinkflow::finite::catalog::{dirac_near, gaussian_bump, uniform, Potential};
use sinkflow::finite::{
    check_probability, reflected_flow, reflected_flow_dd, resolvent_flow, resolvent_flow_dd,
    sjko_flow, ExtendedKernel, FiniteSpace, FlowOutput, FlowParams, Kernel, KernelParams,
    MuOperators, SjkoParams, DD_MAX_CONDITION, DEFAULT_MAX_CONDITION,
};
use sinkflow::{io, Cost};

use super::{print_json, CliError};

/// `sinkflow finite ...`
#[derive(clap::Args, Debug, Clone)]
pub struct FiniteArgs {
    /// What to compute.
    #[command(subcommand)]
    pub command: FiniteCommand,
}

/// Subcommands of `sinkflow finite`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum FiniteCommand {
    /// The Sinkhorn potential flow by the implicit resolvent (b-variable LCP per step).
    Flow(FlowArgs),
    /// The Sinkhorn JKO scheme (log domain, no kernel matrix; any eps).
    Sjko(SjkoArgs),
    /// The metric tensor g_mu(sigma, sigma) of S_eps at mu.
    Metric(MetricArgs),
}

/// The finite space and eps (shared by the subcommands).
#[derive(clap::Args, Debug, Clone)]
pub struct SpaceArgs {
    /// Points, one per row (`.npy` 2-D or `.csv`). Exclusive with --grid.
    #[arg(long)]
    pub x: Option<String>,
    /// A tensor grid `lo:hi:n` (1-D) or `lo:hi:n,lo:hi:n` (2-D), e.g. `-2:2:40`.
    #[arg(long, allow_hyphen_values = true)]
    pub grid: Option<String>,
    /// Regularisation eps > 0 (units of the cost).
    #[arg(long, allow_hyphen_values = true)]
    pub eps: String,
    /// Ground cost: `sq` (|x-y|^2, default) or `half-sq` (|x-y|^2/2).
    #[arg(long, default_value = "sq")]
    pub cost: String,
    /// Refuse when the condition estimate of K exceeds this (default 1e10; at most 4.5e15).
    #[arg(long, allow_hyphen_values = true)]
    pub max_cond: Option<String>,
}

/// `sinkflow finite flow`.
#[derive(clap::Args, Debug, Clone)]
pub struct FlowArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Potential V, one value per point (`.npy`/`.csv`). Exclusive with --potential.
    #[arg(long)]
    pub v: Option<String>,
    /// Catalogue potential: double-well, quadratic or tilted-multiwell.
    #[arg(long)]
    pub potential: Option<String>,
    /// Initial probability: a file (one value per point), `dirac:X` (nearest point to X,
    /// coordinates comma-separated), `uniform`, or `gaussian:M:S` (bump centred at M, width S).
    #[arg(long, allow_hyphen_values = true)]
    pub mu0: String,
    /// Final time T >= 0 (a whole number of steps).
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: String,
    /// Time step h > 0.
    #[arg(long, allow_hyphen_values = true)]
    pub dt: String,
    /// Time scheme: `implicit` (the resolvent, order 1, loses mass O(h)) or `reflected`
    /// (2 J_{h/2} - I then the projection onto the cone: order 2, keeps the mass away from
    /// support changes).
    #[arg(long, default_value = "implicit")]
    pub scheme: String,
    /// Arithmetic of the kernel algebra and the LCP: `double` (default) or `double-double`
    /// (106-bit significands, accepts cond(K) up to 1e26; implicit and reflected schemes,
    /// N <= 600).
    #[arg(long, default_value = "double")]
    pub precision: String,
    /// Report mu_k / sum(mu_k) (the resolvent is positively homogeneous, so this equals
    /// renormalising b after every step). `raw_mass` always holds the unrenormalised mass.
    #[arg(long)]
    pub renormalize: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `sinkflow finite sjko`.
#[derive(clap::Args, Debug, Clone)]
pub struct SjkoArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Potential V, one value per point (`.npy`/`.csv`). Exclusive with --potential.
    #[arg(long)]
    pub v: Option<String>,
    /// Catalogue potential: double-well, quadratic or tilted-multiwell.
    #[arg(long)]
    pub potential: Option<String>,
    /// Initial probability (as for `flow`).
    #[arg(long, allow_hyphen_values = true)]
    pub mu0: String,
    /// Final time T >= 0 (a whole number of steps).
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: String,
    /// SJKO step tau > 0.
    #[arg(long, allow_hyphen_values = true)]
    pub tau: String,
    /// Accepted scale-free KKT residual per step (default 1e-10): max over points of
    /// |min(mu_i/max mu, (G_i - lambda)/scale of G)|, a zero mass far from the support counted
    /// by the mass that would close its gap (theory/finite_flow.md §5).
    #[arg(long, default_value = "1e-10", allow_hyphen_values = true)]
    pub tol: String,
    /// Accepted for symmetry with `flow`: SJKO iterates are probabilities already.
    #[arg(long)]
    pub renormalize: bool,
    /// Arithmetic: only `double` (SJKO runs in the log domain and never forms K, so the
    /// conditioning of K that the double-double path addresses does not limit it;
    /// `double-double` is refused with exit 2).
    #[arg(long, default_value = "double")]
    pub precision: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `sinkflow finite metric`.
#[derive(clap::Args, Debug, Clone)]
pub struct MetricArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// The probability mu (file or `dirac:X|uniform|gaussian:M:S`).
    #[arg(long, allow_hyphen_values = true)]
    pub mu: String,
    /// The tangent direction sigma (zero mass), one value per point (`.npy`/`.csv`).
    #[arg(long)]
    pub sigma: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn number(text: &str, what: &str) -> Result<f64, CliError> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| CliError::bad_input(format!("{what}: '{text}' is not a number")))?;
    if !v.is_finite() {
        return Err(CliError::bad_input(format!(
            "{what}: '{text}' is not finite"
        )));
    }
    Ok(v)
}

fn bad<E: sinkflow::Classify + std::fmt::Display>(context: &str) -> impl Fn(E) -> CliError + '_ {
    move |e| CliError::from_lib(context, e)
}

/// Parse `lo:hi:n` pieces.
fn parse_grid(spec: &str, cost: Cost) -> Result<FiniteSpace, CliError> {
    let axes: Vec<(f64, f64, usize)> = spec
        .split(',')
        .map(|ax| {
            let p: Vec<&str> = ax.split(':').collect();
            if p.len() != 3 {
                return Err(CliError::bad_input(format!(
                    "--grid: '{ax}' is not of the form lo:hi:n"
                )));
            }
            let n: usize = p[2].trim().parse().map_err(|_| {
                CliError::bad_input(format!("--grid: '{}' is not a point count", p[2]))
            })?;
            Ok((number(p[0], "--grid lo")?, number(p[1], "--grid hi")?, n))
        })
        .collect::<Result<_, _>>()?;
    match axes.as_slice() {
        [a] => FiniteSpace::grid_1d(a.0, a.1, a.2, cost).map_err(bad("--grid")),
        [a, b] => FiniteSpace::grid_2d(*a, *b, cost).map_err(bad("--grid")),
        _ => Err(CliError::bad_input(
            "--grid: give one axis (1-D) or two axes separated by ',' (2-D)",
        )),
    }
}

fn build_space(args: &SpaceArgs) -> Result<(FiniteSpace, f64, f64), CliError> {
    let cost: Cost = args
        .cost
        .parse()
        .map_err(|e: String| CliError::bad_input(format!("--cost: {e}")))?;
    let eps = number(&args.eps, "--eps")?;
    if eps <= 0.0 {
        return Err(CliError::bad_input(format!("--eps must be > 0, got {eps}")));
    }
    let max_cond = match &args.max_cond {
        Some(t) => number(t, "--max-cond")?,
        None => DEFAULT_MAX_CONDITION,
    };
    let space = match (&args.x, &args.grid) {
        (Some(_), Some(_)) => {
            return Err(CliError::bad_input("give either --x or --grid, not both"))
        }
        (None, None) => {
            return Err(CliError::bad_input(
                "give the points: --x FILE or --grid SPEC",
            ))
        }
        (Some(p), None) => {
            let a = io::read_points(Path::new(p)).map_err(bad("--x"))?;
            FiniteSpace::new(a.data, a.cols, cost).map_err(bad("--x"))?
        }
        (None, Some(g)) => parse_grid(g, cost)?,
    };
    Ok((space, eps, max_cond))
}

fn read_vector(path: &str, what: &str) -> Result<Vec<f64>, CliError> {
    let v = io::read_weights(Path::new(path)).map_err(bad(what))?;
    if let Some(i) = v.iter().position(|t| !t.is_finite()) {
        return Err(CliError::bad_input(format!(
            "{what}: non-finite value at index {i}"
        )));
    }
    Ok(v)
}

fn measure(spec: &str, space: &FiniteSpace, what: &str) -> Result<Vec<f64>, CliError> {
    let coords =
        |t: &str| -> Result<Vec<f64>, CliError> { t.split(',').map(|c| number(c, what)).collect() };
    let mu = if let Some(x) = spec.strip_prefix("dirac:") {
        dirac_near(space, &coords(x)?).map_err(bad(what))?
    } else if spec == "uniform" {
        uniform(space)
    } else if let Some(rest) = spec.strip_prefix("gaussian:") {
        let (m, s) = rest.rsplit_once(':').ok_or_else(|| {
            CliError::bad_input(format!(
                "{what}: expected gaussian:MEAN:SIGMA, got '{spec}'"
            ))
        })?;
        gaussian_bump(space, &coords(m)?, number(s, what)?).map_err(bad(what))?
    } else {
        read_vector(spec, what)?
    };
    check_probability(&mu, space.len(), what).map_err(bad(what))?;
    Ok(mu)
}

fn potential(
    v: &Option<String>,
    potential: &Option<String>,
    space: &FiniteSpace,
) -> Result<Vec<f64>, CliError> {
    let v = match (v, potential) {
        (Some(_), Some(_)) => {
            return Err(CliError::bad_input(
                "give either --v or --potential, not both",
            ))
        }
        (None, None) => return Err(CliError::bad_input("give --v FILE or --potential NAME")),
        (Some(p), None) => read_vector(p, "--v")?,
        (None, Some(name)) => name
            .parse::<Potential>()
            .map_err(|e| CliError::bad_input(format!("--potential: {e}")))?
            .on(space),
    };
    if v.len() != space.len() {
        return Err(CliError::bad_input(format!(
            "--v has {} values but there are {} points",
            v.len(),
            space.len()
        )));
    }
    Ok(v)
}

/// The step count `round(t_end/dt)`, checked to be a whole number to 1e-9 relative.
pub fn step_count(t_end: f64, dt: f64, what: &str) -> Result<usize, CliError> {
    if dt <= 0.0 {
        return Err(CliError::bad_input(format!("{what} must be > 0, got {dt}")));
    }
    if t_end < 0.0 {
        return Err(CliError::bad_input(format!(
            "--t-end must be >= 0, got {t_end}"
        )));
    }
    let q = t_end / dt;
    if !q.is_finite() || q > 1e9 {
        return Err(CliError::bad_input(format!(
            "--t-end / {what} = {q:e} steps is too many"
        )));
    }
    let steps = q.round();
    if (steps * dt - t_end).abs() > 1e-9 * t_end {
        return Err(CliError::bad_input(format!(
            "--t-end {t_end} is not a whole number of steps of {what} {dt} (t_end/{what} = {q}); the number of steps is round(t_end/{what}) and must reproduce t_end to 1e-9 relative"
        )));
    }
    Ok(steps as usize)
}

/// Rows as JSON, renormalised if asked; returns (mu rows, mass, energy).
pub fn report_rows(
    mu: &[Vec<f64>],
    v: &[f64],
    renormalize: bool,
) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let rows: Vec<Vec<f64>> = mu
        .iter()
        .map(|m| {
            let s: f64 = m.iter().sum();
            if renormalize && s > 0.0 {
                m.iter().map(|x| x / s).collect()
            } else {
                m.clone()
            }
        })
        .collect();
    let mass = rows.iter().map(|m| m.iter().sum()).collect();
    let energy = rows
        .iter()
        .map(|m| m.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect();
    (rows, mass, energy)
}

fn run_flow(args: &FlowArgs) -> Result<(), CliError> {
    let reflected = match args.scheme.as_str() {
        "implicit" => false,
        "reflected" | "crank-nicolson" => true,
        other => {
            return Err(CliError::bad_input(format!(
                "--scheme: unknown scheme '{other}' (expected implicit, the resolvent, or reflected, its second-order reflection)"
            )))
        }
    };
    let (space, eps, max_cond) = build_space(&args.space)?;
    let v = potential(&args.v, &args.potential, &space)?;
    let mu0 = measure(&args.mu0, &space, "--mu0")?;
    let dt = number(&args.dt, "--dt")?;
    let t_end = number(&args.t_end, "--t-end")?;
    let steps = step_count(t_end, dt, "--dt")?;
    let double_double = match args.precision.as_str() {
        "double" => false,
        "double-double" => true,
        other => {
            return Err(CliError::bad_input(format!(
                "--precision: unknown precision '{other}' (expected double or double-double)"
            )))
        }
    };
    let params = FlowParams {
        dt,
        steps,
        lcp: Default::default(),
        bmap: Default::default(),
    };
    if double_double {
        let limit = args
            .space
            .max_cond
            .as_deref()
            .map_or(Ok(DD_MAX_CONDITION), |t| number(t, "--max-cond"))?;
        let kernel =
            ExtendedKernel::new(&space, eps, limit).map_err(bad("kernel (double-double)"))?;
        let out = if reflected {
            reflected_flow_dd(&space, &kernel, &v, &mu0, &params)
        } else {
            resolvent_flow_dd(&space, &kernel, &v, &mu0, &params)
        }
        .map_err(bad("flow (double-double)"))?;
        return emit_flow(
            &out,
            &v,
            args,
            if reflected { "reflected" } else { "implicit" },
            "double-double",
            eps,
            dt,
            steps,
            &space,
        );
    }
    let kernel = Kernel::new(
        &space,
        eps,
        &KernelParams {
            max_condition: max_cond,
        },
    )
    .map_err(bad("kernel"))?;
    let out = if reflected {
        reflected_flow(&space, &kernel, &v, &mu0, &params)
    } else {
        resolvent_flow(&space, &kernel, &v, &mu0, &params)
    }
    .map_err(bad("flow"))?;
    emit_flow(
        &out,
        &v,
        args,
        if reflected { "reflected" } else { "implicit" },
        "double",
        eps,
        dt,
        steps,
        &space,
    )
}

#[allow(clippy::too_many_arguments)]
fn emit_flow(
    out: &FlowOutput,
    v: &[f64],
    args: &FlowArgs,
    scheme: &str,
    precision: &str,
    eps: f64,
    dt: f64,
    steps: usize,
    space: &FiniteSpace,
) -> Result<(), CliError> {
    let (rows, mass, energy) = report_rows(&out.mu, v, args.renormalize);
    let value = json!({
        "t": out.t,
        "mu": rows,
        "energy": energy,
        "mass": mass,
        "kkt_residual": out.kkt_residual,
        "cond_k": out.cond_k,
        "raw_mass": out.mass,
        "scheme": scheme,
        "precision": precision,
        "renormalized": args.renormalize,
        "eps": eps,
        "dt": dt,
        "steps": steps,
        "n": space.len(),
        "d": space.dim(),
        "s": space.s_of_eps(eps),
        "initial_error": out.initial_error,
        "lcp_methods": out.method.iter().map(|m| m.map(|m| m.name())).collect::<Vec<_>>(),
    });
    emit(&value, args.json);
    Ok(())
}

fn emit(value: &serde_json::Value, as_json: bool) {
    if as_json {
        print_json(value);
    } else if let Some(obj) = value.as_object() {
        for (k, v) in obj {
            let text = v.to_string();
            if text.len() > 200 {
                println!("{k:>15}: {}...", &text[..200]);
            } else {
                println!("{k:>15}: {text}");
            }
        }
    }
}

fn run_sjko(args: &SjkoArgs) -> Result<(), CliError> {
    match args.precision.as_str() {
        "double" => {}
        "double-double" => {
            return Err(CliError::bad_input(
                "--precision double-double is not supported by `finite sjko`: SJKO runs in the log domain and never forms K, so it is not limited by cond(K) (it runs at any s = eps/delta^2 in double); its limit at large s is the conditioning of the step's Hessian, which extended precision of the kernel algebra does not address. Use `finite flow --precision double-double` (implicit or reflected scheme) for the extended-precision path",
            ))
        }
        other => {
            return Err(CliError::bad_input(format!(
                "--precision: unknown precision '{other}' (expected double)"
            )))
        }
    }
    let (space, eps, _) = build_space(&args.space)?;
    let v = potential(&args.v, &args.potential, &space)?;
    let mu0 = measure(&args.mu0, &space, "--mu0")?;
    let tau = number(&args.tau, "--tau")?;
    let t_end = number(&args.t_end, "--t-end")?;
    let tol = number(&args.tol, "--tol")?;
    if tol <= 0.0 {
        return Err(CliError::bad_input(format!("--tol must be > 0, got {tol}")));
    }
    let steps = step_count(t_end, tau, "--tau")?;
    let params = SjkoParams {
        tau,
        steps,
        tol,
        ..SjkoParams::default()
    };
    let out = sjko_flow(&space, eps, &v, &mu0, &params).map_err(bad("sjko"))?;
    let (rows, mass, energy) = report_rows(&out.mu, &v, args.renormalize);
    let value = json!({
        "t": out.t,
        "mu": rows,
        "energy": energy,
        "mass": mass,
        "kkt_residual": out.kkt_residual,
        "cond_k": serde_json::Value::Null,
        "newton_iterations": out.newton_iterations,
        "hessian_cond": out.hessian_cond.iter().map(|c| if c.is_finite() { json!(c) } else { serde_json::Value::Null }).collect::<Vec<_>>(),
        "scheme": "sjko",
        "eps": eps,
        "tau": tau,
        "steps": steps,
        "n": space.len(),
        "d": space.dim(),
        "s": space.s_of_eps(eps),
    });
    emit(&value, args.json);
    Ok(())
}

fn run_metric(args: &MetricArgs) -> Result<(), CliError> {
    let (space, eps, _) = build_space(&args.space)?;
    let mu = measure(&args.mu, &space, "--mu")?;
    let sigma = read_vector(&args.sigma, "--sigma")?;
    if sigma.len() != space.len() {
        return Err(CliError::bad_input(format!(
            "--sigma has {} values but there are {} points",
            sigma.len(),
            space.len()
        )));
    }
    let ops = MuOperators::new(&space, eps, &mu, &Default::default()).map_err(bad("metric"))?;
    let g = ops.metric(&sigma).map_err(bad("--sigma"))?;
    let value = json!({ "g": g, "eps": eps, "n": space.len(), "d": space.dim() });
    emit(&value, args.json);
    Ok(())
}

/// Run `sinkflow finite ...`.
pub fn run(args: &FiniteArgs) -> Result<(), CliError> {
    match &args.command {
        FiniteCommand::Flow(a) => run_flow(a),
        FiniteCommand::Sjko(a) => run_sjko(a),
        FiniteCommand::Metric(a) => run_metric(a),
    }
}
