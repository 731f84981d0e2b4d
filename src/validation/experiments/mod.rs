//! The registered experiments. Add a line to [`registry`] to add an experiment.

use super::Experiment;

/// Every experiment of the campaign, in report order.
pub fn registry() -> Vec<Box<dyn Experiment>> {
    vec![]
}
