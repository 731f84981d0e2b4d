//! Convergence-rate fitting: the numbers behind every rate plot.
//!
//! * [`loglog_fit`] — least-squares fit of $\log y = p \log x + c$ (an order $p$ in $h$, $\varepsilon$, $N$, ...).
//! * [`semilog_fit`] — least-squares fit of $\log y = -r\,t + c$ (an exponential rate $r$).
//!
//! Both use natural logarithms and ordinary least squares on the transformed data, and report
//! the coefficient of determination $R^2$ so that a poor fit is visible in the report.

/// Result of a straight-line least-squares fit $Y = \text{slope}\cdot X + \text{intercept}$.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineFit {
    /// Fitted slope.
    pub slope: f64,
    /// Fitted intercept.
    pub intercept: f64,
    /// Coefficient of determination $R^2$, between 0 and 1 (1 for an exact line).
    pub r2: f64,
    /// Number of points used.
    pub n: usize,
}

/// Ordinary least squares on pairs `(x, y)`; `None` with fewer than two distinct abscissae or a
/// non-finite value.
pub fn line_fit(points: &[(f64, f64)]) -> Option<LineFit> {
    let n = points.len();
    if n < 2 || points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy > 0.0 {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(LineFit {
        slope,
        intercept,
        r2,
        n,
    })
}

/// Fit $\log y = p \log x + c$ over the points with $x, y > 0$ (others are skipped).
/// The slope is the measured order $p$.
pub fn loglog_fit(xs: &[f64], ys: &[f64]) -> Option<LineFit> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| **x > 0.0 && **y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    line_fit(&pts)
}

/// Fit $\log y = -r t + c$ over the points with $y > 0$; returns the fit whose `slope` is $-r$.
pub fn semilog_fit(ts: &[f64], ys: &[f64]) -> Option<LineFit> {
    let pts: Vec<(f64, f64)> = ts
        .iter()
        .zip(ys)
        .filter(|(_, y)| **y > 0.0)
        .map(|(t, y)| (*t, y.ln()))
        .collect();
    line_fit(&pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_power_law_and_exponential() {
        let xs: Vec<f64> = (1..8).map(|k| 2f64.powi(-k)).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x * x).collect();
        let f = loglog_fit(&xs, &ys).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.r2 - 1.0).abs() < 1e-12);
        let ts: Vec<f64> = (0..10).map(f64::from).collect();
        let ys: Vec<f64> = ts.iter().map(|t| 5.0 * (-1.5 * t).exp()).collect();
        let f = semilog_fit(&ts, &ys).unwrap();
        assert!((f.slope + 1.5).abs() < 1e-12);
        assert!(line_fit(&[(1.0, 1.0)]).is_none());
    }
}
