"""The parabolic Monge-Ampere flow against Sinkhorn/IPFP iterates (seed 002), Gaussian case:
e^{-f} = N(0, sigma), e^{-g} = N(0, theta), phi_0 = |x|^2/2; iterate k of IPFP at eps is
compared with the PMA at t = k eps.
"""

from typing import Any, Dict

import numpy as np
from numpy.typing import ArrayLike, NDArray

def riccati(sigma: ArrayLike, theta: ArrayLike, times: ArrayLike) -> NDArray[np.float64]:
    """A_t (len(times), d, d), the Hessian of the PMA solution, in closed form."""

def ipfp(sigma: ArrayLike, theta: ArrayLike, eps: float, k: int) -> NDArray[np.float64]:
    """P_0..P_k (k+1, d, d), the Hessians of the IPFP iterates phi_k."""

def compare(sigma: ArrayLike, theta: ArrayLike, eps: float, t_end: float) -> Dict[str, Any]:
    """IPFP at k = round(t_end/eps) beside the PMA at t_end: {"k", "p", "a", "w2",
    "correction", "correction_limit", ...}."""
