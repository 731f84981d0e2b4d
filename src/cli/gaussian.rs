//! `sinkflow gaussian ...`: closed-form Gaussian entropic OT and Gaussian flows from the shell.
//!
//! Vectors are typed `"1,2,3"`, matrices `"2,0.3;0.3,1"`; negative values are accepted as typed
//! (`--cov-a "-1,0;0,1"` reaches the validator and is rejected there with exit code 2).
//! With `--json` one JSON object is printed on stdout; without it, a readable summary.

use clap::{Args, Subcommand};
use nalgebra::{DMatrix, DVector};
use serde_json::{json, Value};
use sinkflow::gaussian::flow::{self, FlowParams, FlowTrajectory, Method};
use sinkflow::gaussian::{self, EntropicOt, Gaussian, QuadraticPotential};
use sinkflow::Cost;

use super::{fmt_sig, matrix_json, parse_matrix, parse_vector, print_json, vector_json, CliError};

/// `sinkflow gaussian` arguments.
#[derive(Args, Debug)]
pub struct GaussianArgs {
    /// Which quantity to compute.
    #[command(subcommand)]
    pub command: GaussianCommand,
}

/// The `gaussian` subcommands.
#[derive(Subcommand, Debug)]
pub enum GaussianCommand {
    /// Sinkhorn divergence S_eps and its three OT_eps terms.
    Divergence(PairEpsArgs),
    /// OT_eps with its transport part and mutual information KL(pi | mu x nu).
    Ot(PairEpsArgs),
    /// The entropic plan (a Gaussian on R^{2d}) and its cross-covariance.
    Plan(PairEpsArgs),
    /// The entropic barycentric map x -> b + K (x - a).
    Map(MapArgs),
    /// The Schroedinger potentials f, g (quadratic: x^T Q x + l.x + k).
    Potentials(PairEpsArgs),
    /// Squared Bures-Wasserstein distance and the Brenier (Bures) map matrix.
    W2(PairArgs),
    /// The Wasserstein gradient flow of S_eps(., target) (covariance ODE).
    Flow(FlowArgs),
    /// The eps -> 0 limit: gradient flow of W2^2(., target), in closed form.
    BuresFlow(BuresFlowArgs),
}

/// Two Gaussians mu = N(a, A), nu = N(b, B).
#[derive(Args, Debug)]
pub struct PairArgs {
    /// Mean a of mu, e.g. "0,-1.5".
    #[arg(long, allow_hyphen_values = true)]
    pub mean_a: String,
    /// Covariance A of mu, e.g. "1,0.2;0.2,2" (symmetric PSD; singular allowed).
    #[arg(long, allow_hyphen_values = true)]
    pub cov_a: String,
    /// Mean b of nu.
    #[arg(long, allow_hyphen_values = true)]
    pub mean_b: String,
    /// Covariance B of nu.
    #[arg(long, allow_hyphen_values = true)]
    pub cov_b: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Two Gaussians, a regularisation and a cost.
#[derive(Args, Debug)]
pub struct PairEpsArgs {
    /// The two Gaussians.
    #[command(flatten)]
    pub pair: PairArgs,
    /// Regularisation eps > 0.
    #[arg(long, allow_hyphen_values = true)]
    pub eps: f64,
    /// Ground cost: `sq` (|x-y|^2) or `half-sq` (|x-y|^2/2).
    #[arg(long, default_value = "sq")]
    pub cost: String,
}

/// `gaussian map` arguments.
#[derive(Args, Debug)]
pub struct MapArgs {
    /// The problem.
    #[command(flatten)]
    pub problem: PairEpsArgs,
    /// Optional point x at which to evaluate T(x).
    #[arg(long, allow_hyphen_values = true)]
    pub x: Option<String>,
}

/// Start, target and output grid of a flow.
#[derive(Args, Debug)]
pub struct FlowEndsArgs {
    /// Initial mean m0.
    #[arg(long, allow_hyphen_values = true)]
    pub mean0: String,
    /// Initial covariance S0 (singular allowed).
    #[arg(long, allow_hyphen_values = true)]
    pub cov0: String,
    /// Target mean m*.
    #[arg(long, allow_hyphen_values = true)]
    pub mean_target: String,
    /// Target covariance S* (singular allowed).
    #[arg(long, allow_hyphen_values = true)]
    pub cov_target: String,
    /// Final time T >= 0.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: f64,
    /// Number K of output intervals (K + 1 output times 0..=T).
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `gaussian flow` arguments.
#[derive(Args, Debug)]
pub struct FlowArgs {
    /// Start, target, times.
    #[command(flatten)]
    pub ends: FlowEndsArgs,
    /// Regularisation eps > 0.
    #[arg(long, allow_hyphen_values = true)]
    pub eps: f64,
    /// Ground cost: `sq` or `half-sq`.
    #[arg(long, default_value = "sq")]
    pub cost: String,
    /// Relative tolerance of the adaptive integrator.
    #[arg(long, default_value_t = 1e-10, allow_hyphen_values = true)]
    pub rtol: f64,
    /// Absolute tolerance of the adaptive integrator.
    #[arg(long, default_value_t = 1e-12, allow_hyphen_values = true)]
    pub atol: f64,
    /// Runge-Kutta method: `dopri5` or `dop853`.
    #[arg(long, default_value = "dopri5")]
    pub method: String,
}

/// `gaussian bures-flow` arguments.
#[derive(Args, Debug)]
pub struct BuresFlowArgs {
    /// Start, target, times.
    #[command(flatten)]
    pub ends: FlowEndsArgs,
}

fn gaussian_from(mean: &str, cov: &str, name: &str) -> Result<Gaussian, CliError> {
    let m = parse_vector(mean, &format!("mean of {name}"))?;
    let c = parse_matrix(cov, &format!("covariance of {name}"))?;
    Gaussian::new(m, c).map_err(|e| CliError::from_lib(name, e))
}

fn pair_from(p: &PairArgs) -> Result<(Gaussian, Gaussian), CliError> {
    let mu = gaussian_from(&p.mean_a, &p.cov_a, "mu (--mean-a/--cov-a)")?;
    let nu = gaussian_from(&p.mean_b, &p.cov_b, "nu (--mean-b/--cov-b)")?;
    Ok((mu, nu))
}

fn cost_from(s: &str) -> Result<Cost, CliError> {
    s.parse::<Cost>().map_err(CliError::bad_input)
}

fn lib<E: sinkflow::Classify + std::fmt::Display>(e: E) -> CliError {
    CliError::from_lib("", e)
}

fn potential_json(p: &QuadraticPotential) -> Value {
    json!({"quad": matrix_json(&p.quad), "lin": vector_json(&p.lin), "constant": p.constant})
}

fn fmt_vec(v: &DVector<f64>) -> String {
    let parts: Vec<String> = v.iter().map(|&x| fmt_sig(x, 11)).collect();
    format!("[{}]", parts.join(", "))
}

fn fmt_mat(m: &DMatrix<f64>) -> String {
    let rows: Vec<String> = (0..m.nrows())
        .map(|i| fmt_vec(&m.row(i).transpose()))
        .collect();
    rows.join("\n    ")
}

fn trajectory_json(tr: &FlowTrajectory) -> Value {
    json!({
        "t": tr.times,
        "mean": tr.means.iter().map(vector_json).collect::<Vec<_>>(),
        "cov": tr.covs.iter().map(matrix_json).collect::<Vec<_>>(),
        "divergence": tr.divergence,
        "dissipation": tr.dissipation,
    })
}

fn print_trajectory(tr: &FlowTrajectory, energy: &str) {
    println!("{:>14} {:>22} {:>22}", "t", energy, "dissipation");
    for i in 0..tr.times.len() {
        println!(
            "{:>14.6} {:>22} {:>22}",
            tr.times[i],
            fmt_sig(tr.divergence[i], 13),
            fmt_sig(tr.dissipation[i], 13)
        );
    }
    if let (Some(m), Some(c)) = (tr.means.last(), tr.covs.last()) {
        println!("final mean = {}", fmt_vec(m));
        println!("final cov  = {}", fmt_mat(c));
    }
}

fn ends_from(e: &FlowEndsArgs) -> Result<(Gaussian, Gaussian), CliError> {
    let mu0 = gaussian_from(&e.mean0, &e.cov0, "mu0 (--mean0/--cov0)")?;
    let target = gaussian_from(
        &e.mean_target,
        &e.cov_target,
        "target (--mean-target/--cov-target)",
    )?;
    Ok((mu0, target))
}

/// Run `sinkflow gaussian ...`.
pub fn run(args: &GaussianArgs) -> Result<(), CliError> {
    match &args.command {
        GaussianCommand::Divergence(a) => {
            let (mu, nu) = pair_from(&a.pair)?;
            let p =
                gaussian::divergence_parts(&mu, &nu, a.eps, cost_from(&a.cost)?).map_err(lib)?;
            if a.pair.json {
                print_json(&json!({
                    "ot_ab": p.ot_ab, "ot_aa": p.ot_aa, "ot_bb": p.ot_bb, "divergence": p.divergence
                }));
            } else {
                println!("OT_eps(mu, nu) = {}", fmt_sig(p.ot_ab, 16));
                println!("OT_eps(mu, mu) = {}", fmt_sig(p.ot_aa, 16));
                println!("OT_eps(nu, nu) = {}", fmt_sig(p.ot_bb, 16));
                println!("S_eps(mu, nu)  = {}", fmt_sig(p.divergence, 16));
            }
        }
        GaussianCommand::Ot(a) => {
            let (mu, nu) = pair_from(&a.pair)?;
            let ot = EntropicOt::new(&mu, &nu, a.eps, cost_from(&a.cost)?).map_err(lib)?;
            if a.pair.json {
                print_json(&json!({
                    "value": ot.value(),
                    "transport_cost": ot.transport_cost(),
                    "mutual_information": ot.mutual_information(),
                }));
            } else {
                println!("OT_eps             = {}", fmt_sig(ot.value(), 16));
                println!("transport cost     = {}", fmt_sig(ot.transport_cost(), 16));
                println!(
                    "KL(pi | mu x nu)   = {}",
                    fmt_sig(ot.mutual_information(), 16)
                );
            }
        }
        GaussianCommand::Plan(a) => {
            let (mu, nu) = pair_from(&a.pair)?;
            let ot = EntropicOt::new(&mu, &nu, a.eps, cost_from(&a.cost)?).map_err(lib)?;
            let plan = ot.plan();
            if a.pair.json {
                print_json(&json!({
                    "mean": vector_json(plan.mean()),
                    "cov": matrix_json(plan.cov()),
                    "cross_covariance": matrix_json(ot.cross_covariance()),
                }));
            } else {
                println!("plan mean = {}", fmt_vec(plan.mean()));
                println!(
                    "cross-covariance C =\n    {}",
                    fmt_mat(ot.cross_covariance())
                );
            }
        }
        GaussianCommand::Map(m) => {
            let a = &m.problem;
            let (mu, nu) = pair_from(&a.pair)?;
            let ot = EntropicOt::new(&mu, &nu, a.eps, cost_from(&a.cost)?).map_err(lib)?;
            let image = match &m.x {
                None => None,
                Some(text) => {
                    let x = parse_vector(text, "--x")?;
                    if x.len() != mu.dim() {
                        return Err(CliError::bad_input(format!(
                            "--x has dimension {}, expected {}",
                            x.len(),
                            mu.dim()
                        )));
                    }
                    Some(ot.map(&x))
                }
            };
            if a.pair.json {
                let mut v = json!({
                    "matrix": matrix_json(ot.map_matrix()),
                    "source_mean": vector_json(mu.mean()),
                    "target_mean": vector_json(nu.mean()),
                });
                if let Some(y) = &image {
                    v["image"] = vector_json(y);
                }
                print_json(&v);
            } else {
                println!(
                    "T(x) = b + K (x - a), K =\n    {}",
                    fmt_mat(ot.map_matrix())
                );
                if let Some(y) = &image {
                    println!("T(x) = {}", fmt_vec(y));
                }
            }
        }
        GaussianCommand::Potentials(a) => {
            let (mu, nu) = pair_from(&a.pair)?;
            let ot = EntropicOt::new(&mu, &nu, a.eps, cost_from(&a.cost)?).map_err(lib)?;
            let (f, g) = ot.potentials();
            if a.pair.json {
                print_json(&json!({"f": potential_json(&f), "g": potential_json(&g)}));
            } else {
                for (name, p) in [("f", &f), ("g", &g)] {
                    println!("{name}(x) = x^T Q x + l.x + k with");
                    println!("  Q = {}", fmt_mat(&p.quad));
                    println!("  l = {}", fmt_vec(&p.lin));
                    println!("  k = {}", fmt_sig(p.constant, 16));
                }
            }
        }
        GaussianCommand::W2(p) => {
            let (mu, nu) = pair_from(p)?;
            let w2 = gaussian::bures_wasserstein_sq(&mu, &nu).map_err(lib)?;
            let t = gaussian::brenier_map(&mu, &nu).map_err(lib)?;
            if p.json {
                print_json(&json!({"w2_sq": w2, "brenier_map": matrix_json(&t)}));
            } else {
                println!("W2^2 = {}", fmt_sig(w2, 16));
                println!("Brenier map x -> b + T (x - a), T =\n    {}", fmt_mat(&t));
            }
        }
        GaussianCommand::Flow(f) => {
            let (mu0, target) = ends_from(&f.ends)?;
            let params = FlowParams {
                eps: f.eps,
                cost: cost_from(&f.cost)?,
                t_end: f.ends.t_end,
                samples: f.ends.samples,
                rtol: f.rtol,
                atol: f.atol,
                method: f.method.parse::<Method>().map_err(CliError::bad_input)?,
            };
            let tr = flow::sinkhorn_flow(&mu0, &target, &params).map_err(lib)?;
            if f.ends.json {
                print_json(&trajectory_json(&tr));
            } else {
                print_trajectory(&tr, "S_eps(mu_t, mu*)");
                println!(
                    "{} evaluations, {} accepted / {} rejected steps",
                    tr.evaluations, tr.accepted_steps, tr.rejected_steps
                );
            }
        }
        GaussianCommand::BuresFlow(b) => {
            let (mu0, target) = ends_from(&b.ends)?;
            let t_end = b.ends.t_end;
            if !(t_end.is_finite() && t_end >= 0.0) {
                return Err(lib(gaussian::GaussianError::InvalidTime(t_end)));
            }
            let k = b.ends.samples;
            if k == 0 {
                return Err(CliError::bad_input("--samples must be >= 1, got 0"));
            }
            sinkflow::error::check_allocation(
                &format!("a trajectory of {} output times", k as u128 + 1),
                &[k.saturating_add(1), mu0.dim() * mu0.dim() + mu0.dim() + 3],
            )
            .map_err(|e| CliError::from_lib("--samples", e))?;
            let times: Vec<f64> = (0..=k)
                .map(|i| {
                    if i == k {
                        t_end
                    } else {
                        t_end * i as f64 / k as f64
                    }
                })
                .collect();
            let tr = flow::bures_flow(&mu0, &target, &times).map_err(lib)?;
            if b.ends.json {
                print_json(&trajectory_json(&tr));
            } else {
                print_trajectory(&tr, "W2^2(mu_t, mu*)");
            }
        }
    }
    Ok(())
}
