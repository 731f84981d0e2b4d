//! `sinkflow pma ...`: the parabolic Monge–Ampère flow against Sinkhorn/IPFP iterates
//! (seed 002, issue 11) from the shell.
//!
//! Matrices are typed `"1,0;0,1"`; negative values are accepted as typed and rejected by the
//! validators. With `--json` exactly one JSON object is printed on stdout; errors go to stderr
//! with exit code 2 (bad input) or 1 (numerical failure), and nothing is printed on stdout.

use clap::{Args, Subcommand};
use serde_json::json;
use sinkflow::pma::gaussian::GaussianPma;
use sinkflow::pma::grid::{self, Domain, Grid1d, GridSnapshot, PmaParams, Scheme};
use sinkflow::pma::grid2d::{self, Grid2d, Snapshot2d};
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
    /// PMA on a 1-D grid (torus or interval): phi_t, grad phi_t, rho_t and the stationary residual.
    Grid(GridArgs),
    /// The seed's IPFP on the same grid through the Sinkhorn engine: phi_k with k = round(T/eps).
    Ipfp(IpfpArgs),
    /// The seed's IPFP on samples (point clouds from files): grad phi_k at the samples.
    Particles(ParticlesArgs),
    /// Wasserstein mirror gradient flow of Gaussians (seed 002, examples 1-3) beside the
    /// Wasserstein gradient flow of the same energy.
    Mirror(MirrorArgs),
}

/// `pma particles` arguments.
#[derive(Args, Debug)]
pub struct ParticlesArgs {
    /// Samples of e^{-f} (`.npy` or `.csv`, one point per row).
    #[arg(long)]
    pub x: String,
    /// Samples of e^{-g}.
    #[arg(long)]
    pub y: String,
    /// Regularisation eps > 0 (cost |x-y|^2/2).
    #[arg(long, allow_hyphen_values = true)]
    pub eps: f64,
    /// Final time T >= 0; k = round(T/eps), half up, at least 1.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: f64,
    /// Print one JSON object {"k","t","x","grad_phi"} on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The grid and the two densities e^{-f}, e^{-g}.
#[derive(Args, Debug)]
pub struct GridProblemArgs {
    /// Potential f of the X-density e^{-f}: a file of n values (`.csv` one per row, or `.npy`)
    /// or a catalogue name (uniform, cos:A:K, gauss:M:S, pushed:C:G).
    #[arg(long, allow_hyphen_values = true)]
    pub f: String,
    /// Potential g of the Y-density e^{-g} (file or catalogue name).
    #[arg(long, allow_hyphen_values = true)]
    pub g: String,
    /// Domain: `torus` ([0,1), nodes j/n) or `interval` ([0,1], nodes (j+1/2)/n).
    #[arg(long)]
    pub domain: String,
    /// Number of grid nodes n (per side in 2-D).
    #[arg(long)]
    pub n: usize,
    /// Dimension: 1, or 2 (torus [0,1)^2, values row-major n x n, explicit scheme).
    #[arg(long, default_value_t = 1)]
    pub dim: usize,
    /// Final time T >= 0.
    #[arg(long, allow_hyphen_values = true)]
    pub t_end: f64,
    /// Number K of output intervals (K + 1 times from 0 to T).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Rescale e^{-f}, e^{-g} to grid mean 1 (otherwise a mean off by more than 1e-6 is an error).
    #[arg(long)]
    pub normalise: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `pma grid` arguments.
#[derive(Args, Debug)]
pub struct GridArgs {
    /// Grid and densities.
    #[command(flatten)]
    pub problem: GridProblemArgs,
    /// Fixed time step dt > 0 (T/dt must be a whole number within 1e-9 relative).
    #[arg(long, allow_hyphen_values = true)]
    pub dt: f64,
    /// `explicit` (forward Euler under dt <= h^2 min phi''/2) or `implicit` (backward Euler, Newton).
    #[arg(long, default_value = "explicit")]
    pub scheme: String,
}

/// `pma ipfp` arguments.
#[derive(Args, Debug)]
pub struct IpfpArgs {
    /// Grid and densities.
    #[command(flatten)]
    pub problem: GridProblemArgs,
    /// Regularisation eps > 0 (kernel exp(<x,y>/eps); periodic cost d(x,y)^2/2 on the torus).
    #[arg(long, allow_hyphen_values = true)]
    pub eps: f64,
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
        PmaCommand::Grid(a) => grid_pma(a),
        PmaCommand::Ipfp(a) => grid_ipfp(a),
        PmaCommand::Particles(a) => particles(a),
        PmaCommand::Mirror(a) => mirror_flow(a),
    }
}

fn particles(a: &ParticlesArgs) -> Result<(), CliError> {
    use sinkflow::sinkhorn::PointCloud;
    let read = |path: &str, what: &str| -> Result<PointCloud, CliError> {
        let arr = sinkflow::io::read_points(path).map_err(|e| CliError::from_lib(what, e))?;
        PointCloud::from_flat(arr.data, arr.cols, None, false)
            .map_err(|e| CliError::from_lib(what, e))
    };
    let x = read(&a.x, "--x")?;
    let y = read(&a.y, "--y")?;
    let (k, grad) = sinkflow::pma::particles::particle_ipfp(&x, &y, a.eps, a.t_end).map_err(lib)?;
    let d = x.dim();
    let rows: Vec<Vec<f64>> = grad.chunks(d).map(|c| c.to_vec()).collect();
    if a.json {
        print_json(&json!({
            "k": k,
            "t": [k as f64 * a.eps],
            "x": (0..x.len()).map(|i| x.point(i).to_vec()).collect::<Vec<_>>(),
            "grad_phi": [rows],
        }));
    } else {
        println!("k = round(T/eps) = {k}");
        for (i, r) in rows.iter().enumerate().take(10) {
            println!("x = {:?} -> grad phi_k = {:?}", x.point(i), r);
        }
        if rows.len() > 10 {
            println!("... ({} samples)", rows.len());
        }
    }
    Ok(())
}

/// Read a potential: an existing file, else a catalogue name.
fn potential(spec: &str, grid: &Grid1d, what: &str) -> Result<Vec<f64>, CliError> {
    let path = std::path::Path::new(spec);
    if path.is_file() {
        sinkflow::io::read_weights(path).map_err(|e| CliError::from_lib(what, e))
    } else {
        grid::catalogue(grid, spec).map_err(|e| {
            CliError::bad_input(format!(
                "{what}: '{spec}' is neither a readable file nor a catalogue entry ({e})"
            ))
        })
    }
}

fn grid_problem(p: &GridProblemArgs) -> Result<(Grid1d, Vec<f64>, Vec<f64>), CliError> {
    if p.dim != 1 {
        return Err(CliError::bad_input(format!(
            "--dim must be 1 or 2, got {}",
            p.dim
        )));
    }
    if p.domain == "box" {
        return Err(CliError::bad_input(
            "--domain box (2-D Gaussians on a box) is not available yet; use torus or interval (1-D)",
        ));
    }
    let domain: Domain = p.domain.parse().map_err(CliError::bad_input)?;
    let grid = Grid1d::new(domain, p.n).map_err(lib)?;
    let f = potential(&p.f, &grid, "--f")?;
    let g = potential(&p.g, &grid, "--g")?;
    let f = grid
        .check_density(&f, "f", p.normalise)
        .map_err(|e| CliError::from_lib("--f", e))?;
    let g = grid
        .check_density(&g, "g", p.normalise)
        .map_err(|e| CliError::from_lib("--g", e))?;
    Ok((grid, f, g))
}

fn grid_problem_2d(p: &GridProblemArgs) -> Result<(Grid2d, Vec<f64>, Vec<f64>), CliError> {
    if p.domain != "torus" {
        return Err(CliError::bad_input(format!(
            "--dim 2 supports --domain torus only, got '{}'",
            p.domain
        )));
    }
    let grid = Grid2d::new(p.n).map_err(lib)?;
    let read = |spec: &str, what: &str| -> Result<Vec<f64>, CliError> {
        let path = std::path::Path::new(spec);
        if path.is_file() {
            sinkflow::io::read_weights(path).map_err(|e| CliError::from_lib(what, e))
        } else {
            grid2d::catalogue_2d(&grid, spec).map_err(|e| {
                CliError::bad_input(format!(
                    "{what}: '{spec}' is neither a readable file nor a catalogue entry ({e})"
                ))
            })
        }
    };
    let f = read(&p.f, "--f")?;
    let g = read(&p.g, "--g")?;
    let f = grid
        .check_density(&f, "f", p.normalise)
        .map_err(|e| CliError::from_lib("--f", e))?;
    let g = grid
        .check_density(&g, "g", p.normalise)
        .map_err(|e| CliError::from_lib("--g", e))?;
    Ok((grid, f, g))
}

fn print_2d(
    grid: &Grid2d,
    snaps: &[Snapshot2d],
    k: Option<usize>,
    as_json: bool,
) -> Result<(), CliError> {
    let n = grid.n();
    if as_json {
        let mut v = json!({
            "x": (0..n * n).map(|i| grid.point(i).to_vec()).collect::<Vec<_>>(),
            "t": snaps.iter().map(|s| s.t).collect::<Vec<_>>(),
            "phi": snaps.iter().map(|s| s.phi.clone()).collect::<Vec<_>>(),
            "grad_phi": snaps
                .iter()
                .map(|s| s.grad_phi.iter().map(|g| g.to_vec()).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            "rho": snaps.iter().map(|s| s.rho.clone()).collect::<Vec<_>>(),
            "residual": snaps.iter().map(|s| s.residual).collect::<Vec<_>>(),
        });
        if let Some(k) = k {
            v["k"] = json!(k);
        }
        print_json(&v);
    } else {
        if let Some(k) = k {
            println!("k = round(T/eps) = {k}");
        }
        println!("{:>12}  {:>22}", "t", "residual");
        for s in snaps {
            println!("{:>12.6}  {:>22.12e}", s.t, s.residual);
        }
    }
    Ok(())
}

fn snapshots_json(grid: &Grid1d, snaps: &[GridSnapshot]) -> serde_json::Value {
    json!({
        "x": grid.x(),
        "t": snaps.iter().map(|s| s.t).collect::<Vec<_>>(),
        "phi": snaps.iter().map(|s| s.phi.clone()).collect::<Vec<_>>(),
        "grad_phi": snaps.iter().map(|s| s.grad_phi.clone()).collect::<Vec<_>>(),
        "rho": snaps.iter().map(|s| s.rho.clone()).collect::<Vec<_>>(),
        "residual": snaps.iter().map(|s| s.residual).collect::<Vec<_>>(),
    })
}

fn print_snapshots(grid: &Grid1d, snaps: &[GridSnapshot]) {
    println!(
        "{:>12}  {:>22}  {:>22}",
        "t", "residual", "max |grad phi - x|"
    );
    for s in snaps {
        let gap = s
            .grad_phi
            .iter()
            .zip(grid.x())
            .map(|(gp, x)| (gp - x).abs())
            .fold(0.0, f64::max);
        println!("{:>12.6}  {:>22.12e}  {:>22.12e}", s.t, s.residual, gap);
    }
}

fn grid_pma(a: &GridArgs) -> Result<(), CliError> {
    if a.problem.dim == 2 {
        let (grid, f, g) = grid_problem_2d(&a.problem)?;
        if a.scheme != "explicit" {
            return Err(CliError::bad_input(
                "--dim 2 supports --scheme explicit only (implicit stepping is 1-D)",
            ));
        }
        let snaps = grid2d::solve_pma_2d(&grid, &f, &g, a.problem.t_end, a.dt, a.problem.samples)
            .map_err(lib)?;
        return print_2d(&grid, &snaps, None, a.problem.json);
    }
    let (grid, f, g) = grid_problem(&a.problem)?;
    let scheme: Scheme = a.scheme.parse().map_err(CliError::bad_input)?;
    let params = PmaParams {
        t_end: a.problem.t_end,
        dt: a.dt,
        samples: a.problem.samples,
        scheme,
        ..PmaParams::default()
    };
    let snaps = grid::solve_pma(&grid, &f, &g, &params).map_err(lib)?;
    if a.problem.json {
        print_json(&snapshots_json(&grid, &snaps));
    } else {
        print_snapshots(&grid, &snaps);
    }
    Ok(())
}

fn grid_ipfp(a: &IpfpArgs) -> Result<(), CliError> {
    if a.problem.dim == 2 {
        let (grid, f, g) = grid_problem_2d(&a.problem)?;
        let (k, snaps) = grid2d::ipfp_2d(&grid, &f, &g, a.eps, a.problem.t_end, a.problem.samples)
            .map_err(lib)?;
        return print_2d(&grid, &snaps, Some(k), a.problem.json);
    }
    let (grid, f, g) = grid_problem(&a.problem)?;
    let (k, snaps) =
        grid::ipfp(&grid, &f, &g, a.eps, a.problem.t_end, a.problem.samples).map_err(lib)?;
    if a.problem.json {
        let mut v = snapshots_json(&grid, &snaps);
        v["k"] = json!(k);
        print_json(&v);
    } else {
        println!("k = round(T/eps) = {k}");
        print_snapshots(&grid, &snaps);
    }
    Ok(())
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
