"""The Sinkhorn potential flow on a finite space X = {x_1..x_N} (seed 000), cost |x-y|^2
(or "half-sq"), for E(mu) = sum V mu. The Gibbs kernel's conditioning is checked first:
past ``max_condition`` the run is refused (InputError naming the largest safe eps).
"""

from typing import Any, Dict, Optional, Sequence, Tuple, Union

from numpy.typing import ArrayLike

def flow(points: ArrayLike, v: ArrayLike, mu0: ArrayLike, eps: float, dt: float, steps: int, *, cost: str = "sq", scheme: str = "implicit", precision: str = "double", max_condition: Optional[float] = None) -> Dict[str, Any]:
    """Resolvent flow in the b-variable ("implicit" or "reflected"): {"t", "mu" (steps+1, N),
    "a", "energy", "mass", "kkt_residual", "cond_k", "initial_error"}.

    ``precision="double-double"`` runs the kernel algebra and the LCP in double-double (about 32
    significant digits), so that grids past the double-precision safe range (cond K > 1e10) are
    still certified; ``max_condition`` defaults to 1e10 in double and 1e26 in double-double
    (same as ``sinkflow finite flow --precision``)."""

def sjko(points: ArrayLike, v: ArrayLike, mu0: ArrayLike, eps: float, tau: float, steps: int, *, cost: str = "sq", tol: float = 1e-10, max_newton: int = 300, sinkhorn_tol: float = 1e-13) -> Dict[str, Any]:
    """The Sinkhorn JKO scheme (log domain): {"t", "mu", "energy", "mass", "kkt_residual",
    "newton_iterations", "hessian_cond"}."""

def kernel_condition(points: ArrayLike, eps: float, *, cost: str = "sq", limit: float = 1e10) -> Tuple[float, float]:
    """(cond(K) at eps, the largest eps with cond(K) <= limit)."""

def metric(points: ArrayLike, mu: ArrayLike, sigma: ArrayLike, eps: float, *, cost: str = "sq") -> float:
    """The metric tensor g_mu(sigma, sigma) of S_eps at the probability ``mu`` (N,), for a
    tangent direction ``sigma`` (N,) of zero total mass (the CLI's ``finite metric``)."""

def wasserstein_flow(points: Union[ArrayLike, Tuple[ArrayLike, ArrayLike]], v: ArrayLike, mu0: ArrayLike, times: Sequence[float]) -> Dict[str, Any]:
    """The Wasserstein gradient flow of E(mu) = sum V mu by upwind finite volumes (explicit
    Euler under the CFL bound; mass conserved to round-off, masses stay >= 0), to put beside
    the Sinkhorn potential flow.

    1-D: ``points`` strictly increasing (N,), ``v``, ``mu0`` (N,). 2-D: ``points = (xs, ys)``
    (a tuple), two strictly increasing axes of the tensor grid; ``v``, ``mu0`` of shape (ny, nx) with
    entry [j, i] at (xs[i], ys[j]) (``numpy.meshgrid(xs, ys)`` order) or flat (nx ny,).
    ``times`` ascending, >= 0. Returns {"t", "mu" (len(times), N) or (len(times), ny, nx),
    "steps" (explicit steps taken)}."""
