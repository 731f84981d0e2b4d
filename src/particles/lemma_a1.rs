//! Seed 003, Lemma A.1: the one-sided (drifting) field can vanish on the support of the target
//! although $q \ne p$.
//!
//! Setting (seed 003, Appendix A.2): $\tau = 1$, kernel $k(x,y) = e^{-(x-y)^2}$ (cost
//! $c(x,y)=\lvert x-y\rvert^2$ at $\tau=1$ — *not* the seed's default $\lvert x-y\rvert^2/2$),
//! target $p = \tfrac12(\delta_0+\delta_1)$, model $q = \tfrac12(\delta_a+\delta_b)$, and the
//! one-sided drift of eq. (1)–(2),
//! $$V_{q,p}(x) = \frac{\int k(x,y)\,y\,dp(y)}{\int k(x,y)\,dp(y)} - \frac{\int k(x,z)\,z\,dq(z)}{\int k(x,z)\,dq(z)}.$$
//! The lemma evaluates $V_{q,p}$ **at the support of $p$**, $x\in\{0,1\}$: with
//! $Z_p(x)Z_q(x) > 0$ the normalisers,
//! $F_1(a,b) = 4 Z_p(0) Z_q(0) V_{q,p}(0)$ and $F_2(a,b) = 4 Z_p(1) Z_q(1) V_{q,p}(1)$ are the
//! explicit sums (23)–(24) of the seed (implemented in [`f1`], [`f2`]; the factor 4 comes from
//! the weights $\tfrac12$ and is irrelevant to signs and zeros).
//!
//! **Claim.** $F=(F_1,F_2)$ has a zero in $R = [-1.5,-1.2]\times[0.6,0.9]$; since
//! $R \cap \{0,1\}^2 = \emptyset$, that zero is a $q \ne p$ with $V_{q,p} = 0$ on $\operatorname{supp}p$.
//!
//! **Proof method** ([`verify_miranda`]). Miranda's theorem (a 2-D intermediate value
//! theorem): if $F$ is continuous on $R$ and $F_1 < 0$ on the face $a=-1.5$, $F_1>0$ on
//! $a=-1.2$, $F_2 > 0$ on $b = 0.6$ and $F_2 < 0$ on $b=0.9$, then $F$ has a zero in $R$.
//! Each face is cut into sub-segments and $F_i$ is enclosed on each by interval arithmetic
//! with outward rounding ([`super::interval`]); the sign conditions hold if every enclosure
//! has the required strict sign.
//!
//! **Location** ([`newton_zero`]): Newton's method with the analytic Jacobian.
//!
//! **Note** (a finding, [`verify_particle_drift_positive`]): the drift evaluated *at the
//! particles*, $(V_{q,p}(a), V_{q,p}(b))$ — the velocity of the particle flow
//! $\dot x_i = V(x_i)$ — has no zero in $R$: $V_{q,p}(a) \ge 1$ on all of $R$, proved
//! with the same interval machinery. The lemma is about stationarity *on the support of
//! the target*, not about a stationary particle configuration.

use super::interval::{Interval, Scalar};
use super::ParticleError;

/// The box $R$ of the lemma: $a$-range.
pub const A_RANGE: (f64, f64) = (-1.5, -1.2);
/// The box $R$ of the lemma: $b$-range.
pub const B_RANGE: (f64, f64) = (0.6, 0.9);

fn sq<T: Scalar>(x: T) -> T {
    x * x
}

/// Seed 003 eq. (23): $F_1(a,b) = -a e^{-a^2} - b e^{-b^2} + (1-a)e^{-a^2-1} + (1-b)e^{-b^2-1}$
/// ($= 4 Z_p(0) Z_q(0)\,V_{q,p}(0)$).
pub fn f1<T: Scalar>(a: T, b: T) -> T {
    let one = T::constant(1.0);
    let ea = (-sq(a)).exp();
    let eb = (-sq(b)).exp();
    let ea1 = (-sq(a) - one).exp();
    let eb1 = (-sq(b) - one).exp();
    -(a * ea) - b * eb + (one - a) * ea1 + (one - b) * eb1
}

/// Seed 003 eq. (24): $F_2(a,b) = -a e^{-1-(1-a)^2} - b e^{-1-(1-b)^2} + (1-a)e^{-(1-a)^2} + (1-b)e^{-(1-b)^2}$
/// ($= 4 Z_p(1) Z_q(1)\,V_{q,p}(1)$).
pub fn f2<T: Scalar>(a: T, b: T) -> T {
    let one = T::constant(1.0);
    let ua = one - a;
    let ub = one - b;
    let ea1 = (-one - sq(ua)).exp();
    let eb1 = (-one - sq(ub)).exp();
    let ea = (-sq(ua)).exp();
    let eb = (-sq(ub)).exp();
    -(a * ea1) - b * eb1 + ua * ea + ub * eb
}

/// The one-sided drift $V_{q,p}(x)$ of seed 003 eq. (1)–(2) in one dimension, for
/// $p=\tfrac12(\delta_0+\delta_1)$, $q = \tfrac12(\delta_a+\delta_b)$, kernel $e^{-(x-y)^2}$,
/// computed from its definition (kernel-weighted averages), independently of [`f1`], [`f2`].
pub fn one_sided_drift<T: Scalar>(x: T, a: T, b: T) -> T {
    let zero = T::constant(0.0);
    let one = T::constant(1.0);
    let k = |y: T| (-sq(x - y)).exp();
    let (k0, k1) = (k(zero), k(one));
    let (ka, kb) = (k(a), k(b));
    (k1 * one) / (k0 + k1) - (ka * a + kb * b) / (ka + kb)
}

/// Analytic Jacobian $\partial(F_1,F_2)/\partial(a,b)$ (row-major).
pub fn jacobian(a: f64, b: f64) -> [[f64; 2]; 2] {
    let d1 = |s: f64| {
        (2.0 * s * s - 1.0) * (-s * s).exp() + (2.0 * s * s - 2.0 * s - 1.0) * (-s * s - 1.0).exp()
    };
    let d2 = |s: f64| {
        let u = 1.0 - s;
        (2.0 * s * s - 2.0 * s - 1.0) * (-1.0 - u * u).exp() + (2.0 * u * u - 1.0) * (-u * u).exp()
    };
    [[d1(a), d1(b)], [d2(a), d2(b)]]
}

/// Outcome of the Miranda sign check ([`verify_miranda`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MirandaReport {
    /// Number of sub-segments per face.
    pub pieces: usize,
    /// Largest upper bound of $F_1$ on the face $a = -1.5$ (must be $< 0$).
    pub f1_left_upper: f64,
    /// Smallest lower bound of $F_1$ on the face $a = -1.2$ (must be $> 0$).
    pub f1_right_lower: f64,
    /// Smallest lower bound of $F_2$ on the face $b = 0.6$ (must be $> 0$).
    pub f2_bottom_lower: f64,
    /// Largest upper bound of $F_2$ on the face $b = 0.9$ (must be $< 0$).
    pub f2_top_upper: f64,
    /// True iff all four strict sign conditions are certified.
    pub holds: bool,
}

/// Certify Miranda's sign conditions for $(F_1, F_2)$ on the four faces of $R$, each face cut
/// into `pieces` sub-segments (at least 1) and each sub-segment enclosed by interval arithmetic.
/// The box constants are enclosed with [`Interval::around`], so the proof covers the real box
/// $[-1.5,-1.2]\times[0.6,0.9]$, not only its floating-point neighbour.
pub fn verify_miranda(pieces: usize) -> MirandaReport {
    let pieces = pieces.max(1);
    let a_lo = Interval::constant(A_RANGE.0);
    let a_hi = Interval::constant(A_RANGE.1);
    let b_lo = Interval::constant(B_RANGE.0);
    let b_hi = Interval::constant(B_RANGE.1);
    let a_face = Interval::new(a_lo.lo(), a_hi.hi()).split(pieces);
    let b_face = Interval::new(b_lo.lo(), b_hi.hi()).split(pieces);
    let max_hi = |v: Vec<Interval>| v.iter().map(|i| i.hi()).fold(f64::NEG_INFINITY, f64::max);
    let min_lo = |v: Vec<Interval>| v.iter().map(|i| i.lo()).fold(f64::INFINITY, f64::min);
    let f1_left_upper = max_hi(b_face.iter().map(|&b| f1(a_lo, b)).collect());
    let f1_right_lower = min_lo(b_face.iter().map(|&b| f1(a_hi, b)).collect());
    let f2_bottom_lower = min_lo(a_face.iter().map(|&a| f2(a, b_lo)).collect());
    let f2_top_upper = max_hi(a_face.iter().map(|&a| f2(a, b_hi)).collect());
    MirandaReport {
        pieces,
        f1_left_upper,
        f1_right_lower,
        f2_bottom_lower,
        f2_top_upper,
        holds: f1_left_upper < 0.0
            && f1_right_lower > 0.0
            && f2_bottom_lower > 0.0
            && f2_top_upper < 0.0,
    }
}

/// Rigorous lower bound of the particle-evaluated drift $V_{q,p}(a)$ over $R$ (the box cut
/// into `pieces`×`pieces` cells, each enclosed by interval arithmetic). A positive value
/// proves that $(V_{q,p}(a), V_{q,p}(b))$ has no zero in $R$.
pub fn verify_particle_drift_positive(pieces: usize) -> f64 {
    let pieces = pieces.max(1);
    let a_box = Interval::new(
        Interval::constant(A_RANGE.0).lo(),
        Interval::constant(A_RANGE.1).hi(),
    );
    let b_box = Interval::new(
        Interval::constant(B_RANGE.0).lo(),
        Interval::constant(B_RANGE.1).hi(),
    );
    let mut lower = f64::INFINITY;
    for a in a_box.split(pieces) {
        for b in b_box.split(pieces) {
            // x = a is the same real variable as the particle a; enclosing them independently
            // only widens the enclosure (still rigorous).
            lower = lower.min(one_sided_drift(a, a, b).lo());
        }
    }
    lower
}

/// A zero of $(F_1,F_2)$ found by Newton's method ([`newton_zero`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonZero {
    /// $a^*$.
    pub a: f64,
    /// $b^*$.
    pub b: f64,
    /// $\max(\lvert F_1(a^*,b^*)\rvert, \lvert F_2(a^*,b^*)\rvert)$.
    pub residual: f64,
    /// $\max(\lvert V_{q,p}(0)\rvert, \lvert V_{q,p}(1)\rvert)$ at $(a^*,b^*)$, from the
    /// definition of the drift ([`one_sided_drift`]).
    pub drift_residual: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

/// Newton's method on $(F_1,F_2)$ with the analytic [`jacobian`], from $(a_0,b_0)$, stopping
/// when the step is below `4 f64::EPSILON · |(a,b)|` or after `max_iters` iterations.
/// (argmin's Newton solver minimises a scalar objective with a Hessian; a 2×2 root-finding
/// Newton with the exact Jacobian is the direct tool here.)
///
/// # Errors
/// [`ParticleError::Breakdown`] if the Jacobian is singular or the iterates leave the finite
/// range or do not converge within `max_iters`.
pub fn newton_zero(a0: f64, b0: f64, max_iters: usize) -> Result<NewtonZero, ParticleError> {
    let (mut a, mut b) = (a0, b0);
    for it in 1..=max_iters {
        let (r1, r2) = (f1(a, b), f2(a, b));
        let j = jacobian(a, b);
        let det = j[0][0] * j[1][1] - j[0][1] * j[1][0];
        if !(det.is_finite() && det != 0.0) {
            return Err(ParticleError::Breakdown {
                at: None,
                what: format!("singular Jacobian at (a, b) = ({a}, {b})"),
            });
        }
        let da = (j[1][1] * r1 - j[0][1] * r2) / det;
        let db = (-j[1][0] * r1 + j[0][0] * r2) / det;
        a -= da;
        b -= db;
        if !(a.is_finite() && b.is_finite()) {
            return Err(ParticleError::Breakdown {
                at: None,
                what: "Newton iterate is not finite".into(),
            });
        }
        if da.abs().max(db.abs()) <= 4.0 * f64::EPSILON * a.abs().max(b.abs()) {
            let residual = f1(a, b).abs().max(f2(a, b).abs());
            let drift_residual = one_sided_drift(0.0, a, b)
                .abs()
                .max(one_sided_drift(1.0, a, b).abs());
            return Ok(NewtonZero {
                a,
                b,
                residual,
                drift_residual,
                iterations: it,
            });
        }
    }
    Err(ParticleError::Breakdown {
        at: None,
        what: format!("Newton did not converge in {max_iters} iterations"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_matches_definition() {
        // F1 = 4 Z_p(0) Z_q(0) V(0) with Z = (k + k)/2: identity of seed eq. (23); relative
        // round-off of a handful of exp/products (~1e-15).
        for &(a, b) in &[(-1.3, 0.7), (-1.5, 0.9), (0.2, 2.0)] {
            let zp0 = (1.0 + (-1.0f64).exp()) / 2.0;
            let zq0 = ((-a * a).exp() + (-b * b).exp()) / 2.0;
            let v0 = one_sided_drift(0.0, a, b);
            assert!((4.0 * zp0 * zq0 * v0 - f1(a, b)).abs() < 1e-14);
            let zp1 = ((-1.0f64).exp() + 1.0) / 2.0;
            let zq1 = ((-(1.0 - a) * (1.0 - a)).exp() + (-(1.0 - b) * (1.0 - b)).exp()) / 2.0;
            let v1 = one_sided_drift(1.0, a, b);
            assert!((4.0 * zp1 * zq1 * v1 - f2(a, b)).abs() < 1e-14);
        }
    }

    #[test]
    fn jacobian_matches_central_differences() {
        // Central differences with h = 1e-6 have truncation error O(h^2) ~ 1e-12 and
        // cancellation error O(eps/h) ~ 1e-10: tolerance 1e-8.
        let (a, b, h) = (-1.33, 0.74, 1e-6);
        let j = jacobian(a, b);
        let fd = [
            [
                (f1(a + h, b) - f1(a - h, b)) / (2.0 * h),
                (f1(a, b + h) - f1(a, b - h)) / (2.0 * h),
            ],
            [
                (f2(a + h, b) - f2(a - h, b)) / (2.0 * h),
                (f2(a, b + h) - f2(a, b - h)) / (2.0 * h),
            ],
        ];
        for r in 0..2 {
            for c in 0..2 {
                assert!((j[r][c] - fd[r][c]).abs() < 1e-8, "J[{r}][{c}]");
            }
        }
    }
}
