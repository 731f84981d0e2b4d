//! `sinkflow pma ...`: the parabolic Monge–Ampère flow against Sinkhorn/IPFP iterates
//! (seed 002, issue 11) from the shell.
//!
//! Matrices are typed `"1,0;0,1"`; negative values are accepted as typed and rejected by the
//! validators. With `--json` exactly one JSON object is printed on stdout; errors go to stderr
//! with exit code 2 (bad input) or 1 (numerical failure), and nothing is printed on stdout.

use clap::{Args, Subcommand};
use serde_json::json;
use sinkflow::pma::gaussian::GaussianPma;
use sinkflow::pma::mirror::{self, MirrorEnergy, MirrorParams};

use super::{matrix_json, parse_matrix, print_json, CliError};

/// `sinkflow pma` arguments.
#[derive(Args, Debug)]
pub struct PmaArgs {
    /// Which computation.
    #[command(subcommand)]
    pub command: PmaCommand,
}

/// The `pma` subcommands.
#[derive(Subcommand, Debug)]
pub enum PmaCommand {
    /// Exact Gaussian case: IPFP iterate P_k (k = round(T/eps)) against the Riccati solution A_T.
    Gaussian(GaussianArgs),
    /// Wasserstein mirror gradient flow of Gaussians (seed 002, examples 1-3) beside the
    /// Wasserstein gradient flow of the same energy.
    Mirror(MirrorArgs),
}

/// `pma gaussian` arguments: e^{-f} = N(0, Sigma), e^{-g} = N(0, Theta), phi_0 = |x|^2/2.
#[derive(Args, Debug)]
pub struct GaussianArgs {
    /// Covariance Sigma of e^{-f} (the X-marginal), symmetric positive definite, e.g. "1,0;0,2".
    #[arg(long, allow_hyphen_values = true)]
    pub sigma: String,
    /// Covariance Theta of e^{-g} (the Y-marginal), symmetric positive definite.
    #[arg(long, allow_hyphen_values = true)]
    pub theta: String,
    /// Regularisation eps > 0 (kernel exp(<x,y>/eps), i.e. cost |x-y|^2/2).
    #[arg(long, allow_hyphen_values = true)]
    pub eps: f64,
    /// Final time T >= 0; k = round(T/eps), half up, at least 1.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: f64,
    /// Print one JSON object {"k","P","A","w2","correction"} on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `pma mirror` arguments.
#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// Energy F: `entropy` (F = ∫ rho log rho) or `kl` (F = KL(. | N(0, --target))).
    #[arg(long, default_value = "kl")]
    pub energy: String,
    /// Initial covariance S_0 of rho_0 = N(0, S_0).
    #[arg(long, allow_hyphen_values = true)]
    pub s0: String,
    /// Covariance Theta of the mirror's reference e^{-g} = N(0, Theta) (the mirror is
    /// W2^2(., e^{-g})/2).
    #[arg(long, allow_hyphen_values = true)]
    pub theta: String,
    /// Covariance of the KL target N(0, target) (required for `--energy kl`).
    #[arg(long, allow_hyphen_values = true)]
    pub target: Option<String>,
    /// Final time T >= 0.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: f64,
    /// Number K >= 1 of output intervals (K + 1 times 0..=T).
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn lib<E: sinkflow::Classify + std::fmt::Display>(e: E) -> CliError {
    CliError::from_lib("", e)
}

/// Run `sinkflow pma ...`.
pub fn run(args: &PmaArgs) -> Result<(), CliError> {
    match &args.command {
        PmaCommand::Gaussian(a) => gaussian(a),
        PmaCommand::Mirror(a) => mirror_flow(a),
    }
}

fn gaussian(a: &GaussianArgs) -> Result<(), CliError> {
    let sigma = parse_matrix(&a.sigma, "--sigma")?;
    let theta = parse_matrix(&a.theta, "--theta")?;
    let pma = GaussianPma::new(&sigma, &theta).map_err(lib)?;
    let c = pma.compare(a.eps, a.t_end).map_err(lib)?;
    if a.json {
        print_json(&json!({
            "k": c.k,
            "P": matrix_json(&c.p),
            "A": matrix_json(&c.a),
            "w2": c.w2,
            "correction": matrix_json(&c.correction),
        }));
    } else {
        println!("k = round(T/eps) = {}", c.k);
        println!("P_k            = {}", fmt_matrix(&c.p));
        println!("A_T            = {}", fmt_matrix(&c.a));
        println!("W2(rho_k, rho_T) = {:.15e}", c.w2);
        println!("(P_k - A_T)/eps = {}", fmt_matrix(&c.correction));
        println!("eps -> 0 limit  = {}", fmt_matrix(&c.correction_limit));
    }
    Ok(())
}

fn fmt_matrix(m: &nalgebra::DMatrix<f64>) -> String {
    let rows: Vec<String> = (0..m.nrows())
        .map(|i| {
            let r: Vec<String> = (0..m.ncols())
                .map(|j| format!("{:.12e}", m[(i, j)]))
                .collect();
            format!("[{}]", r.join(", "))
        })
        .collect();
    rows.join("; ")
}

fn mirror_flow(a: &MirrorArgs) -> Result<(), CliError> {
    let s0 = parse_matrix(&a.s0, "--s0")?;
    let theta = parse_matrix(&a.theta, "--theta")?;
    let energy = match a.energy.as_str() {
        "entropy" => {
            if a.target.is_some() {
                return Err(CliError::bad_input(
                    "--target is only used with --energy kl",
                ));
            }
            MirrorEnergy::Entropy
        }
        "kl" => {
            let t = a
                .target
                .as_deref()
                .ok_or_else(|| CliError::bad_input("--energy kl needs --target"))?;
            MirrorEnergy::Kl(parse_matrix(t, "--target")?)
        }
        other => {
            return Err(CliError::bad_input(format!(
                "unknown energy '{other}' (expected 'entropy' or 'kl')"
            )))
        }
    };
    let params = MirrorParams {
        t_end: a.t_end,
        samples: a.samples,
        ..MirrorParams::default()
    };
    let out = mirror::mirror_flow(&s0, &theta, &energy, &params).map_err(lib)?;
    if a.json {
        print_json(&json!({
            "t": out.times,
            "mirror_cov": out.mirror.iter().map(matrix_json).collect::<Vec<_>>(),
            "wasserstein_cov": out.wasserstein.iter().map(matrix_json).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "{:>12}  {:>40}  {:>40}",
            "t", "mirror S_t", "Wasserstein S_t"
        );
        for i in 0..out.times.len() {
            println!(
                "{:>12.6}  {:>40}  {:>40}",
                out.times[i],
                fmt_matrix(&out.mirror[i]),
                fmt_matrix(&out.wasserstein[i])
            );
        }
    }
    Ok(())
}
