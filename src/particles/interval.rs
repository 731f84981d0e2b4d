//! A small closed-interval type with outward rounding, for computer-assisted sign proofs
//! (seed 003, Lemma A.1).
//!
//! An [`Interval`] $[\ell, u]$ encloses a set of reals. Every operation returns an interval
//! that contains the exact image of its operands' intervals:
//!
//! * `+`, `-`, `*`, `/` are computed in IEEE-754 round-to-nearest (exact to half an ulp), then
//!   each endpoint is widened outward by one ulp ([`next_down`] / [`next_up`]);
//! * [`Interval::exp`] uses monotonicity of $\exp$ and the platform `exp`, whose error is below
//!   one ulp on every supported libm; endpoints are widened by [`EXP_ULPS`] ulps (a margin of 4×)
//!   and the lower endpoint is clamped at 0.
//!
//! Decimal constants that are not binary floats (e.g. 0.6) must enter through
//! [`Interval::around`], which encloses the real number between the neighbouring floats.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// Number of ulps by which the endpoints of [`Interval::exp`] are widened.
pub const EXP_ULPS: u32 = 4;

/// The next representable `f64` towards $+\infty$ (identity on NaN and $+\infty$).
pub fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// The next representable `f64` towards $-\infty$ (identity on NaN and $-\infty$).
pub fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// A closed interval $[\ell, u]$ with $\ell \le u$, enclosing an unknown real number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    lo: f64,
    hi: f64,
}

impl Interval {
    /// $[\ell, u]$.
    ///
    /// # Panics
    /// If `lo > hi` or either endpoint is NaN (a caller bug).
    #[track_caller]
    pub fn new(lo: f64, hi: f64) -> Self {
        assert!(lo <= hi, "interval with lo = {lo} > hi = {hi}");
        Interval { lo, hi }
    }
    /// The degenerate interval $[x, x]$ (exact when `x` is the intended real number).
    pub fn point(x: f64) -> Self {
        Interval::new(x, x)
    }
    /// $[\mathrm{next\_down}(x), \mathrm{next\_up}(x)]$: encloses the real number whose nearest
    /// float is `x` (use for decimal constants such as 0.6).
    pub fn around(x: f64) -> Self {
        Interval::new(next_down(x), next_up(x))
    }
    /// Lower endpoint.
    pub fn lo(self) -> f64 {
        self.lo
    }
    /// Upper endpoint.
    pub fn hi(self) -> f64 {
        self.hi
    }
    /// Width $u-\ell$ (rounded up).
    pub fn width(self) -> f64 {
        next_up(self.hi - self.lo)
    }
    /// True iff every element is $> 0$.
    pub fn is_positive(self) -> bool {
        self.lo > 0.0
    }
    /// True iff every element is $< 0$.
    pub fn is_negative(self) -> bool {
        self.hi < 0.0
    }
    /// True iff `x` lies in the interval.
    pub fn contains(self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
    /// Split into `k` consecutive sub-intervals covering `self` (interior break points are
    /// shared floats, so the union is exactly `self`).
    pub fn split(self, k: usize) -> Vec<Interval> {
        let k = k.max(1);
        let mut pts: Vec<f64> = (0..=k)
            .map(|i| self.lo + (self.hi - self.lo) * (i as f64) / (k as f64))
            .collect();
        pts[0] = self.lo;
        pts[k] = self.hi;
        // Round-off can make break points non-monotone only if the interval is a few ulps wide.
        for i in 1..=k {
            if pts[i] < pts[i - 1] {
                pts[i] = pts[i - 1];
            }
        }
        pts.windows(2).map(|w| Interval::new(w[0], w[1])).collect()
    }
    /// $\exp$ of the interval (monotone; widened by [`EXP_ULPS`] ulps, lower end clamped at 0).
    pub fn exp(self) -> Self {
        let mut lo = self.lo.exp();
        let mut hi = self.hi.exp();
        for _ in 0..EXP_ULPS {
            lo = next_down(lo);
            hi = next_up(hi);
        }
        Interval::new(lo.max(0.0), hi)
    }
    /// $x^2$ (tight: $[0,\cdot]$ when the interval contains 0).
    pub fn sqr(self) -> Self {
        let a = self.lo.abs();
        let b = self.hi.abs();
        let hi = next_up(a.max(b) * a.max(b));
        let lo = if self.lo <= 0.0 && self.hi >= 0.0 {
            0.0
        } else {
            next_down(a.min(b) * a.min(b)).max(0.0)
        };
        Interval::new(lo, hi)
    }
    fn widen(lo: f64, hi: f64) -> Self {
        Interval::new(next_down(lo), next_up(hi))
    }
}

impl Add for Interval {
    type Output = Interval;
    fn add(self, o: Interval) -> Interval {
        Interval::widen(self.lo + o.lo, self.hi + o.hi)
    }
}

impl Sub for Interval {
    type Output = Interval;
    fn sub(self, o: Interval) -> Interval {
        Interval::widen(self.lo - o.hi, self.hi - o.lo)
    }
}

impl Neg for Interval {
    type Output = Interval;
    fn neg(self) -> Interval {
        Interval::new(-self.hi, -self.lo)
    }
}

impl Mul for Interval {
    type Output = Interval;
    fn mul(self, o: Interval) -> Interval {
        let c = [
            self.lo * o.lo,
            self.lo * o.hi,
            self.hi * o.lo,
            self.hi * o.hi,
        ];
        let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Interval::widen(lo, hi)
    }
}

impl Div for Interval {
    type Output = Interval;
    /// # Panics
    /// If the divisor contains 0 (a caller bug: the enclosure would be unbounded).
    #[track_caller]
    fn div(self, o: Interval) -> Interval {
        assert!(
            o.lo > 0.0 || o.hi < 0.0,
            "interval division by [{}, {}] which contains 0",
            o.lo,
            o.hi
        );
        let c = [
            self.lo / o.lo,
            self.lo / o.hi,
            self.hi / o.lo,
            self.hi / o.hi,
        ];
        let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Interval::widen(lo, hi)
    }
}

/// Arithmetic shared by `f64` and [`Interval`], so that one formula serves both the
/// floating-point evaluation and its rigorous enclosure.
pub trait Scalar:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The constant `c` (for [`Interval`]: an enclosure of the real number nearest to `c`'s
    /// decimal spelling, see [`Interval::around`]; integers are exact).
    fn constant(c: f64) -> Self;
    /// $e^x$.
    fn exp(self) -> Self;
}

impl Scalar for f64 {
    fn constant(c: f64) -> Self {
        c
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

impl Scalar for Interval {
    fn constant(c: f64) -> Self {
        if c.fract() == 0.0 && c.abs() < 9.0e15 {
            Interval::point(c)
        } else {
            Interval::around(c)
        }
    }
    fn exp(self) -> Self {
        Interval::exp(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_up_down_and_enclosures() {
        assert!(next_up(1.0) > 1.0 && next_down(1.0) < 1.0);
        assert_eq!(next_up(0.0), f64::from_bits(1));
        assert!(next_down(0.0) < 0.0);
        assert!(next_up(-1.0) > -1.0);
        // 0.1 + 0.2 is not 0.3 in floats, but the enclosure contains the float sum and is valid.
        let s = Interval::around(0.1) + Interval::around(0.2);
        assert!(s.contains(0.3) && s.contains(0.1 + 0.2));
        let e = Interval::point(1.0).exp();
        assert!(e.contains(std::f64::consts::E) && e.width() < 1e-14);
        let q = Interval::new(1.0, 2.0) / Interval::new(4.0, 8.0);
        assert!(q.lo() <= 0.125 && q.hi() >= 0.5);
        let m = Interval::new(-1.0, 2.0) * Interval::new(-3.0, 1.0);
        assert!(m.lo() <= -6.0 && m.hi() >= 3.0);
        assert_eq!(Interval::new(-1.0, 2.0).sqr().lo(), 0.0);
        let parts = Interval::new(-1.5, -1.2).split(7);
        assert_eq!(parts.len(), 7);
        assert_eq!(parts[0].lo(), -1.5);
        assert_eq!(parts[6].hi(), -1.2);
        assert!(parts.windows(2).all(|w| w[0].hi() == w[1].lo()));
    }
}
