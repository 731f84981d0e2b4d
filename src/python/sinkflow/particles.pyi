"""Particle Sinkhorn flows and drifting fields (seed 003).

Drift V(x_i) = sum_j P_XY[i,j] y_j - sum_j P_XX[i,j] x_j with the coupling ``kind``:
"sinkhorn" (converged plans: the S_eps gradient flow), "one-sided" (row softmax of -C/eps),
"two-sided", or "l-step" with L (odd) half-steps. The flow moves the particles with velocity
2 V for cost "sq" (|x-y|^2) and V for "half-sq" (|x-y|^2/2). Points (n, d) or (n,).
"""

from typing import Any, Dict, Optional

from numpy.typing import ArrayLike

def drift(x: ArrayLike, y: ArrayLike, eps: float, *, kind: str = "sinkhorn", L: Optional[int] = None, cost: str = "sq", mask_self: bool = False, tol: float = 1e-9, max_iters: int = 10000, mode: str = "auto", allow_nonconvergence: bool = False) -> Dict[str, Any]:
    """{"v", "t_cross", "t_self" (n, d), "iterations", "converged", "residual"}."""

def flow(x0: ArrayLike, y: ArrayLike, eps: float, t_end: float, dt: float = 0.01, samples: int = 10, *, kind: str = "sinkhorn", L: Optional[int] = None, cost: str = "sq", mask_self: bool = False, tol: float = 1e-9, max_iters: int = 10000, mode: str = "auto", integrator: str = "heun", warm_start: bool = True, keep_positions: bool = True, monitor_divergence: bool = True, monitor_w2: bool = False, allow_nonconvergence: bool = False) -> Dict[str, Any]:
    """The particle flow: {"t" (K+1,), "positions" (K+1, n, d), "means", "covs",
    "divergence" (S_eps(q_t, p)), "w2", "dt", "steps", counters, "converged"}."""
