//! Drift fields of particle Sinkhorn flows and of drifting models (seed 003 §2.1, §3, Alg. 1;
//! MATH.md §4).
//!
//! Particles $X=(x_i)_{i<n}$ carry $q=\frac1n\sum_i\delta_{x_i}$, the target $Y=(y_j)_{j<m}$
//! carries $p=\frac1m\sum_j\delta_{y_j}$. Every drift has the cross-minus-self barycentric
//! form of seed 003 eq. (3)/(15)/(22):
//! $$V(x_i)=\sum_j P_{XY}(i,j)\,y_j-\sum_j P_{XX}(i,j)\,x_j = T_{\rm cross}(x_i) - T_{\rm self}(x_i),$$
//! with row-stochastic $P$ built from the Gibbs kernel $K=e^{-C/\tau}$, $C_{ij}=c(x_i,y_j)$
//! ([`crate::Cost`]; $\tau$ plays the role of $\varepsilon$). The kinds ([`DriftKind`]):
//!
//! | kind | $P$ (row-normalised) | as a conditional law $\propto b_j e^{(g_j-C_{ij})/\tau}$ |
//! |---|---|---|
//! | one-sided (Deng et al.) | row-softmax of $-C/\tau$ | $g=0$ |
//! | two-sided | $\sqrt{\mathrm{rowsoftmax}\odot\mathrm{colsoftmax}}$ | $g=\tfrac12T(0,q)$ |
//! | $L$-step Sinkhorn (Alg. 1, $L$ odd) | $L$ half-steps of eq. (11) from $K$ | $g$ after $L-1$ half-steps |
//! | converged Sinkhorn ($L=\infty$) | entropic OT plan | $g$ = Schrödinger potential |
//!
//! Here $T(h,\rho)(y)=-\tau\log\sum_i\rho_ie^{(h_i-c(x_i,y))/\tau}$ is the engine's half-step.
//! The row normalisation makes $P$ depend on $g$ only (the $f$ of a row is its normaliser),
//! so the $L$-th half-step (a row scaling, $L$ odd) is cancelled by it and is not computed;
//! $L=1$ is exactly the one-sided drift. For uniform weights the two-sided entry is
//! $K_{ij}/\sqrt{r_ic_j}$ (row/column sums $r,c$); row-normalising removes $r_i$ and leaves
//! $K_{ij}c_j^{-1/2}\propto K_{ij}e^{T(0,q)_j/(2\tau)}$.
//!
//! The self plan $P_{XX}$ is the same construction with $Y=X$ (seed 003 Alg. 1 with
//! $Y_{\rm neg}=X$). For the converged self plan the engine's symmetric solver is used (the
//! entropic plan is unique, so it equals the alternating one). **Masking** (Deng et al.,
//! seed 003 §5.1): the diagonal self-cost is replaced by a surrogate large enough that
//! $e^{-C_{ii}/\tau}$ underflows to exactly 0 relative to every other entry of its row
//! ($C_{ii}=\max_{k\ne l}C_{kl}+1000\,\tau$); the masked problems are solved by the same engine
//! on a cost matrix. The seed: "Sinkhorn does not require self-distance masking" (§3.3), and
//! masking "completely changes the drift dynamics" (§5.1); it is offered for every kind so
//! that this can be measured. Note that with masking, $p=q$ no longer gives $V=0$.
//!
//! Velocity: with converged plans, $V=T_{q,p}-T_{q,q}$ and the Wasserstein gradient of
//! $S_\tau(\cdot,p)$ at the particles is $-2\kappa V$ for $c=\kappa\lvert x-y\rvert^2$: the
//! gradient-flow velocity is $V$ for $\lvert x-y\rvert^2/2$ (seed 003 Prop. 3.1) and $2V$ for
//! $\lvert x-y\rvert^2$ (DESIGN.md). See [`super::flow`].

use nalgebra::DMatrix;

use super::{check_cloud, ParticleError};
use crate::sinkhorn::{
    barycentric_maps, solve_geometry, solve_symmetric_warm, solve_warm, Acceleration, CostMatrix,
    Geometry, Mode, PointCloud, SinkhornError, SinkhornParams, Stepper,
};
use crate::{Classify, Cost};

/// Which coupling the drift uses (seed 003 §3, Alg. 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DriftKind {
    /// Row-softmax of $-C/\tau$ (Deng et al.; $L=1$).
    OneSided,
    /// $\sqrt{\mathrm{rowsoftmax}\odot\mathrm{colsoftmax}}$, row-normalised.
    TwoSided,
    /// $L$ half-steps of Sinkhorn from the kernel, $L$ odd and $\ge1$, then row-normalised.
    LStep(usize),
    /// Converged Sinkhorn plans ($L=\infty$): the Sinkhorn-divergence gradient flow.
    Sinkhorn,
}

impl DriftKind {
    /// Short name (`one-sided`, `two-sided`, `l-step(L)`, `sinkhorn`).
    pub fn name(self) -> String {
        match self {
            DriftKind::OneSided => "one-sided".into(),
            DriftKind::TwoSided => "two-sided".into(),
            DriftKind::LStep(l) => format!("l-step({l})"),
            DriftKind::Sinkhorn => "sinkhorn".into(),
        }
    }
}

/// Parameters of [`drift`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftParams {
    /// Temperature $\tau>0$ (the $\varepsilon$ of the plans), finite. Default 1.
    pub tau: f64,
    /// Ground cost. Default [`Cost::SqEuclidean`] (seed 003 uses [`Cost::HalfSqEuclidean`]).
    pub cost: Cost,
    /// The coupling. Default [`DriftKind::Sinkhorn`].
    pub kind: DriftKind,
    /// Mask the diagonal of the self plan (Deng et al.). Default `false`. Needs $n\ge2$.
    pub mask_self: bool,
    /// Tolerance of the converged solves (L1 marginal violation for the cross plan,
    /// $\max\lvert T(f)-f\rvert/\tau$ for the symmetric self plan), finite and $>0$. Default 1e-9.
    pub tol: f64,
    /// Iteration cap of the converged solves, $\ge1$. Default 10 000.
    pub max_iters: usize,
    /// Engine mode (dense / streaming). Default [`Mode::Auto`].
    pub mode: Mode,
}

impl Default for DriftParams {
    fn default() -> Self {
        DriftParams {
            tau: 1.0,
            cost: Cost::SqEuclidean,
            kind: DriftKind::Sinkhorn,
            mask_self: false,
            tol: 1e-9,
            max_iters: 10_000,
            mode: Mode::Auto,
        }
    }
}

impl DriftParams {
    /// Check every field's range.
    ///
    /// # Errors
    /// [`ParticleError::InvalidParameter`] for $\tau\le0$ / non-finite, a bad `tol`,
    /// `max_iters = 0`, or an even / zero $L$.
    pub fn validate(&self) -> Result<(), ParticleError> {
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(ParticleError::InvalidParameter {
                name: "tau",
                value: self.tau,
                reason: "the temperature must be finite and > 0",
            });
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(ParticleError::InvalidParameter {
                name: "tol",
                value: self.tol,
                reason: "must be finite and > 0",
            });
        }
        if self.max_iters == 0 {
            return Err(ParticleError::InvalidParameter {
                name: "max_iters",
                value: 0.0,
                reason: "must be at least 1",
            });
        }
        if let DriftKind::LStep(l) = self.kind {
            if l == 0 || l % 2 == 0 {
                return Err(ParticleError::InvalidParameter {
                    name: "L",
                    value: l as f64,
                    reason: "the number of Sinkhorn half-steps must be odd (seed 003 Alg. 1: the last step scales rows)",
                });
            }
        }
        Ok(())
    }

    fn sinkhorn(&self) -> SinkhornParams {
        SinkhornParams {
            eps: self.tau,
            cost: self.cost,
            tol: self.tol,
            max_iters: self.max_iters,
            mode: self.mode,
            eps_scaling: None,
            strict: false,
            record_history: false,
            over_relaxation: None,
            // The converged drift needs the Schrödinger potentials, not the Sinkhorn iterates:
            // the engine's default acceleration (same answer to `tol`; theory/sinkhorn.md §4c).
            // The L-step drift uses the `Stepper`, plain Sinkhorn by definition.
            acceleration: Acceleration::Auto,
        }
    }
}

/// Potentials of the converged solves, kept to warm-start the next evaluation of a flow.
#[derive(Clone, Debug, PartialEq)]
pub struct Potentials {
    /// Cross problem, first potential (at the particles).
    pub f_xy: Vec<f64>,
    /// Cross problem, second potential (at the target).
    pub g_xy: Vec<f64>,
    /// Self problem, first potential.
    pub f_xx: Vec<f64>,
    /// Self problem, second potential (equal to `f_xx` for the unmasked symmetric solve).
    pub g_xx: Vec<f64>,
}

/// The result of [`drift`].
#[derive(Clone, Debug, PartialEq)]
pub struct DriftOutput {
    /// $V = T_{\rm cross}-T_{\rm self}$, $n\times d$.
    pub v: DMatrix<f64>,
    /// $T_{\rm cross}(x_i)=\sum_jP_{XY}(i,j)y_j$, $n\times d$.
    pub t_cross: DMatrix<f64>,
    /// $T_{\rm self}(x_i)=\sum_jP_{XX}(i,j)x_j$, $n\times d$.
    pub t_self: DMatrix<f64>,
    /// Potentials of the converged solves ([`DriftKind::Sinkhorn`] only).
    pub potentials: Option<Potentials>,
    /// Sinkhorn iterations (converged kind) or half-steps (finite kinds), cross + self.
    pub iterations: usize,
    /// Both converged solves met `tol` (always `true` for the finite kinds).
    pub converged: bool,
    /// The larger final residual of the two converged solves (L1 marginal violation of the
    /// cross solve; the self solve's own residual), 0 for the finite kinds.
    pub residual: f64,
}

fn engine_err(e: SinkhornError) -> ParticleError {
    ParticleError::Engine {
        class: e.class(),
        message: e.to_string(),
    }
}

/// Map a flat row-major `n × d` buffer into a matrix.
fn rows(flat: &[f64], n: usize, d: usize) -> DMatrix<f64> {
    DMatrix::from_row_slice(n, d, flat)
}

/// The cost matrix of the masked self problem (diagonal surrogate, see the module docs).
fn masked_self_cost(x: &DMatrix<f64>, p: &DriftParams) -> Result<CostMatrix, ParticleError> {
    let n = x.nrows();
    if n < 2 {
        return Err(ParticleError::InvalidParameter {
            name: "mask_self",
            value: n as f64,
            reason: "masking the self-interaction needs at least 2 particles",
        });
    }
    let mut c = super::metrics::sq_distances(x, x) * p.cost.factor();
    let mut big = 0.0f64;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                big = big.max(c[(i, j)]);
            }
        }
    }
    let diag = big + 1000.0 * p.tau;
    for i in 0..n {
        c[(i, i)] = diag;
    }
    CostMatrix::new(&c, None, None, false).map_err(engine_err)
}

/// Second potential $g$ of a cloud pair for a finite kind (one-sided, two-sided, L-step),
/// and the number of half-steps spent.
fn finite_g(geom: Geometry<'_>, p: &DriftParams) -> Result<(Vec<f64>, usize), ParticleError> {
    let (n, m) = geom.shape();
    match p.kind {
        DriftKind::OneSided => Ok((vec![0.0; m], 0)),
        DriftKind::TwoSided => {
            let mut st = Stepper::from_geometry(geom, &p.sinkhorn(), &vec![0.0; n], &vec![0.0; m])
                .map_err(engine_err)?;
            st.step_g();
            Ok((st.g().iter().map(|g| 0.5 * g).collect(), 1))
        }
        DriftKind::LStep(l) => {
            let mut st = Stepper::from_geometry(geom, &p.sinkhorn(), &vec![0.0; n], &vec![0.0; m])
                .map_err(engine_err)?;
            st.run(l - 1, false);
            Ok((st.g().to_vec(), l - 1))
        }
        DriftKind::Sinkhorn => unreachable!("finite_g is only called for finite kinds"),
    }
}

/// The conditional mean $\sum_j P[i,j]\,z_j$, $P[i,j]\propto b_je^{(g_j-C_{ij})/\tau}$, of a
/// cost-matrix problem from its second potential (dense, with a max shift per row so that
/// nothing underflows; used for the masked self term).
fn matrix_map(cm: &CostMatrix, g: &[f64], z: &DMatrix<f64>, tau: f64) -> DMatrix<f64> {
    let (n, m) = (cm.nrows(), cm.ncols());
    let b = cm.b();
    let mut out = DMatrix::zeros(n, z.ncols());
    let mut w = vec![0.0; m];
    for i in 0..n {
        let mut mx = f64::NEG_INFINITY;
        for j in 0..m {
            w[j] = if b[j] > 0.0 {
                (g[j] - cm.get(i, j)) / tau + b[j].ln()
            } else {
                f64::NEG_INFINITY
            };
            mx = mx.max(w[j]);
        }
        let mut s = 0.0;
        for wj in w.iter_mut() {
            *wj = (*wj - mx).exp();
            s += *wj;
        }
        for k in 0..z.ncols() {
            out[(i, k)] = (0..m).map(|j| w[j] * z[(j, k)]).sum::<f64>() / s;
        }
    }
    out
}

/// Evaluate the drift $V=T_{\rm cross}-T_{\rm self}$ at the particles (seed 003 eq. (3),
/// (15), (22), Alg. 1). See the module docs for the couplings.
///
/// # Errors
/// Empty / non-finite clouds, a dimension mismatch, invalid parameters
/// ([`DriftParams::validate`]), masking with one particle: bad input. Engine failures are
/// wrapped in [`ParticleError::Engine`] with the engine's class.
pub fn drift(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    params: &DriftParams,
) -> Result<DriftOutput, ParticleError> {
    drift_warm(x, y, params, None)
}

/// [`drift`] with the converged solves warm-started from `warm` (ignored for the finite kinds
/// or when the sizes do not match). Along a flow, the potentials of the previous step are an
/// excellent start (the particles moved by $O(h)$).
pub fn drift_warm(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    params: &DriftParams,
    warm: Option<&Potentials>,
) -> Result<DriftOutput, ParticleError> {
    params.validate()?;
    check_cloud(x, "particles x")?;
    check_cloud(y, "target y")?;
    if x.ncols() != y.ncols() {
        return Err(ParticleError::DimensionMismatch {
            what: "dimension of the particles vs the target",
            left: x.ncols(),
            right: y.ncols(),
        });
    }
    let (n, m, d) = (x.nrows(), y.nrows(), x.ncols());
    let xc = PointCloud::uniform(x).map_err(engine_err)?;
    let yc = PointCloud::uniform(y).map_err(engine_err)?;
    let sp = params.sinkhorn();
    let masked = if params.mask_self {
        Some(masked_self_cost(x, params)?)
    } else {
        None
    };
    let warm = warm.filter(|w| {
        w.f_xy.len() == n && w.g_xy.len() == m && w.f_xx.len() == n && w.g_xx.len() == n
    });

    let (t_cross, t_self, potentials, iterations, converged, residual) = match params.kind {
        DriftKind::Sinkhorn => {
            let xy = match warm {
                Some(w) => solve_warm(&xc, &yc, &sp, &w.f_xy, &w.g_xy),
                None => solve_warm(&xc, &yc, &sp, &vec![0.0; n], &vec![0.0; m]),
            }
            .map_err(engine_err)?;
            let t_cross = rows(
                &barycentric_maps(&xy.g, &yc, &xc, params.tau, params.cost),
                n,
                d,
            );
            let (t_self, f_xx, g_xx, it_self, conv_self, res_self) = match &masked {
                None => {
                    let f0 = warm.map(|w| w.f_xx.clone()).unwrap_or_else(|| vec![0.0; n]);
                    let xx = solve_symmetric_warm(&xc, &sp, &f0).map_err(engine_err)?;
                    let t = rows(
                        &barycentric_maps(&xx.f, &xc, &xc, params.tau, params.cost),
                        n,
                        d,
                    );
                    (
                        t,
                        xx.f.clone(),
                        xx.f,
                        xx.iterations,
                        xx.converged,
                        xx.residual,
                    )
                }
                Some(cm) => {
                    let start = warm.map(|w| (w.f_xx.as_slice(), w.g_xx.as_slice()));
                    let xx =
                        solve_geometry(Geometry::Matrix(cm), &sp, start).map_err(engine_err)?;
                    let t = matrix_map(cm, &xx.g, x, params.tau);
                    (
                        t,
                        xx.f,
                        xx.g,
                        xx.iterations,
                        xx.converged,
                        xx.marginal_error,
                    )
                }
            };
            let conv = xy.converged && conv_self;
            let residual = xy.marginal_error.max(res_self);
            let pots = Potentials {
                f_xy: xy.f,
                g_xy: xy.g,
                f_xx,
                g_xx,
            };
            (
                t_cross,
                t_self,
                Some(pots),
                xy.iterations + it_self,
                conv,
                residual,
            )
        }
        _ => {
            let (g_xy, it_xy) = finite_g(Geometry::Clouds { x: &xc, y: &yc }, params)?;
            let t_cross = rows(
                &barycentric_maps(&g_xy, &yc, &xc, params.tau, params.cost),
                n,
                d,
            );
            let (t_self, it_xx) = match &masked {
                None => {
                    let (g_xx, it) = finite_g(Geometry::Clouds { x: &xc, y: &xc }, params)?;
                    (
                        rows(
                            &barycentric_maps(&g_xx, &xc, &xc, params.tau, params.cost),
                            n,
                            d,
                        ),
                        it,
                    )
                }
                Some(cm) => {
                    let (g_xx, it) = finite_g(Geometry::Matrix(cm), params)?;
                    (matrix_map(cm, &g_xx, x, params.tau), it)
                }
            };
            (t_cross, t_self, None, it_xy + it_xx, true, 0.0)
        }
    };
    let v = &t_cross - &t_self;
    if v.iter().any(|e| !e.is_finite()) {
        return Err(ParticleError::Breakdown {
            at: None,
            what: format!(
                "non-finite drift ({} at tau = {})",
                params.kind.name(),
                params.tau
            ),
        });
    }
    Ok(DriftOutput {
        v,
        t_cross,
        t_self,
        potentials,
        iterations,
        converged,
        residual,
    })
}
