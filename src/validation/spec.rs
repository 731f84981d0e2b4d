//! Experiment specifications: the campaign as data (`validation/specs/*.toml`).
//!
//! A spec declares the experiment's id, title, source, the parameters of each profile and one
//! or more *checks*. A check names a measured quantity (`key`), the claim it tests, the
//! predicted value (a number in the spec, or `computed` when the experiment derives it from
//! theory, e.g. a linearised rate), the tolerance and the comparison kind. The verdict is
//! computed by the runner from the measured number ([`Check::verdict`]); no experiment writes
//! its own verdict.

use serde::{Deserialize, Serialize};

/// How a measured value is compared with the prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// `|measured - predicted| <= tolerance` (absolute).
    Close,
    /// `|measured - predicted| <= tolerance * |predicted|` (relative).
    RelClose,
    /// `measured <= predicted + tolerance` (an upper bound; predicted is usually 0).
    AtMost,
    /// `measured >= predicted - tolerance` (a lower bound).
    AtLeast,
}

/// What a check establishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A claim of the theory that the numbers could contradict (the default).
    #[default]
    Claim,
    /// A property that holds by construction of the method (e.g. an invariant the
    /// discretisation preserves exactly): it checks the implementation, not the theorem, and is
    /// reported in its own section, not counted among the claims.
    Implementation,
}

/// The predicted value of a check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Predicted {
    /// A number stated in the spec.
    Value(f64),
    /// The literal string `"computed"`: the experiment supplies it from theory.
    Computed(String),
}

/// One claim of an experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Key of the measured quantity in the experiment's outcome.
    pub key: String,
    /// The claim, in words (printed in the table and report).
    pub claim: String,
    /// Predicted value.
    pub predicted: Predicted,
    /// Tolerance (meaning depends on `kind`).
    pub tolerance: f64,
    /// Comparison kind.
    pub kind: CheckKind,
    /// Why this tolerance (printed in the report).
    #[serde(default)]
    pub tolerance_reason: String,
    /// Claim (default) or implementation check.
    #[serde(default)]
    pub role: Role,
}

impl Check {
    /// Verdict: `true` iff `measured` is finite and satisfies the check against `predicted`.
    pub fn verdict(&self, predicted: f64, measured: f64) -> bool {
        if !measured.is_finite() || !predicted.is_finite() {
            return false;
        }
        let diff = measured - predicted;
        match self.kind {
            CheckKind::Close => diff.abs() <= self.tolerance,
            CheckKind::RelClose => diff.abs() <= self.tolerance * predicted.abs(),
            CheckKind::AtMost => diff <= self.tolerance,
            CheckKind::AtLeast => diff >= -self.tolerance,
        }
    }

    /// Human-readable form of the tolerance, e.g. `± 0.05` or `≤ 1e-6`.
    pub fn tolerance_text(&self) -> String {
        match self.kind {
            CheckKind::Close => format!("± {}", fmt_num(self.tolerance)),
            CheckKind::RelClose => format!("± {} rel.", fmt_num(self.tolerance)),
            CheckKind::AtMost => format!("≤ pred. + {}", fmt_num(self.tolerance)),
            CheckKind::AtLeast => format!("≥ pred. − {}", fmt_num(self.tolerance)),
        }
    }
}

/// Parameters of one profile: a free-form TOML table read by the experiment.
pub type Params = toml::Table;

/// A whole experiment spec.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Stable id (also the spec's file name and the `--only` argument).
    pub id: String,
    /// Short title.
    pub title: String,
    /// The seed / theorem / theory note the claim comes from.
    pub source: String,
    /// Parameters of the `quick` profile.
    pub quick: Params,
    /// Parameters of the `full` profile (keys missing here fall back to `quick`).
    #[serde(default)]
    pub full: Params,
    /// The claims.
    pub checks: Vec<Check>,
}

impl Spec {
    /// Parse a spec from TOML text.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let spec: Spec = toml::from_str(text).map_err(|e| e.to_string())?;
        if spec.checks.is_empty() {
            return Err(format!("spec '{}' declares no check", spec.id));
        }
        for c in &spec.checks {
            if let Predicted::Computed(s) = &c.predicted {
                if s != "computed" {
                    return Err(format!(
                        "spec '{}', check '{}': predicted must be a number or \"computed\"",
                        spec.id, c.key
                    ));
                }
            }
            if !(c.tolerance.is_finite() && c.tolerance >= 0.0) {
                return Err(format!(
                    "spec '{}', check '{}': tolerance must be finite and >= 0",
                    spec.id, c.key
                ));
            }
        }
        Ok(spec)
    }

    /// The parameters of a profile (`full` overrides `quick` key by key).
    pub fn params(&self, full: bool) -> Params {
        let mut p = self.quick.clone();
        if full {
            for (k, v) in &self.full {
                p.insert(k.clone(), v.clone());
            }
        }
        p
    }
}

/// Compact number formatting for tables: 4 significant digits, scientific when needed.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{x:.3e}")
    } else {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
id = "demo"
title = "Demo"
source = "nowhere"
[quick]
n = 3
[full]
n = 30
[[checks]]
key = "slope"
claim = "order two"
predicted = 2.0
tolerance = 0.1
kind = "close"
[[checks]]
key = "rate"
claim = "computed rate"
predicted = "computed"
tolerance = 0.01
kind = "rel_close"
"#;

    #[test]
    fn parses_and_judges() {
        let s = Spec::parse(SPEC).unwrap();
        assert_eq!(s.params(true)["n"].as_integer(), Some(30));
        assert_eq!(s.params(false)["n"].as_integer(), Some(3));
        let c = &s.checks[0];
        assert!(c.verdict(2.0, 2.05));
        assert!(!c.verdict(2.0, 2.2));
        assert!(!c.verdict(2.0, f64::NAN));
        let at_most = Check {
            kind: CheckKind::AtMost,
            ..c.clone()
        };
        assert!(at_most.verdict(0.0, -5.0) && !at_most.verdict(0.0, 0.2));
        assert!(Spec::parse("id='x'\ntitle='t'\nsource='s'\n[quick]\nchecks=[]").is_err());
        assert_eq!(fmt_num(1.993092), "1.9931");
        assert_eq!(fmt_num(1.6e-8), "1.600e-8");
    }
}
