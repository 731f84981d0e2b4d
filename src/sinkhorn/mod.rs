//! THE log-domain Sinkhorn engine of sinkflow.
//!
//! Every other part of the crate (particle flows, the finite-space flow, IPFP iterates) calls
//! this module. Conventions (DESIGN.md):
//!
//! * $\mathrm{OT}_\varepsilon(\mu,\nu)=\min_{\pi\in\Pi(\mu,\nu)}\int c\,d\pi+\varepsilon\,\mathrm{KL}(\pi\mid\mu\otimes\nu)$,
//!   cost $c=\kappa\lvert x-y\rvert^2$ ([`crate::Cost`]);
//! * Schrödinger potentials $f=T(g,\nu)$, $g=T(f,\mu)$ with
//!   $T(h,\rho)(x)=-\varepsilon\log\int e^{(h(y)-c(x,y))/\varepsilon}d\rho(y)$;
//!   $\mathrm{OT}_\varepsilon=\int f\,d\mu+\int g\,d\nu$ and
//!   $\pi=e^{(f\oplus g-c)/\varepsilon}\mu\otimes\nu$;
//! * $S_\varepsilon(\mu,\nu)=\mathrm{OT}_\varepsilon(\mu,\nu)-\frac12\mathrm{OT}_\varepsilon(\mu,\mu)-\frac12\mathrm{OT}_\varepsilon(\nu,\nu)$.
//!
//! The dual problem is
//! $\max_{f,g}\int f\,d\mu+\int g\,d\nu-\varepsilon\int\bigl(e^{(f\oplus g-c)/\varepsilon}-1\bigr)d\mu\otimes\nu$;
//! Sinkhorn's algorithm (Cuturi 2013) is block coordinate ascent on it, each block update being
//! one $T$ ("half-step"). Everything runs in the log domain (Peyré–Cuturi 2019, §4.4;
//! Schmitzer 2019): $T$ is a row-wise log-sum-exp with a max shift, so no kernel
//! $e^{-C/\varepsilon}$ is ever formed and nothing overflows down to
//! $\varepsilon=10^{-4}\times$ the cost scale.
//!
//! ## Map
//!
//! | object / algorithm | items |
//! |---|---|
//! | measures | [`PointCloud`], [`CostMatrix`], [`TensorGrid`] (separable kernel), [`Geometry`] |
//! | parameters | [`SinkhornParams`], [`Acceleration`], [`EpsScaling`], [`OverRelaxation`], [`Mode`], [`Termination`], [`AccelerationReport`] |
//! | alternating solve | [`solve`], [`solve_warm`], [`solve_matrix`], [`solve_geometry`] → [`SinkhornOutput`] |
//! | symmetric solve (averaged update) | [`solve_symmetric`], [`solve_symmetric_warm`] → [`SymmetricOutput`] |
//! | debiased divergence | [`divergence`] → [`DivergenceOutput`] |
//! | one half-step at a time | [`Stepper`], [`HalfStep`], [`Iterate`] |
//! | plans, marginals, objectives | [`plan()`], [`plan_from_potentials`], [`marginals`], [`objectives`] |
//! | potentials and maps at new points | [`c_transform`], [`c_transforms`], [`barycentric_map`], [`barycentric_maps`] |
//! | hot loops | [`kernel`] ([`kernel::lse_row`], [`kernel::fill_cost_row`], [`kernel::exp_nonpositive`]) |
//! | truncated kernel, small eps | [`solve_sparse`], [`SparseParams`], [`Mode::Sparse`], Auto's choice [`auto_picks_sparse`] |
//! | errors | [`SinkhornError`] |
//!
//! Which one? A transport value or plan: [`solve`]. A loss between two clouds that is zero
//! at equality: [`divergence`]. A self-transport potential (drifts, $T_{\mu,\mu}$):
//! [`solve_symmetric`]. Truncated L-step couplings or IPFP iterates: [`Stepper`]. The
//! alternating solver accelerates by default ([`Acceleration::Auto`]: Anderson mixing of the
//! potentials, and eps-scaling at small eps); [`SinkhornParams::plain`] asks for plain Sinkhorn.
//!
//! The derivations, the convergence criterion, the eps-scaling schedule, the Auto rule and a
//! cost model are in `theory/sinkhorn.md`.
//!
//! ## References
//!
//! * M. Cuturi, *Sinkhorn distances: lightspeed computation of optimal transport*, NeurIPS 2013.
//! * G. Peyré, M. Cuturi, *Computational Optimal Transport*, Found. Trends ML 11 (2019), Ch. 4.
//! * J. Feydy, T. Séjourné, F.-X. Vialard, S. Amari, A. Trouvé, G. Peyré, *Interpolating
//!   between optimal transport and MMD using Sinkhorn divergences*, AISTATS 2019 (debiasing,
//!   symmetric averaged update).
//! * B. Schmitzer, *Stabilized sparse scaling algorithms for entropy regularized transport
//!   problems*, SIAM J. Sci. Comput. 41 (2019) (log-domain stabilisation, eps-scaling).

mod anderson;
mod divergence;
mod engine;
mod error;
mod grid;
pub mod kernel;
mod measure;
mod neighbours;
mod params;
mod plan;
mod solve;
mod sparse;
mod stepper;
mod symmetric;

pub use divergence::{divergence, DivergenceOutput};
pub use error::SinkhornError;
pub use grid::{TensorGrid, MAX_GRID_POINTS};
pub use measure::{CostMatrix, Geometry, PointCloud};
pub use params::{
    physical_memory_bytes, Acceleration, AccelerationReport, EpsScaling, EpsScalingReport, Mode,
    OverRelaxation, RelaxationReport, SinkhornParams, Termination, ANDERSON_DEFAULT_MEMORY,
    ANDERSON_MAX_MEMORY, AUTO_EPS_SCALING_BELOW, DENSE_AUTO_MAX_BYTES, DENSE_AUTO_MIN_DIM,
};
pub use plan::{
    barycentric_map, barycentric_maps, c_transform, c_transforms, marginals_from_potentials,
    objectives, plan_from_potentials, row_normalise, Objectives,
};
pub use solve::{
    marginals, plan, solve, solve_geometry, solve_matrix, solve_warm, solve_with_exp_kernel,
    SinkhornOutput,
};
pub use sparse::{
    auto_picks_sparse, estimated_kept_fraction, kept_pairs, solve_sparse, SparseParams,
    DEFAULT_TRUNCATION, SPARSE_AUTO_MAX_DIM, SPARSE_AUTO_MAX_FRACTION, SPARSE_AUTO_MIN_PAIRS,
};
pub use stepper::{HalfStep, Iterate, Stepper};
pub use symmetric::{solve_symmetric, solve_symmetric_warm, SymmetricOutput};
