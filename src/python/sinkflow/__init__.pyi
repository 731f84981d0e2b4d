"""sinkflow: entropic optimal-transport flows (numpy bindings of the Rust crate).

Conventions: cost "sq" is |x-y|^2 (default), "half-sq" is |x-y|^2/2; eps multiplies
KL(P | a x b); OT_eps = <P,C> + eps KL (``.ot``, OTT-JAX's reg_ot_cost); <P,C> is
``.transport_cost`` (POT's ot.sinkhorn2 with reg = eps, M = C); GeomLoss's
SamplesLoss("sinkhorn", p=2, blur=b) is divergence(..., eps=b**2, cost="half-sq").
"""

import os
from typing import Any, Dict, List, Optional, Sequence, Union

from . import finite as finite
from . import gaussian as gaussian
from . import particles as particles
from . import pma as pma
from . import sinkhorn as sinkhorn

__version__: str

class InputError(ValueError):
    """Bad input (NaN/inf, shapes, eps <= 0, invalid covariance or weights, unknown option)."""

class ConvergenceError(RuntimeError):
    """Numerical failure on valid input (non-convergence, breakdown, integration failure).

    ``residual`` is the final residual (or None); ``result`` the partial result (or None),
    the object that ``allow_nonconvergence=True`` would have returned.
    """

    residual: Optional[float]
    result: Any

def experiments() -> List[Dict[str, str]]:
    """The validation experiments ``[{"id", "title", "source"}]``, in campaign order."""

def validate(
    only: Union[None, str, Sequence[str]] = None,
    profile: str = "quick",
    out: Union[None, str, "os.PathLike[str]"] = None,
    seed: int = 1,
) -> Dict[str, Any]:
    """Run the validation campaign (``sinkflow validate``); returns summary.json as a dict
    (plus ``"out"``, the report directory: a new temporary directory when ``out`` is None)."""
