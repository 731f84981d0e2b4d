//! Bad input at every entry point of the engine: a typed error of class BadInput, never a
//! panic or a NaN.

mod common;

use common::cloud;
use nalgebra::DMatrix;
use sinkflow::sinkhorn::{
    divergence, solve, solve_matrix, solve_symmetric, solve_symmetric_warm, solve_warm, CostMatrix,
    Geometry, PointCloud, SinkhornError, SinkhornParams, Stepper,
};
use sinkflow::{Classify, Cost, ErrorClass};

fn bad<T: std::fmt::Debug>(r: Result<T, SinkhornError>) -> SinkhornError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.class(), ErrorClass::BadInput, "{e}");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn point_cloud_validation() {
    let m = DMatrix::from_row_slice(3, 2, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert!(PointCloud::uniform(&m).is_ok());
    assert_eq!(
        bad(PointCloud::uniform(&DMatrix::<f64>::zeros(0, 2))),
        SinkhornError::EmptyCloud
    );
    assert_eq!(
        bad(PointCloud::uniform(&DMatrix::<f64>::zeros(3, 0))),
        SinkhornError::ZeroDimension
    );
    let mut nan = m.clone();
    nan[(2, 1)] = f64::NAN;
    assert!(matches!(
        bad(PointCloud::uniform(&nan)),
        SinkhornError::NonFinite { index: 5, .. }
    ));
    let mut inf = m.clone();
    inf[(0, 0)] = f64::INFINITY;
    assert!(matches!(
        bad(PointCloud::uniform(&inf)),
        SinkhornError::NonFinite { index: 0, .. }
    ));
    assert!(matches!(
        bad(PointCloud::new(&m, Some(vec![0.5, -0.1, 0.6]), false)),
        SinkhornError::NegativeWeight { index: 1, .. }
    ));
    assert!(matches!(
        bad(PointCloud::new(&m, Some(vec![0.5, f64::NAN, 0.5]), true)),
        SinkhornError::NonFinite { .. }
    ));
    assert!(matches!(
        bad(PointCloud::new(&m, Some(vec![0.5, 0.5, 0.5]), false)),
        SinkhornError::WeightsNotNormalised { .. }
    ));
    // normalise = true rescales
    let c = PointCloud::new(&m, Some(vec![1.0, 1.0, 2.0]), true).unwrap();
    assert_eq!(c.weights(), &[0.25, 0.25, 0.5]);
    // within 1e-12 n is accepted as is
    assert!(PointCloud::new(&m, Some(vec![0.5, 0.25, 0.25 + 1e-13]), false).is_ok());
    assert_eq!(
        bad(PointCloud::new(&m, Some(vec![0.0; 3]), true)),
        SinkhornError::ZeroMass
    );
    assert!(matches!(
        bad(PointCloud::new(&m, Some(vec![1.0]), true)),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(PointCloud::from_flat(vec![1.0, 2.0, 3.0], 2, None, false)),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert_eq!(
        bad(PointCloud::from_flat(vec![], 2, None, false)),
        SinkhornError::EmptyCloud
    );
    // with_weights validates too
    assert!(matches!(
        bad(c.with_weights(vec![1.0, -1.0, 1.0], true)),
        SinkhornError::NegativeWeight { .. }
    ));
}

#[test]
fn cost_matrix_validation() {
    let c = DMatrix::from_row_slice(2, 2, &[0.0, 1.0, 1.0, 0.0]);
    assert!(CostMatrix::new(&c, None, None, false).is_ok());
    let mut n = c.clone();
    n[(1, 0)] = f64::NAN;
    assert!(matches!(
        bad(CostMatrix::new(&n, None, None, false)),
        SinkhornError::NonFinite { .. }
    ));
    assert_eq!(
        bad(CostMatrix::new(&DMatrix::zeros(0, 3), None, None, false)),
        SinkhornError::EmptyCloud
    );
    assert!(matches!(
        bad(CostMatrix::new(&c, Some(vec![1.0, 0.0, 0.0]), None, false)),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(CostMatrix::from_flat(vec![0.0; 3], 2, 2, None, None, false)),
        SinkhornError::DimensionMismatch { .. }
    ));
}

#[test]
fn parameter_validation_at_every_solver() {
    let x = cloud(1, 5, 2, 0.0, false);
    let y = cloud(2, 4, 2, 0.0, false);
    let cm = CostMatrix::new(&DMatrix::from_element(2, 3, 1.0), None, None, false).unwrap();
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let p = SinkhornParams::new(eps);
        assert!(matches!(
            bad(solve(&x, &y, &p)),
            SinkhornError::InvalidEps { .. }
        ));
        assert!(matches!(
            bad(solve_symmetric(&x, &p)),
            SinkhornError::InvalidEps { .. }
        ));
        assert!(matches!(
            bad(divergence(&x, &y, &p)),
            SinkhornError::InvalidEps { .. }
        ));
        assert!(matches!(
            bad(solve_matrix(&cm, &p)),
            SinkhornError::InvalidEps { .. }
        ));
        assert!(matches!(
            bad(Stepper::cold(&x, &y, eps, Cost::SqEuclidean)),
            SinkhornError::InvalidEps { .. }
        ));
    }
    for tol in [0.0, -1e-9, f64::NAN] {
        let p = SinkhornParams::new(1.0).with_tol(tol);
        assert!(matches!(
            bad(solve(&x, &y, &p)),
            SinkhornError::InvalidTolerance { .. }
        ));
        assert!(matches!(
            bad(solve_symmetric(&x, &p)),
            SinkhornError::InvalidTolerance { .. }
        ));
    }
    let p = SinkhornParams::new(1.0).with_max_iters(0);
    assert!(matches!(
        bad(solve(&x, &y, &p)),
        SinkhornError::InvalidParameter { .. }
    ));
}

#[test]
fn shape_and_warm_start_validation() {
    let x = cloud(1, 5, 2, 0.0, false);
    let y3 = cloud(2, 4, 3, 0.0, false);
    let y = cloud(3, 4, 2, 0.0, false);
    let p = SinkhornParams::new(1.0);
    assert!(matches!(
        bad(solve(&x, &y3, &p)),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(divergence(&x, &y3, &p)),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(Stepper::cold(&x, &y3, 1.0, Cost::SqEuclidean)),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(solve_warm(&x, &y, &p, &[0.0; 4], &[0.0; 4])),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(solve_warm(
            &x,
            &y,
            &p,
            &[0.0; 5],
            &[0.0, f64::NAN, 0.0, 0.0]
        )),
        SinkhornError::NonFinite { .. }
    ));
    assert!(matches!(
        bad(solve_symmetric_warm(&x, &p, &[0.0; 3])),
        SinkhornError::DimensionMismatch { .. }
    ));
    assert!(matches!(
        bad(solve_symmetric_warm(&x, &p, &[f64::INFINITY; 5])),
        SinkhornError::NonFinite { .. }
    ));
    let g = Geometry::Clouds { x: &x, y: &y };
    assert!(matches!(
        bad(Stepper::from_geometry(g, &p, &[0.0; 5], &[0.0; 3])),
        SinkhornError::DimensionMismatch { .. }
    ));
    let mut st = Stepper::cold(&x, &y, 1.0, Cost::SqEuclidean).unwrap();
    assert!(matches!(
        bad(st.set_potentials(&[0.0; 5], &[f64::NAN; 4])),
        SinkhornError::NonFinite { .. }
    ));
}

#[test]
fn overflowing_coordinates_are_rejected_not_nan() {
    let x = PointCloud::from_flat(vec![1e200, -1e200], 1, None, false).unwrap();
    let p = SinkhornParams::new(1.0);
    assert!(matches!(
        bad(solve(&x, &x, &p)),
        SinkhornError::InvalidParameter { .. }
    ));
    assert!(matches!(
        bad(solve_symmetric(&x, &p)),
        SinkhornError::InvalidParameter { .. }
    ));
}

#[test]
#[should_panic(expected = "potential length")]
fn c_transform_shape_mismatch_is_a_caller_bug() {
    // Functions that take raw potentials treat a length mismatch as a programming error
    // (assert + track_caller, STYLE.md practice 5), not as user input.
    let y = cloud(4, 3, 2, 0.0, false);
    sinkflow::sinkhorn::c_transform(&[0.0; 2], &y, &[0.0, 0.0], 1.0, Cost::SqEuclidean);
}
