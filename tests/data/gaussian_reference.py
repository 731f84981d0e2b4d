#!/usr/bin/env python3
"""Held-out 50-digit reference values for the Gaussian closed forms of sinkflow.

Writes gaussian_reference.json next to this script. Run from anywhere:

    python3 tests/data/gaussian_reference.py

Needs only mpmath (pip install mpmath). The inputs are generated here with a seeded
`random.Random` in double precision and stored exactly (JSON floats round-trip); the reference
values are then computed from those exact doubles at 50 significant digits.

The formulas are written independently of the Rust code (which uses a per-eigenvalue
log1p form and singular values of F_A^T F_B):

* invertible A: Janati, Muzellec, Peyre, Cuturi (2020), "Entropic optimal transport between
  unbalanced Gaussian measures has a closed form", Theorem 1 and Proposition 1, with their
  sigma^2 = eps / 2 (their problem is min <c, pi> + 2 sigma^2 KL(pi | mu x nu)):
      D = (4 A^{1/2} B A^{1/2} + sigma^4 I)^{1/2}
      OT = |a-b|^2 + tr A + tr B - tr D + d sigma^2 (1 - log(2 sigma^2))
           + sigma^2 log det(D + sigma^2 I)
      C = 1/2 A^{1/2} D A^{-1/2} - sigma^2/2 I      (cross-covariance of the plan)
      transport = |a-b|^2 + tr A + tr B - 2 tr C
* singular A or B: the M-form of MATH.md section 1 (no inverse anywhere):
      M = (A^{1/2} B A^{1/2} + eps^2/16 I)^{1/2}
      OT = |a-b|^2 + tr A + tr B - 2 tr M + eps/2 [d + log det(2/eps M + I/2)]
      transport = |a-b|^2 + tr A + tr B - 2 tr M + d eps/2
* S_eps = OT(mu,nu) - OT(mu,mu)/2 - OT(nu,nu)/2 (subtraction is harmless at 50 digits)
* W2^2 = |a-b|^2 + tr A + tr B - 2 tr (A^{1/2} B A^{1/2})^{1/2}

Square roots of PSD matrices use mpmath's symmetric eigensolver (eigsy) with eigenvalues
clamped at 0 (a singular input has eigenvalues of size 1e-50 of either sign).
"""

import json
import math
import os
import random

import mpmath as mp

mp.mp.dps = 50

EPSS = [1e-3, 1e-1, 1.0, 10.0, 1e2]
KINDS = ["spd", "wide", "singular", "mixed"]


# ----------------------------------------------------------------------------------------
# inputs (double precision, stored exactly)
# ----------------------------------------------------------------------------------------

def orthogonal(d, rng):
    """Gram-Schmidt on a Gaussian matrix, in double precision (columns orthonormal)."""
    cols = []
    while len(cols) < d:
        v = [rng.gauss(0.0, 1.0) for _ in range(d)]
        for c in cols:
            p = sum(x * y for x, y in zip(v, c))
            v = [x - p * y for x, y in zip(v, c)]
        n = math.sqrt(sum(x * x for x in v))
        if n > 1e-3:
            cols.append([x / n for x in v])
    return [[cols[j][i] for j in range(d)] for i in range(d)]


def with_spectrum(q, lam):
    d = len(lam)
    a = [[0.0] * d for _ in range(d)]
    for i in range(d):
        for j in range(i, d):
            s = sum(q[i][k] * lam[k] * q[j][k] for k in range(d))
            a[i][j] = s
            a[j][i] = s
    return a


def log_spaced(lo, hi, n):
    if n == 1:
        return [lo]
    return [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1)) for i in range(n)]


def spd(d, rng, cond=10.0):
    lam = [math.exp(rng.uniform(-0.5, 0.5) * math.log(cond)) for _ in range(d)]
    return with_spectrum(orthogonal(d, rng), lam)


def wide(d, rng):
    lam = log_spaced(1e-8, 1e4, d) if d > 1 else [10.0 ** rng.uniform(-8, 4)]
    return with_spectrum(orthogonal(d, rng), lam)


def exactly_singular(d, rng):
    """G G^T with dyadic G (entries k/8): exactly representable, exactly singular."""
    r = max(d - 1, 0) if rng.random() < 0.5 else min(1, d - 1)
    if d == 1:
        return [[0.0]]
    g = [[rng.randint(-16, 16) / 8.0 for _ in range(r)] for _ in range(d)]
    a = [[sum(g[i][k] * g[j][k] for k in range(r)) for j in range(d)] for i in range(d)]
    return a


def mean(d, rng):
    return [rng.gauss(0.0, 1.0) for _ in range(d)]


# ----------------------------------------------------------------------------------------
# 50-digit reference
# ----------------------------------------------------------------------------------------

def mpm(a):
    return mp.matrix([[mp.mpf(x) for x in row] for row in a])


def spectral(a, f):
    e, q = mp.eigsy(a)
    d = a.rows
    out = mp.zeros(d, d)
    for k in range(d):
        fk = f(e[k])
        for i in range(d):
            for j in range(d):
                out[i, j] += q[i, k] * fk * q[j, k]
    return out


def psd_sqrt(a):
    return spectral(a, lambda l: mp.sqrt(l) if l > 0 else mp.mpf(0))


def trace(a):
    return mp.fsum(a[i, i] for i in range(a.rows))


def gap2(ma, mb):
    return mp.fsum((mp.mpf(x) - mp.mpf(y)) ** 2 for x, y in zip(ma, mb))


def is_invertible(a):
    e, _ = mp.eigsy(a)
    return min(e) > mp.mpf(10) ** (-30)


def ot_janati(ma, a, mb, b, eps):
    d = a.rows
    sig2 = mp.mpf(eps) / 2
    ra = psd_sqrt(a)
    g = ra * b * ra
    dm = spectral(4 * g + sig2 ** 2 * mp.eye(d), lambda l: mp.sqrt(l))
    value = (gap2(ma, mb) + trace(a) + trace(b) - trace(dm)
             + d * sig2 * (1 - mp.log(2 * sig2)) + sig2 * mp.log(mp.det(dm + sig2 * mp.eye(d))))
    ra_inv = spectral(a, lambda l: 1 / mp.sqrt(l))
    c = ra * dm * ra_inv / 2 - sig2 / 2 * mp.eye(d)
    transport = gap2(ma, mb) + trace(a) + trace(b) - 2 * trace(c)
    return value, transport


def ot_mform(ma, a, mb, b, eps):
    d = a.rows
    e = mp.mpf(eps)
    ra = psd_sqrt(a)
    g = ra * b * ra
    m = spectral(g + e ** 2 / 16 * mp.eye(d), lambda l: mp.sqrt(l))
    base = gap2(ma, mb) + trace(a) + trace(b) - 2 * trace(m)
    value = base + e / 2 * (d + mp.log(mp.det(2 / e * m + mp.eye(d) / 2)))
    transport = base + d * e / 2
    return value, transport


def ot(ma, a, mb, b, eps):
    if is_invertible(a) and is_invertible(b):
        return ot_janati(ma, a, mb, b, eps)
    return ot_mform(ma, a, mb, b, eps)


def w2sq(ma, a, mb, b):
    ra = psd_sqrt(a)
    s = psd_sqrt(ra * b * ra)
    return gap2(ma, mb) + trace(a) + trace(b) - 2 * trace(s)


def main():
    rng = random.Random(20260001)
    cases = []
    for d in range(1, 7):
        for kind in KINDS:
            if kind == "spd":
                a, b = spd(d, rng), spd(d, rng)
            elif kind == "wide":
                a, b = wide(d, rng), wide(d, rng)
            elif kind == "singular":
                a, b = exactly_singular(d, rng), exactly_singular(d, rng)
            else:
                a, b = exactly_singular(d, rng), wide(d, rng)
            ma, mb = mean(d, rng), mean(d, rng)
            A, B = mpm(a), mpm(b)
            w2 = w2sq(ma, A, mb, B)
            for eps in EPSS:
                v_ab, t_ab = ot(ma, A, mb, B, eps)
                v_aa, _ = ot(ma, A, ma, A, eps)
                v_bb, _ = ot(mb, B, mb, B, eps)
                s = v_ab - v_aa / 2 - v_bb / 2
                cases.append({
                    "name": f"d{d}-{kind}-eps{eps:g}",
                    "d": d,
                    "eps": eps,
                    "cost": "sq",
                    "formula": "janati" if (is_invertible(A) and is_invertible(B)) else "m-form",
                    "mean_a": ma, "cov_a": a, "mean_b": mb, "cov_b": b,
                    "ot_eps": float(v_ab),
                    "transport": float(t_ab),
                    "s_eps": float(s),
                    "w2_sq": float(w2),
                    "ot_eps_50": mp.nstr(v_ab, 30),
                    "s_eps_50": mp.nstr(s, 30),
                })
    out = {
        "generator": "tests/data/gaussian_reference.py",
        "mpmath_version": mp.__version__,
        "dps": mp.mp.dps,
        "seed": 20260001,
        "conventions": "cost |x-y|^2, OT_eps = min int c dpi + eps KL(pi | mu x nu)",
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gaussian_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.basename(path)}")


if __name__ == "__main__":
    main()
