"""Per-call overhead of the Python bindings on small inputs.

overhead = (time of one Python call) - (time of the same library call timed inside Rust,
`sinkflow.sinkhorn._time_solve`, which builds the clouds and solves exactly as the binding
does, with no Python in the loop). Both are the fastest of several interleaved rounds (the
machine is shared: the minimum is the least disturbed estimate). Run:

    python tests/python/bench_overhead.py
"""

import time

import numpy as np

import sinkflow
from sinkflow import gaussian, sinkhorn


def per_call(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main():
    rng = np.random.default_rng(0)
    rows = []
    for n in (1, 4, 16, 64):
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 0.5
        reps = 200 if n < 64 else 50
        py, rs = [], []
        for _ in range(40):
            py.append(per_call(lambda: sinkhorn.solve(x, y, 1.0), reps))
            rs.append(sinkhorn._time_solve(x, y, 1.0, reps))
        p, r = min(py), min(rs)
        rows.append((f"sinkhorn.solve n=m={n}, d=2, eps=1", p, r))
    m1, s1, m2, s2 = np.zeros(2), np.eye(2), np.ones(2), np.diag([2.0, 0.5])
    g = min(per_call(lambda: gaussian.divergence(m1, s1, m2, s2, 0.5), 5000) for _ in range(7))
    rows.append(("gaussian.divergence d=2 (total)", g, float("nan")))
    print(f"sinkflow {sinkflow.__version__}")
    print(f"{'call':<40} {'python (us)':>12} {'rust (us)':>10} {'overhead (us)':>14}")
    for name, p, r in rows:
        print(f"{name:<40} {p * 1e6:12.2f} {r * 1e6:10.2f} {(p - r) * 1e6:14.2f}")


if __name__ == "__main__":
    main()
