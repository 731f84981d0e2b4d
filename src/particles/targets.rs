//! Seeded 2-D toy targets (seed 003 §5.2 and Appendix J; the usual flow-matching toy sets).
//!
//! All samplers take an explicit RNG (use `gaussian::catalog::seeded(seed)` or any
//! `rand::Rng`) and return an $n\times 2$ matrix, one point per row. Parameters (fixed, so
//! that experiments are reproducible and comparable across schemes):
//!
//! | target | law |
//! |---|---|
//! | [`Target2d::EightGaussians`] | uniform mixture of $N(c_k, 0.2^2 I)$, $c_k = 2(\cos\frac{k\pi}4, \sin\frac{k\pi}4)$, $k=0..7$ (radius 2: collapse onto one mode costs $W_2^2 \approx 2r^2 = 8$, the "7–8" of seed 003 §5.2) |
//! | [`Target2d::Checkerboard`] | uniform on the 8 black cells of a 4×4 board of unit squares covering $[-2,2]^2$ (cells $(i,j)$ with $i+j$ even) |
//! | [`Target2d::TwoMoons`] | two interleaved half circles of radius 1 (upper centred at $(0,0)$, lower at $(1, 0.5)$), uniform angle, shifted by $(-0.5,-0.25)$ and scaled by 2, plus $N(0, 0.1^2 I)$ noise |
//! | [`Target2d::Spiral`] | two-arm spiral: $\theta = 3\pi\sqrt{u}$, $u\sim U(0,1)$, point $\pm(\,-\theta\cos\theta, \theta\sin\theta)/3$ (sign uniform), plus $N(0, 0.1^2 I)$ noise |

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;

/// A 2-D toy target distribution (see the module table for the exact laws).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target2d {
    /// Eight isotropic Gaussians on a circle of radius 2, standard deviation 0.2.
    EightGaussians,
    /// Uniform on the 8 black cells of a 4×4 checkerboard on $[-2,2]^2$.
    Checkerboard,
    /// Two interleaved moons (noise 0.1).
    TwoMoons,
    /// Two-arm spiral (noise 0.1).
    Spiral,
}

impl Target2d {
    /// All targets, in report order.
    pub const ALL: [Target2d; 4] = [
        Target2d::EightGaussians,
        Target2d::Checkerboard,
        Target2d::TwoMoons,
        Target2d::Spiral,
    ];

    /// Stable short name (`8gaussians`, `checkerboard`, `moons`, `spiral`).
    pub fn name(self) -> &'static str {
        match self {
            Target2d::EightGaussians => "8gaussians",
            Target2d::Checkerboard => "checkerboard",
            Target2d::TwoMoons => "moons",
            Target2d::Spiral => "spiral",
        }
    }

    /// Draw `n` i.i.d. points (an $n\times 2$ matrix).
    pub fn sample<R: Rng + ?Sized>(self, n: usize, rng: &mut R) -> DMatrix<f64> {
        let mut out = DMatrix::zeros(n, 2);
        for i in 0..n {
            let (x, y) = self.one(rng);
            out[(i, 0)] = x;
            out[(i, 1)] = y;
        }
        out
    }

    fn one<R: Rng + ?Sized>(self, rng: &mut R) -> (f64, f64) {
        let mut normal = || rng.sample::<f64, _>(StandardNormal);
        let (nx, ny) = (normal(), normal());
        match self {
            Target2d::EightGaussians => {
                let k = rng.random_range(0..8u32);
                let th = f64::from(k) * std::f64::consts::FRAC_PI_4;
                (2.0 * th.cos() + 0.2 * nx, 2.0 * th.sin() + 0.2 * ny)
            }
            Target2d::Checkerboard => {
                // 8 black cells: choose a row i in 0..4, then a column j with i + j even.
                let i = rng.random_range(0..4u32);
                let j = 2 * rng.random_range(0..2u32) + (i % 2);
                let u: f64 = rng.random();
                let v: f64 = rng.random();
                (-2.0 + f64::from(j) + u, -2.0 + f64::from(i) + v)
            }
            Target2d::TwoMoons => {
                let th = std::f64::consts::PI * rng.random::<f64>();
                let (x, y) = if rng.random::<bool>() {
                    (th.cos(), th.sin())
                } else {
                    (1.0 - th.cos(), 0.5 - th.sin())
                };
                (2.0 * (x - 0.5) + 0.1 * nx, 2.0 * (y - 0.25) + 0.1 * ny)
            }
            Target2d::Spiral => {
                let th = 3.0 * std::f64::consts::PI * rng.random::<f64>().sqrt();
                let s = if rng.random::<bool>() { 1.0 } else { -1.0 };
                (
                    s * (-th * th.cos()) / 3.0 + 0.1 * nx,
                    s * (th * th.sin()) / 3.0 + 0.1 * ny,
                )
            }
        }
    }
}

impl std::str::FromStr for Target2d {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Target2d::ALL
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!("unknown target '{s}' (expected 8gaussians, checkerboard, moons or spiral)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn seeded_shapes_and_supports() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for t in Target2d::ALL {
            let x = t.sample(500, &mut rng);
            assert_eq!(x.shape(), (500, 2));
            assert!(x.iter().all(|v| v.is_finite()));
            assert_eq!(t.name().parse::<Target2d>().unwrap(), t);
        }
        let cb = Target2d::Checkerboard.sample(1000, &mut rng);
        for r in 0..cb.nrows() {
            let (x, y) = (cb[(r, 0)], cb[(r, 1)]);
            assert!((-2.0..=2.0).contains(&x) && (-2.0..=2.0).contains(&y));
            let (cx, cy) = ((x + 2.0).floor() as i64, (y + 2.0).floor() as i64);
            assert_eq!((cx + cy) % 2, 0, "point on a white cell");
        }
        // Same seed, same sample.
        let a = Target2d::Spiral.sample(10, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let b = Target2d::Spiral.sample(10, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
    }
}
