#!/usr/bin/env python3
"""50-digit references for the Gaussian closed forms at extreme spectra (spectra spanning
1e-8 .. 1e8, eps from 1e-6 to 1e2). Writes gaussian_extreme_reference.json next to this script:

    python3 tests/data/gaussian_extreme_reference.py

Needs only mpmath. Inputs are exact doubles (JSON round-trips them); values are computed from
those doubles at 50 significant digits with the M-form of MATH.md section 1 (no inverse):
    M = (A^{1/2} B A^{1/2} + eps^2/16 I)^{1/2}
    OT = |a-b|^2 + tr A + tr B - 2 tr M + eps/2 [d + log det(2/eps M + I/2)]
    S = OT(mu,nu) - OT(mu,mu)/2 - OT(nu,nu)/2
Cases: `diagonal` (both covariances diagonal), `self` (mu against itself), `rotated`
(Q D1 Q^T against Q D2 Q^T: commuting, not diagonal) and `general` (non-commuting).
"""

import json
import math
import os
import random

import mpmath as mp

mp.mp.dps = 50


def psd_sqrt(m):
    e, q = mp.eigsy(m)
    d = m.rows
    s = mp.matrix(d, d)
    for k in range(d):
        lam = max(e[k], mp.mpf(0))
        r = mp.sqrt(lam)
        for i in range(d):
            for j in range(d):
                s[i, j] += q[i, k] * r * q[j, k]
    return s


def ot(a_mean, a, b_mean, b, eps):
    d = len(a_mean)
    A = mp.matrix(a)
    B = mp.matrix(b)
    As = psd_sqrt(A)
    inner = As * B * As + (mp.mpf(eps) ** 2 / 16) * mp.eye(d)
    inner = (inner + inner.T) / 2
    M = psd_sqrt(inner)
    gap = sum((mp.mpf(x) - mp.mpf(y)) ** 2 for x, y in zip(a_mean, b_mean))
    tr = lambda m: sum(m[i, i] for i in range(d))
    L = mp.log(mp.det((2 / mp.mpf(eps)) * M + mp.eye(d) / 2))
    return gap + tr(A) + tr(B) - 2 * tr(M) + mp.mpf(eps) / 2 * (d + L)


def orthogonal(d, rng):
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


def qdq(q, dg):
    d = len(dg)
    m = [[sum(q[i][k] * dg[k] * q[j][k] for k in range(d)) for j in range(d)] for i in range(d)]
    return [[(m[i][j] + m[j][i]) / 2 for j in range(d)] for i in range(d)]


def diag(v):
    return [[v[i] if i == j else 0.0 for j in range(len(v))] for i in range(len(v))]


def main():
    rng = random.Random(20261130)
    cases = []
    spectra = [
        ([1e8, 1e-6], [1e8, 1e-6]),
        ([1e8, 1e-6], [2e8, 3e-6]),
        ([1e4, 1.0, 1e-8], [2e4, 0.5, 3e-8]),
        ([1e-8, 1e-8, 1e4], [1e4, 1e-8, 1e-8]),
    ]
    for eps in [1e-6, 1e-2, 1.0, 1e2]:
        for da, db in spectra:
            d = len(da)
            ma = [0.0] * d
            mb = [rng.uniform(-1, 1) for _ in range(d)]
            q = orthogonal(d, rng)
            inputs = [
                ("diagonal", diag(da), diag(db), mb),
                ("self", diag(da), diag(da), ma),
                ("rotated", qdq(q, da), qdq(q, db), mb),
                ("general", qdq(q, da), qdq(orthogonal(d, rng), db), mb),
            ]
            for kind, a, b, mbv in inputs:
                ab = ot(ma, a, mbv, b, eps)
                aa = ot(ma, a, ma, a, eps)
                bb = ot(mbv, b, mbv, b, eps)
                cases.append(
                    {
                        "kind": kind,
                        "eps": eps,
                        "mean_a": ma,
                        "cov_a": a,
                        "mean_b": mbv,
                        "cov_b": b,
                        "ot_ab": mp.nstr(ab, 30),
                        "ot_aa": mp.nstr(aa, 30),
                        "ot_bb": mp.nstr(bb, 30),
                        "divergence": mp.nstr(ab - aa / 2 - bb / 2, 30),
                    }
                )
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gaussian_extreme_reference.json")
    with open(out, "w") as f:
        json.dump({"generator": "tests/data/gaussian_extreme_reference.py", "mpmath": mp.__version__,
                   "dps": 50, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
