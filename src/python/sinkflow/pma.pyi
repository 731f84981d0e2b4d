"""The parabolic Monge-Ampere flow against Sinkhorn/IPFP iterates (seed 002).

Gaussian case (closed form): e^{-f} = N(0, sigma), e^{-g} = N(0, theta), phi_0 = |x|^2/2;
iterate k of IPFP at eps is compared with the PMA at t = k eps.

Grid case (``grid``, ``grid_ipfp``; the CLI's ``pma grid`` / ``pma ipfp``): densities e^{-f},
e^{-g} given by their potentials at the nodes of a 1-D grid (``f`` of shape (n,)) or of an
n x n grid (shape (n, n), row-major, node (i, j) at ((i + o)/n, (j + o)/n) with o = 0 on the
torus, 1/2 on the box), or by catalogue names (then ``n`` is required; 1-D: ``uniform``,
``cos:A:K``, ``gauss:M:S``, ``mix:W:M:S[:W:M:S...]``, ``pushed:C:G``; 2-D: ``uniform``,
``cos:A:K``, ``gauss:M1:M2:S11:S12:S22``, ``mix:W:M1:M2:S11:S12:S22[:...]``, ``pushed:C:G``).
Domains: ``"torus"`` ([0,1)^d, nodes j/n), ``"interval"`` (1-D [0,1], nodes (j+1/2)/n),
``"box"`` (2-D [0,1]^2, cell-centred; in 1-D the interval). The dimension is that of the
arrays; with two names it is ``dim`` (default 2 for ``"box"``, else 1). The grid mean of
e^{-f} and e^{-g} must be 1 within 1e-6 unless ``normalise=True`` (then they are rescaled).

The result is a dict of arrays over the K + 1 output times (``samples`` = K): ``x`` (n,) or
(n, n, 2), ``t`` (K+1,), ``phi`` and ``rho`` (K+1, n) or (K+1, n, n), ``grad_phi`` (K+1, n) or
(K+1, n, n, 2) (the lift, not reduced mod 1 on the torus), ``residual`` (K+1,) =
max |f + log rho|; the same doubles as ``sinkflow pma grid|ipfp --json`` (whose 2-D lists
are these arrays flattened row-major).
"""

from typing import Any, Dict, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

def riccati(sigma: ArrayLike, theta: ArrayLike, times: ArrayLike) -> NDArray[np.float64]:
    """A_t (len(times), d, d), the Hessian of the PMA solution, in closed form."""

def ipfp(sigma: ArrayLike, theta: ArrayLike, eps: float, k: int) -> NDArray[np.float64]:
    """P_0..P_k (k+1, d, d), the Hessians of the IPFP iterates phi_k."""

def compare(sigma: ArrayLike, theta: ArrayLike, eps: float, t_end: float) -> Dict[str, Any]:
    """IPFP at k = round(t_end/eps) beside the PMA at t_end: {"k", "p", "a", "w2",
    "correction", "correction_limit", ...}."""

def grid(f: Union[ArrayLike, str], g: Union[ArrayLike, str], domain: str, t_end: float, dt: float, *, scheme: str = "explicit", samples: int = 1, phi0: Optional[ArrayLike] = None, n: Optional[int] = None, dim: Optional[int] = None, normalise: bool = False) -> Dict[str, Any]:
    """The PMA d/dt phi = log det D^2 phi - g(grad phi) + f on a 1-D or 2-D grid, from phi_0
    (nodal values, same layout as ``f``; default |x|^2/2, which must be discretely convex and,
    on the torus, phi_0 - |x|^2/2 periodic), by fixed steps ``dt`` (t_end/dt a whole number
    within 1e-9; ``samples`` must divide the number of steps).

    ``scheme="explicit"``: forward Euler under the CFL bound (h^2 min phi''/2 in 1-D,
    h^2 min det H/(2 tr H) in 2-D; past it InputError names the largest stable dt);
    ``"implicit"``: backward Euler, Newton with an LU factorisation.

    Returns {"x", "t", "phi", "grad_phi", "rho", "residual"} (module docstring).
    Raises InputError (bad grid, densities, phi0, dt, scheme) or ConvergenceError (loss of
    convexity, Newton failure)."""

def grid_ipfp(f: Union[ArrayLike, str], g: Union[ArrayLike, str], domain: str, eps: float, t_end: float, *, samples: int = 1, n: Optional[int] = None, dim: Optional[int] = None, normalise: bool = False) -> Dict[str, Any]:
    """The seed's IPFP on the same grids through the Sinkhorn engine: k = round(t_end/eps)
    iterations (kernel exp(<x,y>/eps), i.e. cost |x-y|^2/2; periodic d(x,y)^2/2 on the torus),
    phi_k, its exact gradient (barycentric projection), rho_k and the residual at the K + 1
    iterations round(i k/K), at times i k eps / K.

    Returns the fields of ``grid`` plus ``"k"``. A grid too coarse for eps (eps < 4 h^2) is an
    InputError naming 4 h^2."""

def particle_ipfp(x: ArrayLike, y: ArrayLike, eps: float, t_end: float) -> Dict[str, Any]:
    """The seed's IPFP on samples x (n, d) of e^{-f} and y (m, d) of e^{-g} (uniform weights,
    cost |x-y|^2/2): k = round(t_end/eps) iterations (half up, at least 1), one output time
    t = k eps (the CLI's ``pma particles``).

    Returns {"k", "t" (1,), "x" (n, d), "phi" (1, n) = phi_k(x_i) = |x_i|^2/2 - f_i,
    "grad_phi" (1, n, d) (barycentric projection), "rho_ratio" (1, n) = rho_k / e^{-f} at the
    samples (1 at a fixed point), "residual" (1,) = max_i |f + log rho_k|}."""

def mirror(energy: str, t_end: float, *, s0: Optional[ArrayLike] = None, theta: Optional[ArrayLike] = None, target: Optional[ArrayLike] = None, mirror: Optional[str] = None, samples: int = 10) -> Dict[str, Any]:
    """The Wasserstein mirror gradient flow of Gaussians beside the Wasserstein gradient flow of
    the same energy (the CLI's ``pma mirror``), at the samples + 1 times i t_end / samples.

    ``energy="entropy"`` (F = int rho log rho) or ``"kl"`` (F = KL(. | N(0, target)), needs
    ``target``): rho_0 = N(0, s0), the mirror is W2^2(., N(0, theta))/2; returns {"t",
    "mirror_cov" (K+1, d, d), "wasserstein_cov" (K+1, d, d)}.
    ``energy="euclidean"``: the seed's Euclidean mirror descent for F(x) = x^2/2 from Z_0 = 1
    with ``mirror`` = "quadratic" (u = x^2/2), "quartic" (u = x^4) or "reciprocal" (u = 1/x),
    in closed form; returns {"t", "mirror_z", "gradient_flow_z" (= e^{-t})}."""
