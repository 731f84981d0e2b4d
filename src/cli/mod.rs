//! The `sinkflow` command line (clap).
//!
//! Contract (DESIGN.md "CLI contract"): vectors are typed `"1,2,3"`, matrices `"2,0.3;0.3,1"`
//! (rows split by `;`), negative values as typed. With `--json` exactly one JSON object is
//! printed on stdout. Errors print one line on stderr and exit with code 2 for bad input and 1
//! for a numerical failure; nothing is printed on stdout then.

use clap::{Parser, Subcommand};
use nalgebra::{DMatrix, DVector};
use sinkflow::{Classify, ErrorClass};

use crate::validation;

pub mod finite;
pub mod gaussian;
pub mod particles;
pub mod pma;
mod sinkhorn;

/// Entropic optimal-transport flows: closed forms, Sinkhorn, and the validation campaign.
///
/// With no subcommand, runs the quick validation campaign (`sinkflow validate`).
#[derive(Parser, Debug)]
#[command(name = "sinkflow", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: `validate --profile quick`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the validation campaign and write the report.
    Validate(validation::ValidateArgs),
    /// Closed-form Gaussian entropic OT, Sinkhorn divergence and Gaussian flows.
    Gaussian(gaussian::GaussianArgs),
    /// Particle Sinkhorn / drifting flows towards a target point cloud.
    Particles(particles::ParticlesArgs),
    /// Entropic OT / Sinkhorn divergence between two point clouds read from files.
    Sinkhorn(sinkhorn::SinkhornArgs),
    /// The Sinkhorn potential flow on a finite space (resolvent, SJKO, metric tensor).
    Finite(finite::FiniteArgs),
    /// Parabolic Monge-Ampere flow against Sinkhorn/IPFP iterates; Wasserstein mirror flows.
    Pma(pma::PmaArgs),
}

/// An error on its way to the terminal: a message and its policy class.
#[derive(Debug)]
pub struct CliError {
    /// One-line message for stderr.
    pub message: String,
    /// Bad input (exit 2) or numerical failure (exit 1).
    pub class: ErrorClass,
}

impl CliError {
    /// A bad-input error (exit code 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            class: ErrorClass::BadInput,
        }
    }
    /// A numerical failure (exit code 1).
    pub fn numerical(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            class: ErrorClass::Numerical,
        }
    }
    /// The process exit code of this error.
    pub fn exit_code(&self) -> i32 {
        match self.class {
            ErrorClass::BadInput => 2,
            ErrorClass::Numerical => 1,
        }
    }
    /// Wrap any classified library error, prefixing the message with `context`.
    pub fn from_lib<E: Classify + std::fmt::Display>(context: &str, e: E) -> Self {
        CliError {
            message: if context.is_empty() {
                e.to_string()
            } else {
                format!("{context}: {e}")
            },
            class: e.class(),
        }
    }
}

/// Parse a vector typed as `"1,2,-3.5"` (whitespace allowed). `what` names the argument.
pub fn parse_vector(text: &str, what: &str) -> Result<DVector<f64>, CliError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CliError::bad_input(format!("{what}: empty vector")));
    }
    let vals = t
        .split(',')
        .map(|s| parse_number(s, what))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DVector::from_vec(vals))
}

/// Parse a matrix typed as `"2,0.3;0.3,1"` (rows split by `;`, entries by `,`).
/// Ragged rows are rejected with the offending row number.
pub fn parse_matrix(text: &str, what: &str) -> Result<DMatrix<f64>, CliError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CliError::bad_input(format!("{what}: empty matrix")));
    }
    let rows: Vec<Vec<f64>> = t
        .split(';')
        .map(|row| {
            row.split(',')
                .map(|s| parse_number(s, what))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let ncols = rows[0].len();
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != ncols) {
        return Err(CliError::bad_input(format!(
            "{what}: ragged matrix, row {} has {} entries but row 1 has {ncols}",
            i + 1,
            r.len()
        )));
    }
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Ok(DMatrix::from_row_slice(rows.len(), ncols, &flat))
}

fn parse_number(s: &str, what: &str) -> Result<f64, CliError> {
    let s = s.trim();
    let v: f64 = s
        .parse()
        .map_err(|_| CliError::bad_input(format!("{what}: '{s}' is not a number")))?;
    if !v.is_finite() {
        return Err(CliError::bad_input(format!(
            "{what}: '{s}' is not a finite number"
        )));
    }
    Ok(v)
}

/// A number for human-readable output: `sig` significant digits, printed plainly
/// (`2.76668198607950`, `0.00012`) between 1e-4 and 1e15, in scientific notation outside
/// (`1.5e-9`); trailing zeros are dropped. JSON output is unaffected (shortest round-trip form).
pub fn fmt_sig(x: f64, sig: usize) -> String {
    let sig = sig.max(1);
    let a = x.abs();
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    if (1e-4..1e15).contains(&a) {
        let mag = a.log10().floor() as i64;
        let decimals = (sig as i64 - 1 - mag).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{x:.prec$e}", prec = sig - 1)
    }
}

/// Print one JSON value on stdout (the `--json` contract).
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Matrix as a JSON array of rows.
pub fn matrix_json(m: &DMatrix<f64>) -> serde_json::Value {
    serde_json::Value::Array(
        (0..m.nrows())
            .map(|i| serde_json::json!((0..m.ncols()).map(|j| m[(i, j)]).collect::<Vec<_>>()))
            .collect(),
    )
}

/// Vector as a JSON array.
pub fn vector_json(v: &DVector<f64>) -> serde_json::Value {
    serde_json::json!(v.as_slice())
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => validation::run(&validation::ValidateArgs::default())
            .map_err(|e| CliError::from_lib("validate", e)),
        Some(Command::Validate(args)) => {
            validation::run(&args).map_err(|e| CliError::from_lib("validate", e))
        }
        Some(Command::Gaussian(args)) => gaussian::run(&args),
        Some(Command::Particles(args)) => particles::run(&args),
        Some(Command::Sinkhorn(args)) => sinkhorn::run(&args),
        Some(Command::Finite(args)) => finite::run(&args),
        Some(Command::Pma(args)) => pma::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_and_matrices() {
        assert_eq!(
            parse_vector("-0.3, 1.2", "v").unwrap().as_slice(),
            &[-0.3, 1.2]
        );
        let m = parse_matrix("-1,0;0,1", "m").unwrap();
        assert_eq!((m.nrows(), m.ncols(), m[(0, 0)]), (2, 2, -1.0));
        assert!(parse_matrix("1,2;3", "m")
            .unwrap_err()
            .message
            .contains("ragged"));
        assert!(parse_vector("1,x", "v").is_err());
        assert!(parse_vector("1,nan", "v").is_err());
        assert!(parse_vector("1,inf", "v").is_err());
        assert!(parse_vector("", "v").is_err());
    }

    #[test]
    fn human_numbers_are_plain_decimals_where_readable() {
        assert_eq!(fmt_sig(2.766681986079497, 16), "2.766681986079497");
        assert_eq!(fmt_sig(0.5, 16), "0.5");
        assert_eq!(fmt_sig(1234.6, 3), "1235");
        assert_eq!(fmt_sig(1.5e-9, 3), "1.50e-9");
        assert_eq!(fmt_sig(0.0, 5), "0");
    }
}
