//! Seed 003 Lemma A.1: interval-arithmetic proof of Miranda's sign conditions, and the
//! Newton zero (a*, b*) of the one-sided drift on the support of p.

use sinkflow::particles::interval::Interval;
use sinkflow::particles::lemma_a1::{
    f1, f2, newton_zero, one_sided_drift, verify_miranda, verify_particle_drift_positive, A_RANGE,
    B_RANGE,
};

#[test]
fn miranda_sign_conditions_are_certified() {
    let r = verify_miranda(64);
    assert!(r.holds, "{r:?}");
    // Certified bounds are strict and of the expected sign.
    assert!(r.f1_left_upper < 0.0 && r.f1_right_lower > 0.0);
    assert!(r.f2_bottom_lower > 0.0 && r.f2_top_upper < 0.0);
}

#[test]
fn enclosures_contain_point_values() {
    // Every enclosure over a sub-box must contain the float evaluation at its corners.
    for a in Interval::new(A_RANGE.0, A_RANGE.1).split(5) {
        for b in Interval::new(B_RANGE.0, B_RANGE.1).split(5) {
            let (e1, e2) = (f1(a, b), f2(a, b));
            for &(x, y) in &[(a.lo(), b.lo()), (a.hi(), b.hi()), (a.lo(), b.hi())] {
                assert!(e1.contains(f1(x, y)) && e2.contains(f2(x, y)));
            }
        }
    }
}

#[test]
fn newton_zero_lies_in_the_box() {
    let z = newton_zero(-1.35, 0.75, 50).unwrap();
    assert!((A_RANGE.0..=A_RANGE.1).contains(&z.a), "{z:?}");
    assert!((B_RANGE.0..=B_RANGE.1).contains(&z.b), "{z:?}");
    // F1, F2 are O(1) sums of four terms: at a Newton fixed point their residual is a few
    // ulps of the terms (~1e-16); 1e-12 is the claim of the brief, with a wide margin.
    assert!(z.residual <= 1e-12, "{z:?}");
    assert!(z.drift_residual <= 1e-12, "{z:?}");
    // q ≠ p: the zero is not {0, 1}.
    assert!(z.a < -1.0 && z.b > 0.5 && z.b < 0.95);
}

#[test]
fn particle_evaluated_drift_has_no_zero_in_the_box() {
    // The velocity of particle a never vanishes on R: a certified lower bound > 0.
    let lower = verify_particle_drift_positive(32);
    assert!(lower > 0.0, "lower bound {lower}");
    assert!(one_sided_drift(-1.33, -1.33, 0.74) > 1.0);
}
