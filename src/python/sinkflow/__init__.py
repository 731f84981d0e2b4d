"""sinkflow: entropic optimal-transport flows, exact and discrete, side by side.

numpy-native bindings of the Rust crate ``sinkflow``.

Conventions (the same as the crate's; see each function's docstring):

* cost ``cost="sq"`` is ``c(x, y) = |x - y|^2`` (the default; OTT-JAX's ``SqEuclidean``);
  ``cost="half-sq"`` is ``|x - y|^2 / 2`` (GeomLoss's ``p=2`` cost);
* ``eps`` multiplies KL(P | a x b) and is in the units of the cost;
* ``OT_eps = <P, C> + eps KL(P | a x b)`` is ``result.ot`` (OTT-JAX's ``reg_ot_cost``);
  ``<P, C>`` is ``result.transport_cost`` (what POT's ``ot.sinkhorn2`` returns with
  ``reg = eps`` and ``M = C``);
* GeomLoss's ``SamplesLoss("sinkhorn", p=2, blur=b)`` uses the cost ``|x-y|^2/2`` and
  ``eps = b^2``: it is ``divergence(..., eps=b**2, cost="half-sq")``.
* ``S_eps = OT_eps(mu, nu) - OT_eps(mu, mu)/2 - OT_eps(nu, nu)/2`` (debiased).

Inputs are any float64 / float32 array-likes, C- or Fortran-ordered; points have shape (n, d)
or (n,) for d = 1. float32 input is computed in float64. Bad input raises ``InputError``
(a ``ValueError``); a numerical failure or non-convergence raises ``ConvergenceError`` (a
``RuntimeError``) carrying ``residual`` and the partial ``result``, unless
``allow_nonconvergence=True`` is passed. Long calls release the GIL and stop on Ctrl-C.
"""

import json as _json
import os as _os
import sys as _sys
import tempfile as _tempfile

from . import _sinkflow
from ._sinkflow import ConvergenceError, InputError, __version__

gaussian = _sinkflow.gaussian
sinkhorn = _sinkflow.sinkhorn
particles = _sinkflow.particles
finite = _sinkflow.finite
pma = _sinkflow.pma

# Make `import sinkflow.gaussian` and `from sinkflow.sinkhorn import solve` work.
for _name in ("gaussian", "sinkhorn", "particles", "finite", "pma"):
    _sys.modules[__name__ + "." + _name] = getattr(_sinkflow, _name)
del _name


def experiments():
    """The validation experiments, in campaign order.

    Returns a list of dicts ``{"id", "title", "source"}``; an ``id`` is what ``validate(only=...)``
    takes (the CLI's ``sinkflow validate --only ID``).
    """
    return [
        {"id": i, "title": t, "source": s} for (i, t, s) in _sinkflow._experiments()
    ]


def validate(only=None, profile="quick", out=None, seed=1):
    """Run the validation campaign (``sinkflow validate``) and return its summary.

    Parameters
    ----------
    only : list of str or str, optional
        Experiment ids to run (see ``experiments()``); all of them when None.
    profile : {"quick", "full"}
        ``quick`` takes minutes on 2 cores (all experiments); ``full`` the long versions.
    out : path, optional
        Directory for ``REPORT.md``, ``summary.json`` and ``plots/``; a new temporary
        directory when None (its path is returned as ``summary["out"]``).
    seed : int
        Campaign seed (experiments that sample derive their replicates' seeds from it).

    Returns
    -------
    dict
        The content of ``summary.json`` (``{"experiments": [{"id", "claim", "predicted",
        "measured", "tolerance", "verdict", "plots", "seconds", ...}], ...}``) plus ``"out"``.
        Verdicts are computed from measured numbers; a ``"fail"`` is a finding, not an error.

    Raises
    ------
    InputError
        An unknown id or profile, an unwritable ``out``.
    """
    if only is None:
        only = []
    elif isinstance(only, str):
        only = [only]
    else:
        only = [str(i) for i in only]
    if out is None:
        out = _tempfile.mkdtemp(prefix="sinkflow-validate-")
    out = _os.fspath(out)
    path = _sinkflow._validate(only, str(profile), out, int(seed))
    with open(path, encoding="utf-8") as f:
        summary = _json.load(f)
    summary["out"] = out
    return summary


__all__ = [
    "ConvergenceError",
    "InputError",
    "__version__",
    "experiments",
    "finite",
    "gaussian",
    "particles",
    "pma",
    "sinkhorn",
    "validate",
]
