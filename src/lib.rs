//! # sinkflow — entropic optimal-transport flows, exact and discrete, side by side
//!
//! sinkflow puts closed-form and PDE-level objects of entropic optimal transport beside their
//! Sinkhorn-based discrete counterparts and measures the gap. Conventions (one table, used
//! everywhere; derived in `theory/conventions.md`):
//!
//! | object | definition |
//! |---|---|
//! | cost | [`Cost::SqEuclidean`] $c(x,y)=\lvert x-y\rvert^2$ (default) or [`Cost::HalfSqEuclidean`] $\lvert x-y\rvert^2/2$ |
//! | entropic OT | $\mathrm{OT}_\varepsilon(\mu,\nu)=\min_{\pi\in\Pi(\mu,\nu)}\int c\,d\pi+\varepsilon\,\mathrm{KL}(\pi\mid\mu\otimes\nu)$ |
//! | Sinkhorn divergence | $S_\varepsilon(\mu,\nu)=\mathrm{OT}_\varepsilon(\mu,\nu)-\tfrac12\mathrm{OT}_\varepsilon(\mu,\mu)-\tfrac12\mathrm{OT}_\varepsilon(\nu,\nu)$ |
//! | potentials | $f=T(g,\nu)$, $g=T(f,\mu)$, $T(h,\rho)(x)=-\varepsilon\log\int e^{(h(y)-c(x,y))/\varepsilon}d\rho(y)$; $\mathrm{OT}_\varepsilon=\int f\,d\mu+\int g\,d\nu$ |
//! | gradient flow | $\partial_t\mu+\nabla\cdot(\mu v)=0$, $v=-\nabla\,\delta F/\delta\mu$; for $F=S_\varepsilon(\cdot,\mu^*)$, $v=2(T_{\mu,\mu^*}-T_{\mu,\mu})$ |
//!
//! ## Map of the crate
//!
//! * [`cost`] — the ground-cost enum every solver takes.
//! * [`linalg`] — symmetric eigen-decompositions, PSD square roots, validation of covariances.
//! * [`gaussian`] — closed-form Gaussian entropic OT (value, plan, potentials, maps,
//!   Sinkhorn divergence, Bures–Wasserstein), and the Gaussian gradient flows of
//!   $S_\varepsilon(\cdot,\mu^*)$ (covariance ODE, integrated with `ode_solvers`) and of
//!   $W_2^2(\cdot,\mu^*)$ (closed form), and [`gaussian::catalog`], generators of problems with
//!   known answers. The oracle for everything discrete.
//! * [`sinkhorn`] — THE log-domain Sinkhorn engine: weighted point clouds
//!   ([`sinkhorn::PointCloud`]) or a given cost ([`sinkhorn::CostMatrix`]), dense or streaming
//!   kernels, eps-scaling, the symmetric (averaged) solve, the debiased divergence, the
//!   half-step API ([`sinkhorn::Stepper`]), plans, and potentials / entropic maps at new points.
//! * [`particles`] — particle Sinkhorn flows and drifting fields (seed 003): one-sided,
//!   two-sided, L-step and converged drifts, the particle gradient flow of $S_\varepsilon$,
//!   exact $W_2$ metrics, toy 2-D targets, and Lemma A.1 by interval arithmetic.
//! * [`pma`] — the parabolic Monge–Ampère flow against Sinkhorn/IPFP iterates (seed 002): the
//!   exact Gaussian case (IPFP recursion, Riccati closed form, correction, fixed point), the PMA
//!   on 1-D and 2-D grids with IPFP through the engine, IPFP on samples, and Wasserstein mirror
//!   flows.
//! * [`finite`] — the Sinkhorn potential flow on a finite space (seed 000): b-variable,
//!   resolvent LCP, SJKO, metric tensor.
//! * [`io`] — reading point clouds and weights (`.npy`, `.csv`), writing trajectories (`.npy`).
//! * [`rates`] — log-log and semi-log fits used by tests and the validation campaign.
//! * [`error`] — the error policy (bad input vs numerical failure).
//!
//! Dependency direction is one-way: `linalg` ← `gaussian` (closed forms never call the
//! Sinkhorn engine: they are its oracle); `linalg` ← `sinkhorn` ← `particles`, `finite`, `pma`;
//! the validation campaign, the plots and the CLI live in the `sinkflow` binary and are never
//! imported by the library.
//!
//! ## Which entry point do I want?
//!
//! * Gaussian value / divergence / plan / map: [`gaussian::Gaussian`] and
//!   [`gaussian::EntropicOt`].
//! * The covariance ODE of the $S_\varepsilon$ flow: [`gaussian::flow`].
//! * Particles moved by Sinkhorn drifts: [`particles::flow::particle_flow`].
//! * $\mathrm{OT}_\varepsilon$ between two weighted clouds: [`sinkhorn::solve`]; the debiased
//!   $S_\varepsilon$: [`sinkhorn::divergence`]; iterates one half-step at a time:
//!   [`sinkhorn::Stepper`].

#![warn(missing_docs)]

pub mod cost;
pub mod error;

pub mod finite;
pub mod gaussian;
pub mod interrupt;
pub mod io;
pub mod linalg;
pub mod particles;
pub mod pma;
pub mod rates;
pub mod sinkhorn;

// With the `lapack` feature, link the system OpenBLAS that provides LAPACK to nalgebra-lapack.
#[cfg(feature = "lapack")]
extern crate openblas_src;

// The Python bindings (feature `python`; `pip install .`): see `src/python/mod.rs`.
#[cfg(feature = "python")]
mod python;
// `sinkflow.validate` runs the binary's validation campaign: with the feature, its sources are
// compiled into the library too (they name the crate `sinkflow::`, hence the alias).
#[cfg(feature = "python")]
extern crate self as sinkflow;
#[cfg(feature = "python")]
#[path = "validation/mod.rs"]
#[allow(dead_code)]
mod validation;

pub use cost::Cost;
pub use error::{Classify, ErrorClass};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
