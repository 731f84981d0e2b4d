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
use sinkflow::pma::grid2d::{self, Domain2d, Grid2d, Snapshot2d};
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
    /// The seed's IPFP on the same grid through the Sinkhorn engine: phi_k with k = round(T/eps);
    /// with --x/--y sample files instead of --f/--g, the particle version (as `pma particles`).
    Ipfp(IpfpArgs),
    /// The seed's IPFP on samples (point clouds from files): phi_k and grad phi_k at the samples
    /// (the same as `pma ipfp --x --y`).
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
    /// Print one JSON object {"k","t","x","phi","grad_phi","rho_ratio","residual"} on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The grid and the two densities e^{-f}, e^{-g}.
#[derive(Args, Debug)]
pub struct GridProblemArgs {
    /// Potential f of the X-density e^{-f}: a file of n values (n x n row-major in 2-D; `.csv`
    /// one per row, or `.npy`) or a catalogue name (1-D: uniform, cos:A:K, gauss:M:S,
    /// mix:W:M:S[:W:M:S...], pushed:C:G; 2-D: uniform, cos:A:K, gauss:M1:M2:S11:S12:S22,
    /// mix:W:M1:M2:S11:S12:S22[:...], pushed:C:G). Required (except for `pma ipfp --x --y`).
    #[arg(long, allow_hyphen_values = true)]
    pub f: Option<String>,
    /// Potential g of the Y-density e^{-g} (file or catalogue name).
    #[arg(long, allow_hyphen_values = true)]
    pub g: Option<String>,
    /// Domain: `torus` ([0,1)^d, nodes j/n), `interval` (1-D [0,1], nodes (j+1/2)/n) or `box`
    /// (2-D [0,1]^2, cell-centred nodes; `--dim 1 --domain box` is the interval).
    #[arg(long)]
    pub domain: Option<String>,
    /// Number of grid nodes n (per side in 2-D).
    #[arg(long)]
    pub n: Option<usize>,
    /// Dimension 1 or 2. Default: 2 for `--domain box` or when a file holds n x n values, else 1.
    #[arg(long)]
    pub dim: Option<usize>,
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
    /// `explicit` (forward Euler under the CFL bound h^2 min phi''/2 in 1-D,
    /// h^2 min det H/(2 tr H) in 2-D) or `implicit` (backward Euler, Newton with faer LU).
    #[arg(long, default_value = "explicit")]
    pub scheme: String,
    /// Initial potential phi_0 (nodal values, same layout as --f; default |x|^2/2). It must be
    /// discretely convex and, on the torus, phi_0 - |x|^2/2 periodic.
    #[arg(long, allow_hyphen_values = true)]
    pub phi0: Option<String>,
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
    /// Samples of e^{-f} (`.npy` or `.csv`, one point per row): the particle version, with --y
    /// and without --f/--g/--domain/--n.
    #[arg(long)]
    pub x: Option<String>,
    /// Samples of e^{-g} (with --x).
    #[arg(long)]
    pub y: Option<String>,
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
    /// Energy F: `entropy` (F = ∫ rho log rho), `kl` (F = KL(. | N(0, --target))), or
    /// `euclidean` (the seed's Euclidean mirror descent for F(x) = x^2/2, Z_0 = 1, with the
    /// mirror map chosen by --mirror).
    #[arg(long, default_value = "kl")]
    pub energy: String,
    /// Initial covariance S_0 of rho_0 = N(0, S_0) (Gaussian energies).
    #[arg(long, allow_hyphen_values = true)]
    pub s0: Option<String>,
    /// Covariance Theta of the mirror's reference e^{-g} = N(0, Theta) (the mirror is
    /// W2^2(., e^{-g})/2; Gaussian energies).
    #[arg(long, allow_hyphen_values = true)]
    pub theta: Option<String>,
    /// Mirror map of `--energy euclidean`: `quadratic` (u = x^2/2), `quartic` (u = x^4) or
    /// `reciprocal` (u = 1/x).
    #[arg(long)]
    pub mirror: Option<String>,
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
    particle_run(&a.x, &a.y, a.eps, a.t_end, a.json)
}

/// The particle IPFP (`pma particles`, `pma ipfp --x --y`): one output time, t = k eps, with the
/// fields defined on samples: phi, grad_phi, rho_ratio (rho_k / e^{-f} at the samples, the
/// density of the X-marginal against the empirical measure) and residual.
fn particle_run(xs: &str, ys: &str, eps: f64, t_end: f64, as_json: bool) -> Result<(), CliError> {
    use sinkflow::sinkhorn::PointCloud;
    let read = |path: &str, what: &str| -> Result<PointCloud, CliError> {
        let arr = sinkflow::io::read_points(path).map_err(|e| CliError::from_lib(what, e))?;
        PointCloud::from_flat(arr.data, arr.cols, None, false)
            .map_err(|e| CliError::from_lib(what, e))
    };
    let x = read(xs, "--x")?;
    let y = read(ys, "--y")?;
    let r = sinkflow::pma::particles::particle_ipfp_full(&x, &y, eps, t_end).map_err(lib)?;
    let k = r.k;
    let d = x.dim();
    let rows: Vec<Vec<f64>> = r.grad_phi.chunks(d).map(|c| c.to_vec()).collect();
    if as_json {
        print_json(&json!({
            "k": k,
            "t": [k as f64 * eps],
            "x": (0..x.len()).map(|i| x.point(i).to_vec()).collect::<Vec<_>>(),
            "phi": [r.phi],
            "grad_phi": [rows],
            "rho_ratio": [r.rho_ratio],
            "residual": [r.residual],
        }));
    } else {
        println!(
            "k = round(T/eps) = {k}, residual max|f + log rho_k| = {:e}",
            r.residual
        );
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

/// A required option of the grid problem (bad input naming it if absent).
fn required<'a, T>(v: &'a Option<T>, name: &str) -> Result<&'a T, CliError> {
    v.as_ref()
        .ok_or_else(|| CliError::bad_input(format!("{name} is required")))
}

/// The dimension: `--dim`, else 2 for `--domain box` or a file of n x n values, else 1.
fn dimension(p: &GridProblemArgs) -> Result<usize, CliError> {
    let n = *required(&p.n, "--n")?;
    let domain = required(&p.domain, "--domain")?;
    match p.dim {
        Some(d @ (1 | 2)) => Ok(d),
        Some(d) => Err(CliError::bad_input(format!(
            "--dim must be 1 or 2, got {d}"
        ))),
        None if domain == "box" => Ok(2),
        None => {
            let f = required(&p.f, "--f")?;
            let path = std::path::Path::new(f.as_str());
            if path.is_file() && n >= 2 {
                let v =
                    sinkflow::io::read_weights(path).map_err(|e| CliError::from_lib("--f", e))?;
                Ok(if v.len() == n * n { 2 } else { 1 })
            } else {
                Ok(1)
            }
        }
    }
}

fn grid_problem(p: &GridProblemArgs) -> Result<(Grid1d, Vec<f64>, Vec<f64>), CliError> {
    let domain = required(&p.domain, "--domain")?;
    // the 1-D box is the interval
    let domain: Domain = if domain == "box" {
        Domain::Interval
    } else {
        domain.parse().map_err(CliError::bad_input)?
    };
    let grid = Grid1d::new(domain, *required(&p.n, "--n")?).map_err(lib)?;
    let f = potential(required(&p.f, "--f")?, &grid, "--f")?;
    let g = potential(required(&p.g, "--g")?, &grid, "--g")?;
    let f = grid
        .check_density(&f, "f", p.normalise)
        .map_err(|e| CliError::from_lib("--f", e))?;
    let g = grid
        .check_density(&g, "g", p.normalise)
        .map_err(|e| CliError::from_lib("--g", e))?;
    Ok((grid, f, g))
}

fn grid_problem_2d(p: &GridProblemArgs) -> Result<(Grid2d, Vec<f64>, Vec<f64>), CliError> {
    let domain = match required(&p.domain, "--domain")?.as_str() {
        "torus" => Domain2d::Torus,
        "box" => Domain2d::Box,
        other => {
            return Err(CliError::bad_input(format!(
                "--dim 2 supports --domain torus or box, got '{other}'"
            )))
        }
    };
    let grid = Grid2d::with_domain(domain, *required(&p.n, "--n")?).map_err(lib)?;
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
    let f = read(required(&p.f, "--f")?, "--f")?;
    let g = read(required(&p.g, "--g")?, "--g")?;
    let f = grid
        .check_density(&f, "f", p.normalise)
        .map_err(|e| CliError::from_lib("--f", e))?;
    let g = grid
        .check_density(&g, "g", p.normalise)
        .map_err(|e| CliError::from_lib("--g", e))?;
    Ok((grid, f, g))
}

/// `u_0 = phi_0 - |x|^2/2` from a file of nodal values of phi_0 (`points`: the nodes).
fn initial_u(path: &str, points: &[Vec<f64>]) -> Result<Vec<f64>, CliError> {
    let phi0 = sinkflow::io::read_weights(std::path::Path::new(path))
        .map_err(|e| CliError::from_lib("--phi0", e))?;
    if phi0.len() != points.len() {
        return Err(CliError::bad_input(format!(
            "--phi0: {} values, expected {} (one per node)",
            phi0.len(),
            points.len()
        )));
    }
    Ok(phi0
        .iter()
        .zip(points)
        .map(|(v, p)| v - 0.5 * p.iter().map(|c| c * c).sum::<f64>())
        .collect())
}

/// A progress bar on stderr for a run of `total` steps, drawn only once the run has taken 2 s
/// (and only on a terminal: indicatif hides it otherwise).
struct Progress {
    bar: indicatif::ProgressBar,
    start: std::time::Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: indicatif::ProgressBar::hidden(),
            start: std::time::Instant::now(),
            shown: false,
        }
    }
    fn observe(&mut self, step: usize, total: usize) {
        if !self.shown {
            if self.start.elapsed().as_secs_f64() < 2.0 {
                return;
            }
            self.shown = true;
            self.bar.set_length(total as u64);
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "pma {bar:40} {pos}/{len} steps (or IPFP iterations), {elapsed} elapsed, eta {eta}",
            ) {
                self.bar.set_style(style);
            }
        }
        self.bar.set_position(step as u64);
    }
    fn finish(self) {
        if self.shown {
            self.bar.finish_and_clear();
        }
    }
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
    let scheme: Scheme = a.scheme.parse().map_err(CliError::bad_input)?;
    let params = PmaParams {
        t_end: a.problem.t_end,
        dt: a.dt,
        samples: a.problem.samples,
        scheme,
        ..PmaParams::default()
    };
    let mut progress = Progress::new();
    if dimension(&a.problem)? == 2 {
        let (grid, f, g) = grid_problem_2d(&a.problem)?;
        let nodes: Vec<Vec<f64>> = (0..grid.n() * grid.n())
            .map(|k| grid.point(k).to_vec())
            .collect();
        let u0 = a
            .phi0
            .as_deref()
            .map(|p| initial_u(p, &nodes))
            .transpose()?;
        let snaps =
            grid2d::solve_pma_2d_observed(&grid, &f, &g, u0.as_deref(), &params, &mut |s, t| {
                progress.observe(s, t)
            })
            .map_err(lib)?;
        progress.finish();
        return print_2d(&grid, &snaps, None, a.problem.json);
    }
    let (grid, f, g) = grid_problem(&a.problem)?;
    let nodes: Vec<Vec<f64>> = grid.x().iter().map(|x| vec![*x]).collect();
    let u0 = match a.phi0.as_deref() {
        Some(p) => initial_u(p, &nodes)?,
        None => vec![0.0; grid.len()],
    };
    let snaps = grid::solve_pma_observed(&grid, &f, &g, &u0, &params, &mut |s, t| {
        progress.observe(s, t)
    })
    .map_err(lib)?;
    progress.finish();
    if a.problem.json {
        print_json(&snapshots_json(&grid, &snaps));
    } else {
        print_snapshots(&grid, &snaps);
    }
    Ok(())
}

fn grid_ipfp(a: &IpfpArgs) -> Result<(), CliError> {
    match (&a.x, &a.y) {
        (Some(x), Some(y)) => {
            let p = &a.problem;
            if p.f.is_some() || p.g.is_some() || p.domain.is_some() || p.n.is_some() {
                return Err(CliError::bad_input(
                    "--x/--y (samples) exclude --f/--g/--domain/--n (grid)",
                ));
            }
            return particle_run(x, y, a.eps, p.t_end, p.json);
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(CliError::bad_input("--x and --y go together"));
        }
        (None, None) => {}
    }
    if dimension(&a.problem)? == 2 {
        let (grid, f, g) = grid_problem_2d(&a.problem)?;
        let mut progress = Progress::new();
        let (k, snaps) = grid2d::ipfp_2d_observed(
            &grid,
            &f,
            &g,
            a.eps,
            a.problem.t_end,
            a.problem.samples,
            &mut |s, t| progress.observe(s, t),
        )
        .map_err(lib)?;
        progress.finish();
        return print_2d(&grid, &snaps, Some(k), a.problem.json);
    }
    let (grid, f, g) = grid_problem(&a.problem)?;
    let mut progress = Progress::new();
    let (k, snaps) = grid::ipfp_observed(
        &grid,
        &f,
        &g,
        a.eps,
        a.problem.t_end,
        a.problem.samples,
        &mut |s, t| progress.observe(s, t),
    )
    .map_err(lib)?;
    progress.finish();
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

/// `pma mirror --energy euclidean --mirror M`: the closed form Z_t of the seed's Euclidean
/// mirror descent for F(x) = x^2/2 from Z_0 = 1, beside the gradient flow e^{-t}.
fn euclidean_mirror(a: &MirrorArgs) -> Result<(), CliError> {
    use sinkflow::pma::mirror::EuclideanMirror;
    if a.s0.is_some() || a.theta.is_some() || a.target.is_some() {
        return Err(CliError::bad_input(
            "--energy euclidean takes --mirror, not --s0/--theta/--target",
        ));
    }
    let m = match a.mirror.as_deref() {
        Some("quadratic") => EuclideanMirror::Quadratic,
        Some("quartic") => EuclideanMirror::Quartic,
        Some("reciprocal") => EuclideanMirror::Reciprocal,
        Some(other) => {
            return Err(CliError::bad_input(format!(
                "unknown mirror '{other}' (expected quadratic, quartic or reciprocal)"
            )))
        }
        None => return Err(CliError::bad_input("--energy euclidean needs --mirror")),
    };
    if !(a.t_end.is_finite() && a.t_end >= 0.0) {
        return Err(CliError::bad_input(format!(
            "--t-end must be finite and >= 0, got {}",
            a.t_end
        )));
    }
    if a.samples == 0 {
        return Err(CliError::bad_input("--samples must be >= 1"));
    }
    let times: Vec<f64> = (0..=a.samples)
        .map(|i| a.t_end * i as f64 / a.samples as f64)
        .collect();
    let z: Vec<f64> = times.iter().map(|t| m.closed_form(*t)).collect();
    let gf: Vec<f64> = times.iter().map(|t| (-t).exp()).collect();
    if a.json {
        print_json(&json!({"t": times, "mirror_z": z, "gradient_flow_z": gf}));
    } else {
        println!(
            "{:>12}  {:>22}  {:>22}",
            "t", "mirror Z_t", "gradient flow e^-t"
        );
        for i in 0..times.len() {
            println!("{:>12.6}  {:>22.15e}  {:>22.15e}", times[i], z[i], gf[i]);
        }
    }
    Ok(())
}

fn mirror_flow(a: &MirrorArgs) -> Result<(), CliError> {
    if a.energy == "euclidean" {
        return euclidean_mirror(a);
    }
    if a.mirror.is_some() {
        return Err(CliError::bad_input(
            "--mirror is only used with --energy euclidean",
        ));
    }
    let s0 = parse_matrix(required(&a.s0, "--s0")?, "--s0")?;
    let theta = parse_matrix(required(&a.theta, "--theta")?, "--theta")?;
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
                "unknown energy '{other}' (expected 'entropy', 'kl' or 'euclidean')"
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
