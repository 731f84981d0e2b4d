//! The registered experiments. Add a line to [`registry`] to add an experiment.

mod finite;
mod gaussian;

use super::Experiment;

pub mod particles;
pub mod pma;

/// Every experiment of the campaign, in report order.
pub fn registry() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(gaussian::Convergence),
        Box::new(gaussian::Singular),
        Box::new(gaussian::CommutingRates),
        Box::new(gaussian::EpsLimits),
        Box::new(gaussian::OracleChecks),
        Box::new(particles::GaussianCrossval),
        Box::new(particles::EngineClosedForm),
        Box::new(particles::Identifiability),
        Box::new(particles::TemperatureSweep),
        Box::new(particles::SampleComplexity),
        Box::new(finite::Invariants),
        Box::new(finite::SjkoLimit),
        Box::new(finite::Metric),
        Box::new(finite::DoubleWell),
        Box::new(finite::DiracConvex),
        Box::new(finite::Reflected),
        Box::new(finite::Extended),
        Box::new(finite::TwoD),
        Box::new(finite::EpsLimit),
        Box::new(pma::GaussianCase),
        Box::new(pma::GridOrders),
        Box::new(pma::IpfpVsPma),
        Box::new(pma::GridCorrection),
        Box::new(pma::BoxGaussian),
        Box::new(pma::Grid2dCase),
        Box::new(pma::Particles),
        Box::new(pma::MirrorExamples),
        Box::new(pma::BoxGaussian2d),
    ]
}
