//! Plans, marginals, objective values, and potentials / entropic maps at new points.
//!
//! The plan of a pair of potentials is
//! $P_{ij}=a_ib_j\exp\bigl((f_i+g_j-C_{ij})/\varepsilon\bigr)$ (DESIGN.md), the discrete form of
//! $\pi=e^{(f\oplus g-c)/\varepsilon}\mu\otimes\nu$. The conditional law of $y$ given $x=z$ only
//! needs $g$ and $\nu$: $\pi(y_j\mid z)\propto b_je^{(g_j-c(z,y_j))/\varepsilon}$, normalised by
//! $e^{-f(z)/\varepsilon}$ with $f(z)=T(g,\nu)(z)$. Functions taking `(h, rho)` work on either
//! side: pass $(g,\nu)$ for quantities at points of $\mu$'s space and $(f,\mu)$ for the other.
//!
//! Shape mismatches between a potential and its cloud are caller bugs: these functions
//! `assert!` (with `#[track_caller]`) rather than return an error, as in the rest of the crate.

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::engine::{Engine, Side};
use super::kernel::{
    fill_cost_row_dispatch, log_weights, lse_row_dispatch, scaled_potential, shifted_row, FastExp,
};
use super::measure::{Geometry, PointCloud};
use super::params::Mode;
use crate::Cost;

#[track_caller]
fn check_args(h: &[f64], rho: &PointCloud, z: &[f64], eps: f64) {
    assert_eq!(h.len(), rho.len(), "potential length vs number of points");
    assert_eq!(z.len(), rho.dim(), "dimension of the query point");
    assert!(eps.is_finite() && eps > 0.0, "eps must be finite and > 0");
}

/// $T(h,\rho)(z)=-\varepsilon\log\sum_j\rho_j\exp\bigl((h_j-c(z,y_j))/\varepsilon\bigr)$.
///
/// Bit-identical to the solver's half-step at a support point (same kernel and formula).
///
/// # Panics
/// `h.len() != rho.len()`, `z.len() != rho.dim()`, or `eps` not finite and positive.
#[track_caller]
pub fn c_transform(h: &[f64], rho: &PointCloud, z: &[f64], eps: f64, cost: Cost) -> f64 {
    check_args(h, rho, z, eps);
    let m = rho.len();
    let inv_eps = 1.0 / eps;
    let mut u = vec![0.0; m];
    scaled_potential(h, &log_weights(rho.weights()), inv_eps, &mut u);
    let mut c = vec![0.0; m];
    let mut buf = vec![0.0; m];
    fill_cost_row_dispatch(z, rho.coords(), m, cost.factor(), &mut c);
    lse_row_dispatch::<FastExp>(&u, &c, inv_eps, &mut buf) * -eps
}

/// [`c_transform`] at every point of `z` (parallel).
#[track_caller]
pub fn c_transforms(h: &[f64], rho: &PointCloud, z: &PointCloud, eps: f64, cost: Cost) -> Vec<f64> {
    if z.is_empty() {
        return Vec::new();
    }
    check_args(h, rho, z.point(0), eps);
    let m = rho.len();
    let inv_eps = 1.0 / eps;
    let mut u = vec![0.0; m];
    scaled_potential(h, &log_weights(rho.weights()), inv_eps, &mut u);
    (0..z.len())
        .into_par_iter()
        .map_init(
            || (vec![0.0; m], vec![0.0; m]),
            |(c, buf), i| {
                fill_cost_row_dispatch(z.point(i), rho.coords(), m, cost.factor(), c);
                lse_row_dispatch::<FastExp>(&u, c, inv_eps, buf) * -eps
            },
        )
        .collect()
}

/// Conditional mean of $y$ under the Gibbs weights of one row, into `out` (length `d`).
/// `(u, inv_eps, cost factor)` of one barycentric-map evaluation.
struct Gibbs<'a> {
    u: &'a [f64],
    inv_eps: f64,
    factor: f64,
}

fn bary_row(
    gb: &Gibbs<'_>,
    rho: &PointCloud,
    z: &[f64],
    (c, w): (&mut [f64], &mut [f64]),
    out: &mut [f64],
) {
    let (u, inv_eps) = (gb.u, gb.inv_eps);
    let m = rho.len();
    fill_cost_row_dispatch(z, rho.coords(), m, gb.factor, c);
    let mx = shifted_row(u, c, inv_eps, w);
    let mut s = 0.0;
    for t in w.iter_mut() {
        *t = (*t - mx).exp();
        s += *t;
    }
    let coords = rho.coords();
    for (k, o) in out.iter_mut().enumerate() {
        let col = &coords[k * m..(k + 1) * m];
        let mut acc = 0.0;
        for (&wj, &yj) in w.iter().zip(col) {
            acc += wj * yj;
        }
        *o = acc / s;
    }
}

/// Entropic barycentric map $\int y\,d\pi(y\mid z)=\dfrac{\sum_j\rho_je^{(h_j-c(z,y_j))/\varepsilon}y_j}{\sum_j\rho_je^{(h_j-c(z,y_j))/\varepsilon}}$
/// with $(h,\rho)=(g,\nu)$ for $T_{\mu,\nu}$ (computed with a max shift: no overflow).
///
/// # Panics
/// As [`c_transform`].
#[track_caller]
pub fn barycentric_map(h: &[f64], rho: &PointCloud, z: &[f64], eps: f64, cost: Cost) -> Vec<f64> {
    check_args(h, rho, z, eps);
    let m = rho.len();
    let inv_eps = 1.0 / eps;
    let mut u = vec![0.0; m];
    scaled_potential(h, &log_weights(rho.weights()), inv_eps, &mut u);
    let (mut c, mut w) = (vec![0.0; m], vec![0.0; m]);
    let mut out = vec![0.0; rho.dim()];
    let gb = Gibbs {
        u: &u,
        inv_eps,
        factor: cost.factor(),
    };
    bary_row(&gb, rho, z, (&mut c, &mut w), &mut out);
    out
}

/// [`barycentric_map`] at every point of `z`, row-major `z.len() × d` (parallel over points).
#[track_caller]
pub fn barycentric_maps(
    h: &[f64],
    rho: &PointCloud,
    z: &PointCloud,
    eps: f64,
    cost: Cost,
) -> Vec<f64> {
    if z.is_empty() {
        return Vec::new();
    }
    check_args(h, rho, z.point(0), eps);
    let (m, d) = (rho.len(), rho.dim());
    let inv_eps = 1.0 / eps;
    let mut u = vec![0.0; m];
    scaled_potential(h, &log_weights(rho.weights()), inv_eps, &mut u);
    let gb = Gibbs {
        u: &u,
        inv_eps,
        factor: cost.factor(),
    };
    let mut out = vec![0.0; z.len() * d];
    out.par_chunks_mut(d).enumerate().for_each_init(
        || (vec![0.0; m], vec![0.0; m]),
        |(c, w), (i, o)| bary_row(&gb, rho, z.point(i), (c, w), o),
    );
    out
}

/// Primal quantities of the plan of a pair of potentials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objectives {
    /// $\sum_ia_if_i+\sum_jb_jg_j$.
    pub dual: f64,
    /// $\langle P,C\rangle$.
    pub transport_cost: f64,
    /// Generalised $\mathrm{KL}(P\mid a\otimes b)=\sum P\log\frac P{ab}-\sum P+\sum ab$, summed
    /// term by term as $\sum a_ib_j(l_{ij}e^{l_{ij}}-\mathrm{expm1}(l_{ij}))$,
    /// $l=(f_i+g_j-C_{ij})/\varepsilon$ (weights taken as normalised, $\sum ab=1$).
    pub kl: f64,
    /// $\langle P,C\rangle+\varepsilon\,\mathrm{KL}$.
    pub primal: f64,
    /// $\sum_{ij}P_{ij}$.
    pub mass: f64,
}

pub(crate) fn objectives_engine(engine: &Engine<'_>, f: &[f64], g: &[f64], eps: f64) -> Objectives {
    let (a, b) = (engine.a, engine.b);
    let inv_eps = 1.0 / eps;
    let rows: Vec<(f64, f64, f64)> = engine.map_rows(Side::Rows, |i, c| {
        let (mut tc, mut kl, mut mass) = (0.0, 0.0, 0.0);
        if a[i] == 0.0 {
            return (tc, kl, mass);
        }
        for ((&cj, &gj), &bj) in c.iter().zip(g).zip(b) {
            let l = (f[i] + gj - cj) * inv_eps;
            let ab = a[i] * bj;
            let p = ab * l.exp();
            tc += p * cj;
            // a_i b_j (l e^l - e^l + 1) term by term: no cancellation against the total mass,
            // so eps * KL keeps its accuracy at large eps (l -> 0).
            kl += ab * (l * l.exp() - l.exp_m1());
            mass += p;
        }
        (tc, kl, mass)
    });
    let (mut tc, mut kl, mut mass) = (0.0, 0.0, 0.0);
    for (t, k, s) in rows {
        tc += t;
        kl += k;
        mass += s;
    }
    let dual = super::engine::dot(a, f) + super::engine::dot(b, g);
    Objectives {
        dual,
        transport_cost: tc,
        kl,
        primal: tc + eps * kl,
        mass,
    }
}

/// Dual and primal values of the plan of $(f,g)$ on a problem.
///
/// # Panics
/// Length mismatches, invalid `eps`, or a geometry the engine rejects (mismatched dimensions):
/// caller bugs here, since the potentials came from a solve of that geometry.
#[track_caller]
pub fn objectives(f: &[f64], g: &[f64], geom: Geometry<'_>, eps: f64, cost: Cost) -> Objectives {
    let engine = checked_engine(f, g, geom, eps, cost);
    objectives_engine(&engine, f, g, eps)
}

#[track_caller]
fn checked_engine<'a>(
    f: &[f64],
    g: &[f64],
    geom: Geometry<'a>,
    eps: f64,
    cost: Cost,
) -> Engine<'a> {
    let (n, m) = geom.shape();
    assert_eq!(f.len(), n, "length of f vs first measure");
    assert_eq!(g.len(), m, "length of g vs second measure");
    assert!(eps.is_finite() && eps > 0.0, "eps must be finite and > 0");
    match Engine::new(geom, cost, Mode::Streaming, Default::default()) {
        Ok(e) => e,
        Err(e) => panic!("invalid geometry: {e}"),
    }
}

/// The dense plan $P_{ij}=a_ib_je^{(f_i+g_j-C_{ij})/\varepsilon}$ of a pair of potentials.
///
/// # Panics
/// As [`objectives`].
#[track_caller]
pub fn plan_from_potentials(
    f: &[f64],
    g: &[f64],
    geom: Geometry<'_>,
    eps: f64,
    cost: Cost,
) -> DMatrix<f64> {
    let engine = checked_engine(f, g, geom, eps, cost);
    let (n, m) = (engine.n, engine.m);
    let (a, b) = (engine.a, engine.b);
    let inv_eps = 1.0 / eps;
    let rows: Vec<Vec<f64>> = engine.map_rows(Side::Rows, |i, c| {
        c.iter()
            .zip(g)
            .zip(b)
            .map(|((&cj, &gj), &bj)| a[i] * bj * ((f[i] + gj - cj) * inv_eps).exp())
            .collect()
    });
    let mut p = DMatrix::zeros(n, m);
    for (i, r) in rows.into_iter().enumerate() {
        for (j, v) in r.into_iter().enumerate() {
            p[(i, j)] = v;
        }
    }
    p
}

/// Row-normalised plan $P_{ij}/\sum_kP_{ik}$ (rows of zero mass stay zero).
pub fn row_normalise(p: &DMatrix<f64>) -> DMatrix<f64> {
    let mut q = p.clone();
    for i in 0..q.nrows() {
        let s: f64 = q.row(i).iter().sum();
        if s > 0.0 {
            for j in 0..q.ncols() {
                q[(i, j)] /= s;
            }
        }
    }
    q
}

/// Both marginals $(P\mathbb 1,P^\top\mathbb 1)$ of the plan of $(f,g)$, without forming it
/// (two log-sum-exp passes).
///
/// # Panics
/// As [`objectives`].
#[track_caller]
pub fn marginals_from_potentials(
    f: &[f64],
    g: &[f64],
    geom: Geometry<'_>,
    eps: f64,
    cost: Cost,
) -> (Vec<f64>, Vec<f64>) {
    let engine = checked_engine(f, g, geom, eps, cost);
    marginals_engine(&engine, f, g, eps)
}

pub(crate) fn marginals_engine(
    engine: &Engine<'_>,
    f: &[f64],
    g: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut r = vec![0.0; engine.n];
    let mut c = vec![0.0; engine.m];
    engine.lse(Side::Rows, g, eps, &mut r);
    engine.lse(Side::Cols, f, eps, &mut c);
    let inv_eps = 1.0 / eps;
    for ((o, &ai), &fi) in r.iter_mut().zip(engine.a).zip(f) {
        *o = ai * (fi * inv_eps + *o).exp();
    }
    for ((o, &bj), &gj) in c.iter_mut().zip(engine.b).zip(g) {
        *o = bj * (gj * inv_eps + *o).exp();
    }
    (r, c)
}
