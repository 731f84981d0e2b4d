"""The log-domain Sinkhorn engine on weighted point clouds.

Points: arrays (n, d), or (n,) for d = 1; float64 or float32 (float32 is computed in float64),
C- or Fortran-ordered, or lists. Weights wx, wy: (n,), summing to 1 (or pass normalise=True);
uniform when None. Cost "sq" is |x-y|^2 (default), "half-sq" is |x-y|^2/2. eps multiplies
KL(P | a x b), in the units of the cost.

* ``result.ot`` = OT_eps = <P,C> + eps KL(P | a x b) (the dual value; OTT-JAX's reg_ot_cost).
* ``result.transport_cost`` = <P,C> (POT's ``ot.sinkhorn2(a, b, M, reg=eps)`` with M = C,
  which is |x-y|^2 for ``ot.dist``'s default metric).
* GeomLoss ``SamplesLoss("sinkhorn", p=2, blur=b)``: cost |x-y|^2/2 and eps = b^2, i.e.
  ``divergence(x, y, b**2, cost="half-sq").divergence`` (at convergence).

Stopping: ``tol`` bounds the L1 marginal violation |P 1 - a|_1 (default 1e-9) within
``max_iters`` iterations; otherwise ConvergenceError (with ``.residual`` and ``.result``)
unless ``allow_nonconvergence=True``. Long solves release the GIL and stop on Ctrl-C.
"""

from typing import Iterator as _It
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

class SinkhornResult:
    ot: float
    """OT_eps = sum a f + sum b g (a certified lower bound; error O(eps * marginal_error))."""
    transport_cost: float
    """<P, C> (POT's sinkhorn2)."""
    primal: float
    """<P,C> + eps KL(P | a x b) of the plan of (f, g); primal - ot is the duality gap."""
    f: NDArray[np.float64]
    """f on the points of x (n,), sinkflow's convention: P = exp((f + g - C)/eps) a x b."""
    g: NDArray[np.float64]
    """g on the points of y (m,)."""
    iterations: int
    marginal_error: float
    converged: bool
    history: NDArray[np.float64]
    mode: str
    truncation_bound: Optional[float]
    """mode "sparse": certified bound on the L1 mass of the dropped plan entries; else None."""
    eps: float
    acceleration: Dict[str, Any]
    """What ran, as the CLI's JSON "acceleration": {"policy": "auto" | "plain",
    "over_relaxation": None | {"kind": "adaptive" | "fixed" | "anderson", "omega": float | None (never
    started), "relaxed_iterations": int, "restored": bool}, "eps_scaling": None | {"stages":
    int, "iterations": int, "start": float}}."""
    @property
    def cost(self) -> str: ...
    @property
    def duality_gap(self) -> float: ...
    def plan(self) -> NDArray[np.float64]:
        """The dense plan P (n, m)."""
    def barycentric_map(self, z: ArrayLike) -> NDArray[np.float64]:
        """The entropic map T(z) = int y dpi(y | z) at new points z (k, d)."""
    def f_at(self, z: ArrayLike) -> NDArray[np.float64]:
        """f extended to new points: f(z) = T(g, nu)(z)."""
    def g_at(self, z: ArrayLike) -> NDArray[np.float64]:
        """g extended to new points: g(z) = T(f, mu)(z)."""

class DivergenceResult:
    divergence: float
    """S_eps = ot_xy - ot_xx/2 - ot_yy/2 (>= 0)."""
    ot_xy: float
    ot_xx: float
    ot_yy: float
    converged: bool
    iterations: Tuple[int, int, int]
    """(cross, self x, self y)."""
    marginal_error: float
    xy: SinkhornResult
    acceleration: Dict[str, Any]
    """The cross solve's acceleration report (= ``xy.acceleration``)."""
    f_xx: NDArray[np.float64]
    f_yy: NDArray[np.float64]

class Iterator(_It[Tuple[str, NDArray[np.float64], NDArray[np.float64], float]]):
    """Half-steps f <- T(g, nu), g <- T(f, mu), alternating from f; each ``next`` returns
    (kind "f" or "g", f, g, violation of the enforced marginal before the step). Its iterates
    are those of the plain solver (``solve(..., plain=True)``), bit for bit."""

    half_steps: int
    f: NDArray[np.float64]
    g: NDArray[np.float64]
    def step_f(self) -> float: ...
    def step_g(self) -> float: ...
    def marginal_errors(self) -> Tuple[float, float]: ...
    def dual_value(self) -> float: ...
    def plan(self) -> NDArray[np.float64]: ...
    def __next__(self) -> Tuple[str, NDArray[np.float64], NDArray[np.float64], float]: ...

def solve(
    x: ArrayLike, y: ArrayLike, eps: float, wx: Optional[ArrayLike] = None, wy: Optional[ArrayLike] = None, *,
    tol: float = 1e-9, max_iters: int = 10000, cost: str = "sq", eps_scaling: bool = False,
    over_relaxation: Union[None, float, str] = None, plain: bool = False, mode: str = "auto",
    normalise: bool = False,
    allow_nonconvergence: bool = False, f0: Optional[ArrayLike] = None, g0: Optional[ArrayLike] = None,
) -> SinkhornResult:
    """Solve OT_eps(mu, nu) from f = g = 0 (or warm-started from f0, g0). ``mode``: "auto",
    "dense", "streaming" (same results) or "sparse" ("auto" picks "sparse" for large clouds in
    d <= 2 at small eps, see below); ``over_relaxation``: a factor in [1, 2), "auto" or "anderson" (Anderson mixing, memory 7).
    By default the solver accelerates (Anderson mixing; eps-scaling from a cold start
    at eps below 1/2000 of the squared diagonal of the bounding box of the supports); ``plain=True`` runs plain
    Sinkhorn (same answer to ``tol``). ``result.acceleration`` says what ran. ``mode="sparse"`` truncates the kernel for small eps (relative
    bound 1e-16; ``truncation_bound`` certifies the dropped mass)."""

def divergence(
    x: ArrayLike, y: ArrayLike, eps: float, wx: Optional[ArrayLike] = None, wy: Optional[ArrayLike] = None, *,
    tol: float = 1e-9, max_iters: int = 10000, cost: str = "sq", eps_scaling: bool = False,
    over_relaxation: Union[None, float, str] = None, plain: bool = False, mode: str = "auto",
    normalise: bool = False,
    allow_nonconvergence: bool = False,
) -> DivergenceResult:
    """The debiased Sinkhorn divergence S_eps (self terms by the averaged symmetric solver)."""

def plan(result: SinkhornResult) -> NDArray[np.float64]:
    """``result.plan()``."""

def barycentric_map(result: SinkhornResult, z: ArrayLike) -> NDArray[np.float64]:
    """``result.barycentric_map(z)``."""

def iterate(
    x: ArrayLike, y: ArrayLike, eps: float, wx: Optional[ArrayLike] = None, wy: Optional[ArrayLike] = None, *,
    cost: str = "sq", mode: str = "auto", normalise: bool = False,
    f0: Optional[ArrayLike] = None, g0: Optional[ArrayLike] = None,
) -> Iterator:
    """A Sinkhorn iteration driven one half-step at a time (see ``Iterator``)."""
