"""Closed-form entropic OT between Gaussians N(m, S) (S symmetric PSD, singular allowed).

Cost "sq" is c(x, y) = |x-y|^2 (default), "half-sq" is |x-y|^2/2 (every quantity is then the
"sq" one at 2 eps, halved). OT_eps(mu, nu) = min_pi <pi, c> + eps KL(pi | mu x nu) (the KL
relative to the product of the marginals, as OTT-JAX's reg_ot_cost; POT's sinkhorn2 returns
only the transport part <pi, c>). S_eps = OT_eps(mu,nu) - OT_eps(mu,mu)/2 - OT_eps(nu,nu)/2.
Means have shape (d,) (a scalar for d = 1), covariances (d, d) (a scalar for d = 1); float32
and lists are converted to float64. Raises InputError on bad input, ConvergenceError when an
integration fails.
"""

from typing import Any, Dict, Tuple, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

class Potential(TypedDict):
    """q(x) = x^T quad x + lin^T x + constant."""

    quad: NDArray[np.float64]
    lin: NDArray[np.float64]
    constant: float

class Trajectory(TypedDict):
    t: NDArray[np.float64]  # (K+1,)
    means: NDArray[np.float64]  # (K+1, d)
    covs: NDArray[np.float64]  # (K+1, d, d)
    divergence: NDArray[np.float64]  # S_eps(mu_t, target) (W2^2 for bures_flow)
    dissipation: NDArray[np.float64]  # int |v_t|^2 dmu_t
    evaluations: int
    accepted_steps: int
    rejected_steps: int

class GaussianOT:
    """Entropic OT between two Gaussians, in closed form (see ``ot``)."""

    @property
    def value(self) -> float:
        """OT_eps = <pi, c> + eps KL(pi | mu x nu)."""
    @property
    def transport_cost(self) -> float:
        """<pi, c> (POT's sinkhorn2)."""
    @property
    def mutual_information(self) -> float:
        """KL(pi | mu x nu)."""
    @property
    def eps(self) -> float: ...
    @property
    def cost(self) -> str: ...
    @property
    def map_matrix(self) -> NDArray[np.float64]:
        """K (d, d), symmetric: the entropic map is T(x) = m2 + K (x - m1)."""
    @property
    def cross_covariance(self) -> NDArray[np.float64]:
        """C = Cov_pi(X, Y) (d, d)."""
    @property
    def potentials(self) -> Tuple[Potential, Potential]:
        """(f, g) with OT_eps = E_mu f + E_nu g and dpi/d(mu x nu) = exp((f + g - c)/eps)
        (symmetric split of the constant)."""
    @property
    def plan(self) -> Tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The plan pi = N(mean (2d,), cov (2d, 2d))."""
    def map(self, x: ArrayLike) -> NDArray[np.float64]:
        """T(x) = E_pi[Y | X = x] at points (n, d) or one point (d,)."""

def ot(m1: ArrayLike, S1: ArrayLike, m2: ArrayLike, S2: ArrayLike, eps: float, cost: str = "sq") -> GaussianOT:
    """OT_eps(N(m1, S1), N(m2, S2)) with value, transport cost, mutual information,
    potentials (quadratic-form coefficients), plan and map matrix."""

def divergence(m1: ArrayLike, S1: ArrayLike, m2: ArrayLike, S2: ArrayLike, eps: float, cost: str = "sq") -> float:
    """The debiased Sinkhorn divergence S_eps >= 0 (GeomLoss's SamplesLoss("sinkhorn", p=2,
    blur=b) at convergence is divergence(..., eps=b**2, cost="half-sq"))."""

def divergence_parts(m1: ArrayLike, S1: ArrayLike, m2: ArrayLike, S2: ArrayLike, eps: float, cost: str = "sq") -> Dict[str, float]:
    """{"divergence", "ot_ab", "ot_aa", "ot_bb"} (the CLI's ``gaussian divergence --json``)."""

def w2(m1: ArrayLike, S1: ArrayLike, m2: ArrayLike, S2: ArrayLike) -> float:
    """The squared Bures-Wasserstein distance W2^2 (cost |x-y|^2; the eps -> 0 limit of OT_eps)."""

def plan(m1: ArrayLike, S1: ArrayLike, m2: ArrayLike, S2: ArrayLike, eps: float, cost: str = "sq") -> Tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The entropic plan as (mean (2d,), cov (2d, 2d))."""

def map(m1: ArrayLike, S1: ArrayLike, m2: ArrayLike, S2: ArrayLike, eps: float, cost: str = "sq", x: Any = None) -> NDArray[np.float64]:
    """The map matrix K (x None) or T(x) = m2 + K (x - m1) at points x."""

def flow(m0: ArrayLike, S0: ArrayLike, m_target: ArrayLike, S_target: ArrayLike, eps: float, t_end: float, samples: int = 100, *, cost: str = "sq", rtol: float = 1e-10, atol: float = 1e-12, method: str = "dopri5") -> Trajectory:
    """The Wasserstein gradient flow of S_eps(., N(m_target, S_target)) among Gaussians
    (velocity 2 (T_{mu,target} - T_{mu,mu}) for cost "sq"), integrated adaptively
    ("dopri5" or "dop853"), reported at the samples+1 times k t_end / samples."""

def bures_flow(m0: ArrayLike, S0: ArrayLike, m_target: ArrayLike, S_target: ArrayLike, times: ArrayLike) -> Trajectory:
    """The eps -> 0 limit: the W2^2(., target) gradient flow in closed form at ``times``."""
