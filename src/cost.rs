//! Ground costs.
//!
//! sinkflow supports two quadratic ground costs, and every solver takes the cost as a
//! value of [`Cost`] so that the two conventions are never mixed silently:
//!
//! | variant | $c(x,y)$ | used by |
//! |---|---|---|
//! | [`Cost::SqEuclidean`] (default) | $\lvert x-y\rvert^2$ | seeds 000, 001, MATH.md §1 |
//! | [`Cost::HalfSqEuclidean`] | $\lvert x-y\rvert^2/2$ | seed 003, GeomLoss (`p = 2`) |
//!
//! Scaling identity (theory/conventions.md): for any pair of measures,
//! $\mathrm{OT}^{\text{half}}_\varepsilon = \tfrac12\,\mathrm{OT}^{\text{sq}}_{2\varepsilon}$,
//! and the same for $S_\varepsilon$.

use serde::{Deserialize, Serialize};

/// A quadratic ground cost on $\mathbb R^d$.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Cost {
    /// $c(x,y) = \lvert x-y\rvert^2$ (the default convention of sinkflow).
    #[default]
    SqEuclidean,
    /// $c(x,y) = \lvert x-y\rvert^2 / 2$.
    HalfSqEuclidean,
}

impl Cost {
    /// The factor $\kappa$ with $c(x,y) = \kappa \lvert x-y\rvert^2$.
    #[inline]
    pub fn factor(self) -> f64 {
        match self {
            Cost::SqEuclidean => 1.0,
            Cost::HalfSqEuclidean => 0.5,
        }
    }

    /// Evaluate $c(x,y)$ from coordinate differences (never via
    /// $\lvert x\rvert^2+\lvert y\rvert^2-2x\cdot y$, which loses digits; MATH.md §2).
    ///
    /// # Panics
    /// If `x` and `y` have different lengths (a caller bug).
    #[inline]
    #[track_caller]
    pub fn eval(self, x: &[f64], y: &[f64]) -> f64 {
        assert_eq!(x.len(), y.len(), "points of different dimensions");
        let s: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
        self.factor() * s
    }

    /// The regularisation $\varepsilon'$ under the squared-Euclidean convention that gives the
    /// same plan as `eps` under `self`: $c/\varepsilon = \lvert x-y\rvert^2 / (\varepsilon/\kappa)$.
    #[inline]
    pub fn sq_equivalent_eps(self, eps: f64) -> f64 {
        eps / self.factor()
    }

    /// Short stable name used by the CLI and JSON output (`sq`, `half-sq`).
    pub fn name(self) -> &'static str {
        match self {
            Cost::SqEuclidean => "sq",
            Cost::HalfSqEuclidean => "half-sq",
        }
    }
}

impl std::str::FromStr for Cost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sq" | "sqeuclidean" | "sq-euclidean" => Ok(Cost::SqEuclidean),
            "half-sq" | "half" | "halfsq" => Ok(Cost::HalfSqEuclidean),
            other => Err(format!(
                "unknown cost '{other}' (expected 'sq' for |x-y|^2 or 'half-sq' for |x-y|^2/2)"
            )),
        }
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_and_scaling() {
        let x = [1.0, 2.0];
        let y = [0.0, 4.0];
        assert_eq!(Cost::SqEuclidean.eval(&x, &y), 5.0);
        assert_eq!(Cost::HalfSqEuclidean.eval(&x, &y), 2.5);
        // c_half / eps == c_sq / (2 eps)
        let eps = 0.3;
        assert_eq!(
            Cost::HalfSqEuclidean.eval(&x, &y) / eps,
            Cost::SqEuclidean.eval(&x, &y) / Cost::HalfSqEuclidean.sq_equivalent_eps(eps)
        );
        assert_eq!("half-sq".parse::<Cost>().unwrap(), Cost::HalfSqEuclidean);
        assert!("l1".parse::<Cost>().is_err());
    }
}
