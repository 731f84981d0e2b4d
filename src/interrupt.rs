//! Cooperative cancellation of long computations (used by the Python bindings for Ctrl-C).
//!
//! A caller may install a check on the current thread with [`with_check`]; the iterative
//! solvers call [`requested`] once per iteration (the Sinkhorn engine: once per full
//! iteration of the alternating and symmetric solvers, which every flow, SJKO step and IPFP run
//! goes through; the particle flows, the finite-space flows and SJKO, the PMA solvers and the
//! grid IPFP once per step) and stop with a typed "interrupted" error when it returns `true`.
//! The Gaussian ODE integrations are not interruptible (they take milliseconds). With no
//! check installed (the default) [`requested`] is a thread-local read that returns `false`;
//! the CLI's `sinkhorn` subcommand installs a check that only counts iterations for its progress
//! line and never asks for a stop. Results are unchanged either way.
//!
//! The check is thread-local on purpose: it runs on the thread that called the solver (for the
//! bindings, the Python main thread, where signals are delivered), never on rayon workers.

use std::cell::Cell;

thread_local! {
    static CHECK: Cell<Option<fn() -> bool>> = const { Cell::new(None) };
}

/// `true` if the check installed on this thread asks the running computation to stop.
#[inline]
pub fn requested() -> bool {
    CHECK.with(|c| c.get()).is_some_and(|check| check())
}

/// Run `f` with `check` installed on the current thread (restoring the previous one after,
/// also if `f` unwinds).
pub fn with_check<R>(check: fn() -> bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<fn() -> bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CHECK.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CHECK.with(|c| c.replace(Some(check))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_check_means_never_requested() {
        assert!(!requested());
    }

    #[test]
    fn a_check_is_scoped_to_the_call() {
        assert!(with_check(|| true, requested));
        assert!(!with_check(|| false, requested));
        assert!(!requested());
    }
}
