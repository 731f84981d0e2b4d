//! The Sinkhorn potential flow on a finite space (seed 000: Lavenant, Luckhardt, Mordant,
//! Schmitzer, Tamanini; MATH.md §2; derivations in `theory/finite_flow.md`).
//!
//! Conventions: a finite set $X=\{x_1..x_N\}\subset\mathbb R^d$ ([`FiniteSpace`]), the cost
//! $c=\kappa\lvert x-y\rvert^2$ of a [`crate::Cost`] ($\kappa=1$ by default, $\tfrac12$ for
//! `HalfSqEuclidean`), the Gibbs kernel $K=e^{-C/\varepsilon}$ ([`Kernel`]), measures as vectors
//! $\mu\in\mathbb R^N_{\ge0}$, the potential energy $E(\mu)=\sum_iV_i\mu_i$.
//!
//! | object / algorithm | items |
//! |---|---|
//! | space, kernel, conditioning check | [`FiniteSpace`], [`Kernel`], [`KernelParams`], [`largest_safe_eps`] |
//! | $b=B(\mu)$, inverse, $H_c$, cone | [`b_map`], [`mu_from_a`], [`mu_from_b`], [`h_inner`], [`cone_test`] |
//! | $K_\mu$, $H_\mu$, metric, derivatives | [`MuOperators`] |
//! | resolvent LCP | [`LcpSolver`], [`LcpParams`], [`kkt_residual`] |
//! | flow (implicit resolvent; reflected resolvent, order 2) | [`Resolvent`], [`resolvent_flow`], [`reflected_flow`] → [`FlowOutput`] |
//! | catalogue | [`catalog::Potential`], [`catalog::dirac_near`], [`catalog::gaussian_bump`] |
//! | SJKO (log domain, no $K$) | [`sjko_step`], [`sjko_flow`] → [`SjkoOutput`] |
//! | Wasserstein flow of $E$ (upwind FV, 1-D and 2-D tensor grids) | [`wasserstein_upwind_1d`], [`wasserstein_upwind_2d`] |
//! | double-double path (kernel, condition, LCP; implicit and reflected) | [`ExtendedKernel`], [`resolvent_flow_dd`], [`reflected_flow_dd`] |
//! | errors | [`FiniteError`] |

pub mod catalog;
mod error;
mod extended;
mod flow;
mod lcp;
mod rkhs;
mod sjko;
mod space;
mod wasserstein;

pub use error::{check_probability, FiniteError};
pub use extended::{
    largest_safe_eps_dd, reflected_flow_dd, resolvent_flow_dd, ExtendedKernel, DD_MAX_CONDITION,
    DD_MAX_POINTS,
};
pub use flow::{
    initial_coefficients, reflected_flow, resolvent_flow, resolvent_matrix, FlowOutput, FlowParams,
    Resolvent, MAX_TRAJECTORY_ENTRIES,
};
pub use lcp::{kkt_residual, LcpFailure, LcpMethod, LcpParams, LcpSolution, LcpSolver};
pub use rkhs::{
    b_map, cone_test, h_inner, h_norm2_from_a, mu_from_a, mu_from_b, BMap, BMapParams, MuOperators,
};
pub use sjko::{sjko_flow, sjko_step, SjkoOutput, SjkoParams, SjkoStep};
pub use space::{
    kernel_condition, largest_safe_eps, FiniteSpace, Kernel, KernelParams, DEFAULT_MAX_CONDITION,
    MAX_POINTS,
};
pub use wasserstein::{
    wasserstein_upwind_1d, wasserstein_upwind_2d, UpwindOutput, MAX_UPWIND_WORK,
};
