//! Potentials $V$ and initial measures $\mu_0$ of the campaign and the CLI (seed 000's test
//! cases; theory/finite_flow.md §7).

use super::error::FiniteError;
use super::space::FiniteSpace;

/// A catalogue potential.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Potential {
    /// $V(x)=\lvert x\rvert^2$ (convex).
    Quadratic,
    /// $V(x)=(x_1^2-1)^2+0.3x_1$ (+ $x_2^2$ in 2-D): wells at $x_1\approx\pm1$, the left one
    /// lower (MATH.md §2, check 6b).
    DoubleWell,
    /// 2-D tilted multi-well $V(x,y)=\cos(\pi x)\cos(\pi y)+0.3x$ (1-D: $\cos(2\pi x)+0.3x$).
    TiltedMultiwell,
}

impl Potential {
    /// Evaluate at a point.
    pub fn eval(self, x: &[f64]) -> f64 {
        let x1 = x[0];
        let rest: f64 = x[1..].iter().map(|t| t * t).sum();
        match self {
            Potential::Quadratic => x1 * x1 + rest,
            Potential::DoubleWell => (x1 * x1 - 1.0).powi(2) + 0.3 * x1 + rest,
            Potential::TiltedMultiwell => {
                if x.len() >= 2 {
                    (std::f64::consts::PI * x1).cos() * (std::f64::consts::PI * x[1]).cos()
                        + 0.3 * x1
                } else {
                    (2.0 * std::f64::consts::PI * x1).cos() + 0.3 * x1
                }
            }
        }
    }
    /// $V$ at every point of a space.
    pub fn on(self, space: &FiniteSpace) -> Vec<f64> {
        (0..space.len())
            .map(|i| self.eval(space.point(i)))
            .collect()
    }
}

impl std::str::FromStr for Potential {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quadratic" => Ok(Potential::Quadratic),
            "double-well" => Ok(Potential::DoubleWell),
            "tilted-multiwell" => Ok(Potential::TiltedMultiwell),
            o => Err(format!(
                "unknown potential '{o}' (expected quadratic, double-well or tilted-multiwell)"
            )),
        }
    }
}

/// $\lvert x_i-x\rvert^2$.
fn sq_dist(space: &FiniteSpace, i: usize, x: &[f64]) -> f64 {
    space
        .point(i)
        .iter()
        .zip(x)
        .map(|(a, b)| (a - b) * (a - b))
        .sum()
}

/// The Dirac mass at the grid point nearest to `x` (ties: the lowest index).
pub fn dirac_near(space: &FiniteSpace, x: &[f64]) -> Result<Vec<f64>, FiniteError> {
    super::error::check_len("dimension of the Dirac location", space.dim(), x.len())?;
    super::error::check_finite(x, "Dirac location")?;
    let mut best = (0, f64::INFINITY);
    for i in 0..space.len() {
        let d = sq_dist(space, i, x);
        if d < best.1 {
            best = (i, d);
        }
    }
    let mut mu = vec![0.0; space.len()];
    mu[best.0] = 1.0;
    Ok(mu)
}

/// The uniform probability.
pub fn uniform(space: &FiniteSpace) -> Vec<f64> {
    vec![1.0 / space.len() as f64; space.len()]
}

/// The Gaussian bump $\propto e^{-\lvert x-m\rvert^2/(2\sigma^2)}$ restricted to the points and
/// normalised (sum one).
pub fn gaussian_bump(
    space: &FiniteSpace,
    mean: &[f64],
    sigma: f64,
) -> Result<Vec<f64>, FiniteError> {
    super::error::check_len("dimension of the bump centre", space.dim(), mean.len())?;
    super::error::check_finite(mean, "bump centre")?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(FiniteError::InvalidParameter {
            name: "sigma",
            message: format!("must be finite and > 0, got {sigma}"),
        });
    }
    let w: Vec<f64> = (0..space.len())
        .map(|i| -sq_dist(space, i, mean) / (2.0 * sigma * sigma))
        .collect();
    let mx = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = w.iter().map(|t| (t - mx).exp()).collect();
    let s: f64 = e.iter().sum();
    Ok(e.iter().map(|t| t / s).collect())
}
