//! Dense linear algebra for small symmetric matrices (nalgebra).
//!
//! Everything the Gaussian closed forms need is a *spectral function* of a symmetric
//! matrix, $f(A) = V\,\mathrm{diag}(f(\lambda_i))\,V^\top$ with $A = V \Lambda V^\top$ the symmetric
//! eigen-decomposition. Computing square roots, inverses of $M + \delta I$ and log-determinants
//! this way is backward stable and works for singular positive *semi*-definite matrices
//! (eigenvalues clamped at 0), which is what MATH.md §1 requires.
//!
//! Large dense matrices (Gram and kernel matrices of the finite-space and grid parts) use faer
//! in the modules that need them. With the optional `lapack` feature the nalgebra eigensolver
//! is cross-checked against LAPACK's `dsyev` (`sym_eigen_lapack`).

pub mod subnormal;

pub use subnormal::flush_subnormals;

use nalgebra::{DMatrix, DVector};
use thiserror::Error;

use crate::error::{Classify, ErrorClass};

/// Relative tolerance on symmetry: $\max_{ij} |A_{ij}-A_{ji}| \le$ `SYM_REL_TOL` $\cdot \max(1,\max|A|)$.
///
/// Loose enough to accept matrices assembled in floating point (sample covariances,
/// products $P D P^\top$), tight enough to reject anything that is not meant to be symmetric.
pub const SYM_REL_TOL: f64 = 1e-10;

/// Relative tolerance on positive semi-definiteness:
/// $\lambda_{\min} \ge -$ `PSD_REL_TOL` $\cdot \max(1, \lambda_{\max})$.
///
/// Eigenvalues inside the tolerance are treated as exact zeros (the matrix is singular).
pub const PSD_REL_TOL: f64 = 1e-10;

/// Errors from validating or factorising a matrix.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum LinalgError {
    /// The matrix is not square.
    #[error("{what} must be square, got {rows}x{cols}")]
    NotSquare {
        /// Name of the matrix in the caller's words.
        what: String,
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// An entry is NaN or infinite.
    #[error("{what} has a non-finite entry ({value}) at ({row}, {col})")]
    NonFinite {
        /// Name of the matrix.
        what: String,
        /// Row of the first offending entry.
        row: usize,
        /// Column of the first offending entry.
        col: usize,
        /// The entry.
        value: f64,
    },
    /// The matrix is not symmetric within [`SYM_REL_TOL`].
    #[error("{what} is not symmetric: max |A_ij - A_ji| = {asym:.3e} > tolerance {tol:.3e}")]
    NotSymmetric {
        /// Name of the matrix.
        what: String,
        /// Largest asymmetry found.
        asym: f64,
        /// Tolerance that was applied.
        tol: f64,
    },
    /// The matrix has an eigenvalue below $-$[`PSD_REL_TOL`]$\cdot\max(1,\lambda_{\max})$.
    #[error(
        "{what} is not positive semi-definite: smallest eigenvalue {min_eig:.6e} < -{tol:.3e}"
    )]
    NotPsd {
        /// Name of the matrix.
        what: String,
        /// Its smallest eigenvalue.
        min_eig: f64,
        /// Tolerance that was applied.
        tol: f64,
    },
    /// Two objects that must have the same dimension do not.
    #[error("dimension mismatch: {what} has dimension {found}, expected {expected}")]
    DimensionMismatch {
        /// What was mismatched.
        what: String,
        /// Expected dimension.
        expected: usize,
        /// Dimension found.
        found: usize,
    },
}

impl Classify for LinalgError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

/// Symmetric eigen-decomposition $A = V\,\mathrm{diag}(\lambda)\,V^\top$, eigenvalues ascending.
#[derive(Clone, Debug)]
pub struct SymEigen {
    /// Eigenvalues, ascending.
    pub values: DVector<f64>,
    /// Orthonormal eigenvectors, column `i` belongs to `values[i]`.
    pub vectors: DMatrix<f64>,
}

impl SymEigen {
    /// Decompose the symmetric part $(A + A^\top)/2$ of `a` (implicit QL, nalgebra).
    ///
    /// # Panics
    /// If `a` is not square (a caller bug; validated entry points check this first).
    #[track_caller]
    pub fn new(a: &DMatrix<f64>) -> Self {
        assert!(a.is_square(), "SymEigen::new needs a square matrix");
        let s = symmetrize(a);
        let eig = nalgebra::SymmetricEigen::new(s);
        let n = eig.eigenvalues.len();
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&i, &j| eig.eigenvalues[i].total_cmp(&eig.eigenvalues[j]));
        let values = DVector::from_iterator(n, idx.iter().map(|&i| eig.eigenvalues[i]));
        let mut vectors = DMatrix::zeros(n, n);
        for (k, &i) in idx.iter().enumerate() {
            vectors.set_column(k, &eig.eigenvectors.column(i));
        }
        SymEigen { values, vectors }
    }

    /// $V\,\mathrm{diag}(f(\lambda_i))\,V^\top$ (exactly symmetric).
    pub fn apply(&self, f: impl Fn(f64) -> f64) -> DMatrix<f64> {
        let n = self.values.len();
        let mut scaled = self.vectors.clone();
        for j in 0..n {
            let fj = f(self.values[j]);
            scaled.column_mut(j).scale_mut(fj);
        }
        symmetrize(&(scaled * self.vectors.transpose()))
    }

    /// Eigenvalues clamped at zero (for a PSD matrix: removes round-off negatives).
    pub fn clamped_values(&self) -> DVector<f64> {
        self.values.map(|l| l.max(0.0))
    }
}

/// $(A + A^\top)/2$.
pub fn symmetrize(a: &DMatrix<f64>) -> DMatrix<f64> {
    (a + a.transpose()) * 0.5
}

/// PSD square root $A^{1/2} = V\,\mathrm{diag}(\sqrt{\max(\lambda_i,0)})\,V^\top$.
///
/// # Panics
/// If `a` is not square.
#[track_caller]
pub fn psd_sqrt(a: &DMatrix<f64>) -> DMatrix<f64> {
    SymEigen::new(a).apply(|l| l.max(0.0).sqrt())
}

/// Validate a matrix as symmetric positive semi-definite (finite, square, symmetric within
/// [`SYM_REL_TOL`], eigenvalues $\ge -$[`PSD_REL_TOL`]$\max(1,\lambda_{\max})$).
///
/// Returns the symmetrised matrix and its eigen-decomposition (reused by the callers).
pub fn validate_psd(a: &DMatrix<f64>, what: &str) -> Result<(DMatrix<f64>, SymEigen), LinalgError> {
    validate_finite(a, what)?;
    if !a.is_square() {
        return Err(LinalgError::NotSquare {
            what: what.to_string(),
            rows: a.nrows(),
            cols: a.ncols(),
        });
    }
    let scale = a.amax().max(1.0);
    let asym = (a - a.transpose()).amax();
    let tol = SYM_REL_TOL * scale;
    if asym > tol {
        return Err(LinalgError::NotSymmetric {
            what: what.to_string(),
            asym,
            tol,
        });
    }
    let s = symmetrize(a);
    let eig = SymEigen::new(&s);
    if let Some(&min_eig) = eig.values.as_slice().first() {
        let max_eig = eig.values[eig.values.len() - 1];
        let tol = PSD_REL_TOL * max_eig.max(1.0);
        if min_eig < -tol {
            return Err(LinalgError::NotPsd {
                what: what.to_string(),
                min_eig,
                tol,
            });
        }
    }
    Ok((s, eig))
}

/// Check that every entry is finite.
pub fn validate_finite(a: &DMatrix<f64>, what: &str) -> Result<(), LinalgError> {
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            let v = a[(i, j)];
            if !v.is_finite() {
                return Err(LinalgError::NonFinite {
                    what: what.to_string(),
                    row: i,
                    col: j,
                    value: v,
                });
            }
        }
    }
    Ok(())
}

/// Check that every entry of a vector is finite.
pub fn validate_finite_vec(v: &DVector<f64>, what: &str) -> Result<(), LinalgError> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(LinalgError::NonFinite {
            what: what.to_string(),
            row: i,
            col: 0,
            value: v[i],
        }),
    }
}

/// Eigen-decomposition with LAPACK's `dsyev` (feature `lapack`), used only to cross-check
/// [`SymEigen`] in tests.
#[cfg(feature = "lapack")]
pub fn sym_eigen_lapack(a: &DMatrix<f64>) -> Option<SymEigen> {
    let eig = nalgebra_lapack::SymmetricEigen::try_new(symmetrize(a))?;
    let n = eig.eigenvalues.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| eig.eigenvalues[i].total_cmp(&eig.eigenvalues[j]));
    let values = DVector::from_iterator(n, idx.iter().map(|&i| eig.eigenvalues[i]));
    let mut vectors = DMatrix::zeros(n, n);
    for (k, &i) in idx.iter().enumerate() {
        vectors.set_column(k, &eig.eigenvectors.column(i));
    }
    Some(SymEigen { values, vectors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrt_reconstructs_psd_including_singular() {
        // Rank-2 matrix in 3D with eigenvalues spanning 1e-8 .. 1e4.
        let v = DMatrix::from_row_slice(3, 3, &[1.0, 2.0, 0.5, -1.0, 0.3, 2.0, 0.2, -0.7, 1.0]);
        let q = v.qr().q();
        let d = DMatrix::from_diagonal(&DVector::from_vec(vec![1e4, 1e-8, 0.0]));
        let a = symmetrize(&(&q * d * q.transpose()));
        let r = psd_sqrt(&a);
        let err = (&r * &r - &a).amax();
        // backward error of a symmetric eigensolver: O(n u ||A||)
        assert!(err <= 64.0 * f64::EPSILON * 1e4, "err = {err}");
        assert!(validate_psd(&a, "A").is_ok());
    }

    #[test]
    fn rejects_bad_matrices() {
        let indefinite = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, -1.0]);
        assert!(matches!(
            validate_psd(&indefinite, "A"),
            Err(LinalgError::NotPsd { .. })
        ));
        let nonsym = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.0, 1.0]);
        assert!(matches!(
            validate_psd(&nonsym, "A"),
            Err(LinalgError::NotSymmetric { .. })
        ));
        let nan = DMatrix::from_row_slice(2, 2, &[1.0, f64::NAN, f64::NAN, 1.0]);
        assert!(matches!(
            validate_psd(&nan, "A"),
            Err(LinalgError::NonFinite { .. })
        ));
        let rect = DMatrix::<f64>::zeros(2, 3);
        assert!(matches!(
            validate_psd(&rect, "A"),
            Err(LinalgError::NotSquare { .. })
        ));
    }
}
