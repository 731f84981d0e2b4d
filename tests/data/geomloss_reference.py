"""Reference values of the debiased Sinkhorn divergence from GeomLoss, for
tests/sinkhorn_geomloss.rs.

Run (CPU, float64):  python tests/data/geomloss_reference.py
Writes tests/data/geomloss_reference.json next to this script.

Inputs: the deterministic Weyl-sequence clouds of sinkhorn_reference.py (imported from it; x
uses s = 0, shift 0; y uses s = 1, shift 0.3; non-uniform weights), reproduced exactly by the
Rust test, so no point data is stored.

Convention mapping. GeomLoss `SamplesLoss("sinkhorn", p=2, blur=b, debias=True)` uses the cost
|x-y|^2/2 and the temperature b^2, and returns the debiased divergence
S^half_{b^2}(mu, nu) = OT^half(mu,nu) - OT^half(mu,mu)/2 - OT^half(nu,nu)/2 with the entropic
term eps*KL(pi | mu x nu) (Feydy et al. 2019). In sinkflow this is
`divergence(x, y, SinkhornParams::new(b^2).with_cost(Cost::HalfSqEuclidean))`, equivalently
S_{2 b^2}/2 with the cost |x-y|^2.

GeomLoss has no stopping tolerance: it anneals the temperature from the diameter down to b^2
with ratio `scaling` per iteration. The value is therefore computed for scaling in
{0.99, 0.995, 0.999} and the spread of the last two is stored as `geomloss_spread`, an estimate
of GeomLoss's own error; the Rust test allows 10 x that spread (at least 1e-9 relative).
"""

import json
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from sinkhorn_reference import cloud  # noqa: E402  (same generator as the POT/OTT data)

import geomloss  # noqa: E402

torch.set_default_dtype(torch.float64)

CASES = [dict(d=d, n=200, m=150, blur2=b2) for d in (1, 2, 5) for b2 in (0.05, 0.5, 2.0)]


def value(x, a, y, b, blur2, scaling):
    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=float(np.sqrt(blur2)), debias=True,
                                scaling=scaling, backend="tensorized")
    t = lambda z: torch.tensor(z, dtype=torch.float64)
    return float(loss(t(a), t(x), t(b), t(y)))


def main():
    out = []
    for c in CASES:
        x, a = cloud(c["n"], c["d"], 0, 0.0)
        y, b = cloud(c["m"], c["d"], 1, 0.3)
        vals = {s: value(x, a, y, b, c["blur2"], s) for s in (0.99, 0.995, 0.999)}
        v = vals[0.999]
        spread = abs(vals[0.999] - vals[0.995])
        out.append(dict(c, divergence_half_cost=v, geomloss_spread=spread,
                        values_by_scaling={str(k): w for k, w in vals.items()}))
        print(c, v, spread, file=sys.stderr)
    doc = dict(
        generator="tests/data/geomloss_reference.py",
        versions=dict(geomloss=geomloss.__version__, torch=torch.__version__, numpy=np.__version__),
        convention="GeomLoss p=2, blur=b, debias=True  ==  sinkflow divergence, cost |x-y|^2/2, eps=b^2",
        cases=out,
    )
    with open(os.path.join(here, "geomloss_reference.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
