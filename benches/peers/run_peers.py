#!/usr/bin/env python3
"""Side-by-side performance harness: sinkflow against POT, GeomLoss, OTT-JAX and a
hand-vectorised C kernel (the per-iteration yardstick of this CPU).

Run by hand; never by tests or CI. From the repository root:

    python3 -m venv <a directory outside the repository>
    <venv>/bin/pip install -r benches/peers/requirements.txt
    cargo build --release                      # sinkflow rows are skipped without it
    <venv>/bin/python benches/peers/run_peers.py --quick      # N = 1000, 1 repetition
    <venv>/bin/python benches/peers/run_peers.py              # N in {1000, 4000, 16000}

Outputs: benches/results/peers.json, peers.md, peers.png (see --out-dir).

Problem (identical for every library). X ~ N(0, I_d), Y ~ N(1, 0.5 I_d) (mean vector
of ones), N = M points, uniform weights, float64, one fixed seed; the clouds are saved
once as .npy (one point per row) and every worker loads the same files.

sinkflow convention (shared/DESIGN.md): cost c(x,y) = |x-y|^2,
    OT_eps = min_P <P,C> + eps KL(P | a (x) b) = <a,f> + <b,g> at the optimal potentials,
    P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps).

Mapping of each peer to that convention (potentials are mapped to (f, g) above; the
harness then recomputes everything itself, in float64, from (f, g)):
  * POT ot.bregman.sinkhorn_log(a, b, M, reg): M = ot.dist(x, y) (metric 'sqeuclidean'
    = |x-y|^2, not halved), reg = eps. Plan P = exp(log_u_i + log_v_j - M_ij/reg), so
    f = eps (log_u - log a), g = eps (log_v - log b). POT minimises <P,M> + reg sum P log P;
    on the transport polytope this differs from eps KL(P | a(x)b) by a constant, so the
    plan is the same. (POT's sinkhorn2 returns <P,M> only, not OT_eps.)
  * POT ot.bregman.empirical_sinkhorn(..., isLazy=True): same metric and reg; returns the
    log-scalings (f~, g~) with P = exp(f~_i + g~_j - M_ij/reg): f = eps (f~ - log a),
    g = eps (g~ - log b).
  * GeomLoss SamplesLoss("sinkhorn", p=2, blur=s, debias=False, potentials=True): cost
    |x-y|^2 / 2 and temperature eps_G = blur^p = s^2 on that half cost. Since
    <P,C> + eps KL = 2 (<P,C/2> + (eps/2) KL), sinkflow's eps corresponds to
    blur = sqrt(eps / 2) (eps_G = eps/2), the potentials are f = 2 F, g = 2 G and
    OT_eps = 2 x (GeomLoss value).
  * OTT-JAX PointCloud(x, y, epsilon=eps): default cost_fn SqEuclidean = |x-y|^2 (not
    halved); epsilon is absolute because relative_epsilon is left to None. OTT's
    potentials carry the weights: P_ij = exp((f~_i + g~_j - C_ij)/eps), so
    f = f~ - eps log a, g = g~ - eps log b (measured: <a,f~> + <b,g~> differs from OT_eps
    by -2 eps log N with uniform weights). OTT's reg_ot_cost is OT_eps in the sinkflow
    convention (recorded as its self-reported value).
  * sinkflow CLI (`sinkflow sinkhorn ... --json`): same convention by construction; its
    "ot" and "marginal_error" are recorded as self-reported values. If its help text
    offers the potentials option (--sinkflow-potentials-flag, default --potentials-out),
    the harness passes a path ending in .json, loads the arrays "f" and "g" (written with
    shortest round-trip decimals, so exactly) and checks them like every other peer.
    Rows "sinkflow ... over-relaxed" use the opt-in over-relaxation (--over-relaxation
    1.9, or auto); they are not plain Sinkhorn and are reported beside, not instead of,
    the plain rows.
  * C yardstick (yardstick.c): same convention by construction (returns f, g).

Equal accuracy. Target: L1 marginal error <= 1e-6, recomputed by the harness in float64
from the returned potentials as ||P 1 - a||_1 + ||P^T 1 - b||_1 (both marginals, so the
same definition for alternating and symmetric updates), with C_ij computed from
coordinate differences. Each peer has a knob and is driven up a ladder until it reaches
the target; only the first run that reaches it is timed (plus repetitions at that knob):
  * threshold-type peers (POT: L2 error of one marginal every 10 iterations; POT lazy and
    OTT: L1 error of one marginal every 10 iterations; sinkflow; C) get
    tol = 1e-6, 1e-7, ... until the recomputed error is <= 1e-6;
  * GeomLoss has no tolerance: its eps-scaling schedule (default scaling 0.5, from the
    diameter down to blur) ends with a single iteration at the target eps. The harness
    extends that schedule with K extra iterations at the target blur (patching
    geomloss's own epsilon_schedule): K = 10, 40, then K predicted from the linear rate of
    the last two failures (with --peer-limit-factor: from sinkflow's iteration count,
    doubling), and after a success that followed a failure one interpolated guess between
    them, kept if it also reaches the target. The unmodified default schedule is
    also run once and reported with the error it reaches (marked as not reaching the
    target).
The calibration favours the peers (it picks the loosest knob that works on this very
input); the ladder trials are listed in peers.json.

Timing. Every (library, N, eps) case runs in a fresh subprocess with T threads for
everyone (default 2: RAYON_NUM_THREADS, OMP_NUM_THREADS, MKL/OPENBLAS threads,
torch.set_num_threads, and the worker's CPU affinity, which also sizes XLA's CPU
pools). Only the solve is timed (inputs already in memory; a dense peer's cost-matrix
construction is part of its solve), after a warm-up for JAX (compilation) and
torch/KeOps (first call); the reported time is the minimum
over R repetitions (R = 3 by default, 1 with --quick). sinkflow's time is its own
"seconds" (solve only); its process wall time is recorded too. Peak RSS: ru_maxrss of
the worker up to the end of its first solve (before any checking; includes the
interpreter, imports, inputs and JIT), and of the sinkflow process itself (wait4).
A case that exceeds --time-limit seconds or --mem-limit-gb is killed and recorded so.
With --peer-limit-factor F a peer is also killed once one of its solves (timed or warm-up,
each from scratch) has run F x sinkflow streaming's time in the same case; the worker's
progress file tells the parent when that solve started, and its duration is the peer's lower
bound in the targets table (a tighter setting, or reaching the target, needs at least as
many iterations).

ns per pair-iteration = seconds / (2 x iterations x N x M): one (i, j) term of one
half-iteration, overheads (error checks, Python) included. For the C yardstick the pure
kernel figure (ys_bench_half_iter, 1 and 2 threads) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGET_ERR = 1e-6
SEED = 20240601

ALL_LIBS = [
    "c_yardstick",
    "sinkflow_dense",
    "sinkflow_streaming",
    "pot_log",
    "pot_lazy",
    "geomloss_tensorized",
    "geomloss_tensorized_default",
    "geomloss_online",
    "ott_dense",
    "ott_online",
    "sinkflow_streaming_or19",
    "sinkflow_streaming_orauto",
    "sinkflow_streaming_default",
]
LIB_LABEL = {
    "c_yardstick": "C yardstick (log-domain, SIMD)",
    "sinkflow_dense": "sinkflow dense",
    "sinkflow_streaming": "sinkflow streaming",
    "pot_log": "POT sinkhorn_log",
    "pot_lazy": "POT empirical_sinkhorn lazy",
    "geomloss_tensorized": "GeomLoss tensorized (+K at eps)",
    "geomloss_tensorized_default": "GeomLoss tensorized (default schedule)",
    "geomloss_online": "GeomLoss online/KeOps (+K at eps)",
    "ott_dense": "OTT-JAX PointCloud dense",
    "ott_online": "OTT-JAX PointCloud online",
    "sinkflow_streaming_or19": "sinkflow streaming, over-relaxed ω = 1.9 (opt-in)",
    "sinkflow_streaming_orauto": "sinkflow streaming, adaptive over-relaxation (opt-in)",
    "sinkflow_streaming_default": "sinkflow streaming, default acceleration",
}
THRESHOLD_LADDER = [1e-6, 1e-7, 1e-8, 1e-9, 1e-10]


def pin_cpus(threads: int):
    """Restrict this process (and its children) to `threads` CPUs, if it has more."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
    except (AttributeError, OSError):
        pass


def thread_env(threads: int) -> dict:
    """Environment variables that pin every runtime to `threads` threads."""
    t = str(threads)
    return {
        "OMP_NUM_THREADS": t,
        "MKL_NUM_THREADS": t,
        "OPENBLAS_NUM_THREADS": t,
        "NUMEXPR_NUM_THREADS": t,
        "VECLIB_MAXIMUM_THREADS": t,
        "RAYON_NUM_THREADS": t,
        # XLA has no thread-count flag for the CPU client: its pools follow the CPUs the
        # process may use, which the worker restricts to `threads` (sched_setaffinity).
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


# =====================================================================================
#                                   checking (float64)
# =====================================================================================


def evaluate(x, y, a, b, f, g, eps):
    """Marginal errors, OT_eps (dual value) and transport cost from potentials (f, g),
    P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps), C_ij = sum_k (x_ik - y_jk)^2."""
    import numpy as np

    f = np.asarray(f, dtype=np.float64).reshape(-1)
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
        return {"err_l1": math.inf, "err_mu": math.inf, "err_nu": math.inf,
                "ot_eps": math.nan, "transport_cost": math.nan, "finite": False}
    n, m = len(x), len(y)
    la, lb = np.log(a), np.log(b)
    hg = g / eps + lb
    row = np.empty(n)
    col = np.zeros(m)
    tc = 0.0
    bs = max(1, (1 << 19) // m)
    for i0 in range(0, n, bs):
        xb = x[i0:i0 + bs]
        c = np.zeros((len(xb), m))
        for k in range(x.shape[1]):
            diff = xb[:, k, None] - y[None, :, k]
            c += diff * diff
        p = np.exp(hg[None, :] - c / eps + (f[i0:i0 + bs] / eps + la[i0:i0 + bs])[:, None])
        row[i0:i0 + bs] = p.sum(axis=1)
        col += p.sum(axis=0)
        tc += float((p * c).sum())
    err_mu = float(np.abs(row - a).sum())
    err_nu = float(np.abs(col - b).sum())
    return {"err_l1": err_mu + err_nu, "err_mu": err_mu, "err_nu": err_nu,
            "ot_eps": float(a @ f + b @ g), "transport_cost": tc, "finite": True}


def max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# =====================================================================================
#                                 peers (worker side)
# =====================================================================================


class Unavailable(Exception):
    pass


def load_yardstick(so_path):
    import ctypes

    if not so_path or not Path(so_path).exists():
        raise Unavailable("C yardstick was not built (see the build message in peers.json)")
    lib = ctypes.CDLL(so_path)
    D, I, L = ctypes.c_double, ctypes.c_int, ctypes.c_long
    P = ctypes.POINTER(ctypes.c_double)
    lib.ys_isa.restype = I
    lib.ys_exp_ulp.restype = D
    lib.ys_exp_ulp.argtypes = [L, D, D, P]
    lib.ys_bench_half_iter.restype = D
    lib.ys_bench_half_iter.argtypes = [I, I, I, P, P, D, I, I]
    lib.ys_sinkhorn.restype = I
    lib.ys_sinkhorn.argtypes = [I, I, I, P, P, P, P, D, D, I, D, I, P, P, P, P]
    return lib


def _ptr(arr):
    import ctypes

    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


class Solver:
    """One peer. `knob_kind` is "tol" (threshold ladder) or "count" (extra iterations)."""

    knob_kind = "tol"
    knob_name = "tol"
    version = None

    def __init__(self, spec, x, y, a, b):
        self.spec, self.x, self.y, self.a, self.b = spec, x, y, a, b
        self.eps = spec["eps"]
        self.threads = spec["threads"]

    def warmup(self):
        pass

    def mark(self):
        """Called right before a from-scratch solve starts (timed or warm-up): if the
        worker is killed, the time since the last mark is a lower bound of the peer's time."""
        cb = getattr(self, "on_solve_start", None)
        if cb:
            cb()

    def solve(self, knob):
        """Returns dict(seconds, f, g, iterations, extra...)."""
        raise NotImplementedError


class CYardstick(Solver):
    knob_name = "tol (L1, mu-marginal; nu exact)"

    def __init__(self, *args):
        super().__init__(*args)
        self.lib = load_yardstick(self.spec.get("yardstick_so"))
        self.t_created = time.perf_counter()
        self.version = f"gcc -O3 -march=native, ISA width {self.lib.ys_isa()} bits"

    def solve(self, knob):
        import ctypes
        import numpy as np

        n, m, d = len(self.x), len(self.y), self.x.shape[1]
        f, g = np.empty(n), np.empty(m)
        err, secs = ctypes.c_double(), ctypes.c_double()
        x, y = np.ascontiguousarray(self.x), np.ascontiguousarray(self.y)
        # stop by itself before the case's time limit (reported, not killed)
        budget = max(1.0, self.spec["time_limit"] - (time.perf_counter() - self.t_created))
        it = self.lib.ys_sinkhorn(n, m, d, _ptr(x), _ptr(y), _ptr(self.a), _ptr(self.b),
                                  self.eps, knob, self.spec["max_iters"], 0.9 * budget,
                                  self.threads, _ptr(f), _ptr(g), ctypes.byref(err),
                                  ctypes.byref(secs))
        return {"seconds": secs.value, "f": f, "g": g, "iterations": it,
                "self_reported": {"marginal_error": err.value}}


class PotLog(Solver):
    knob_name = "stopThr (L2, nu-marginal, every 10 its)"

    def __init__(self, *args):
        super().__init__(*args)
        try:
            import ot
        except ImportError as e:
            raise Unavailable(f"POT not installed ({e})")
        self.ot = ot
        self.version = ot.__version__

    def solve(self, knob):
        import numpy as np

        ot = self.ot
        self.mark()  # the timed solve starts
        t0 = time.perf_counter()
        M = ot.dist(self.x, self.y, metric="sqeuclidean")
        _, log = ot.bregman.sinkhorn_log(self.a, self.b, M, self.eps,
                                         numItermax=self.spec["max_iters"], stopThr=knob,
                                         log=True, warn=False)
        secs = time.perf_counter() - t0
        f = self.eps * (np.asarray(log["log_u"]) - np.log(self.a))
        g = self.eps * (np.asarray(log["log_v"]) - np.log(self.b))
        return {"seconds": secs, "f": f, "g": g, "iterations": int(log["niter"]) + 1}


class PotLazy(Solver):
    knob_name = "stopThr (L1, mu-marginal, every 10 its)"

    def __init__(self, *args):
        super().__init__(*args)
        try:
            import ot
        except ImportError as e:
            raise Unavailable(f"POT not installed ({e})")
        self.ot = ot
        self.version = ot.__version__

    def solve(self, knob):
        import numpy as np

        self.mark()  # the timed solve starts
        t0 = time.perf_counter()
        fl, gl, log = self.ot.bregman.empirical_sinkhorn(
            self.x, self.y, self.eps, a=self.a, b=self.b, metric="sqeuclidean",
            numIterMax=self.spec["max_iters"], stopThr=knob, isLazy=True,
            batchSize=self.spec["batch_size"], log=True, warn=False)
        secs = time.perf_counter() - t0
        f = self.eps * (np.asarray(fl) - np.log(self.a))
        g = self.eps * (np.asarray(gl) - np.log(self.b))
        return {"seconds": secs, "f": f, "g": g, "iterations": int(log["niter"]) + 1}


class GeomLossBase(Solver):
    knob_kind = "count"
    knob_name = "K extra iterations at the target blur"
    backend = "tensorized"

    def __init__(self, *args):
        super().__init__(*args)
        try:
            import torch
            import geomloss
            import geomloss._legacy.sinkhorn_divergence as sd
        except ImportError as e:
            raise Unavailable(f"GeomLoss/torch not installed ({e})")
        if self.backend == "online":
            try:
                import pykeops
            except ImportError as e:
                raise Unavailable(f"pykeops not installed ({e})")
            self.version_keops = pykeops.__version__
        torch.set_num_threads(self.threads)
        self.torch, self.sd = torch, sd
        self.version = f"geomloss {geomloss.__version__}, torch {torch.__version__}"
        if self.backend == "online":
            self.version += f", pykeops {self.version_keops}"
        self._orig_schedule = sd.epsilon_schedule
        self.schedule_len = None
        self.blur = math.sqrt(self.eps / 2.0)  # eps_G = blur^2 = eps/2 on the half cost
        self.tx = torch.from_numpy(self.x)
        self.ty = torch.from_numpy(self.y)
        self.ta = torch.from_numpy(self.a)
        self.tb = torch.from_numpy(self.b)

    def _run(self, extra):
        import geomloss

        orig = self._orig_schedule

        def schedule(p, diameter, blur, scaling):
            lst = list(orig(p, diameter, blur, scaling)) + [blur ** p] * int(extra)
            self.schedule_len = len(lst)
            return lst

        self.sd.epsilon_schedule = schedule
        try:
            loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=self.blur, scaling=0.5,
                                        debias=False, potentials=True, backend=self.backend)
            self.mark()  # the timed solve starts
            t0 = time.perf_counter()
            F, G = loss(self.ta, self.tx, self.tb, self.ty)
            secs = time.perf_counter() - t0
        finally:
            self.sd.epsilon_schedule = orig
        f = 2.0 * F.detach().numpy().reshape(-1)  # potentials of the half cost -> |x-y|^2
        g = 2.0 * G.detach().numpy().reshape(-1)
        # iterations: the schedule, plus GeomLoss's final full ("extrapolation") update
        return {"seconds": secs, "f": f, "g": g, "iterations": self.schedule_len + 1,
                "schedule": {"scaling": 0.5, "blur": self.blur, "extra_at_target": int(extra),
                             "length": self.schedule_len}}

    def warmup(self):
        self._run(0)

    def solve(self, knob):
        return self._run(knob)


class GeomLossTensorized(GeomLossBase):
    backend = "tensorized"


class GeomLossOnline(GeomLossBase):
    backend = "online"


class GeomLossDefault(GeomLossTensorized):
    knob_kind = "fixed"
    knob_name = "none (default schedule, scaling = 0.5)"


class Ott(Solver):
    knob_name = "threshold (L1, one marginal, every 10 its)"
    online = False

    def __init__(self, *args):
        super().__init__(*args)
        try:
            import jax
            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp
            import ott
            from ott.geometry import pointcloud
            from ott.problems.linear import linear_problem
            from ott.solvers.linear import sinkhorn
        except ImportError as e:
            raise Unavailable(f"OTT-JAX not installed ({e})")
        self.jax, self.jnp = jax, jnp
        self.pc, self.lp, self.sk = pointcloud, linear_problem, sinkhorn
        self.version = f"ott-jax {ott.__version__}, jax {jax.__version__}"
        self.xj, self.yj = jnp.asarray(self.x), jnp.asarray(self.y)
        self.aj, self.bj = jnp.asarray(self.a), jnp.asarray(self.b)
        self.compiled = {}

    def _fn(self, thr):
        if thr not in self.compiled:
            eps = float(self.eps)
            bs = self.spec["batch_size"] if self.online else None
            solver = self.sk.Sinkhorn(threshold=thr, max_iterations=self.spec["max_iters"],
                                      inner_iterations=10)
            pc, lp = self.pc, self.lp

            def run(x, y, a, b):
                geom = pc.PointCloud(x, y, epsilon=eps, batch_size=bs)  # SqEuclidean
                out = solver(lp.LinearProblem(geom, a, b))
                return out.f, out.g, out.n_iters, out.reg_ot_cost, out.converged

            # compilation ahead of time, then one untimed run (warm-up); a full solve at
            # this threshold, so it counts for a lower bound if the case limit interrupts it
            fn = self.jax.jit(run).lower(self.xj, self.yj, self.aj, self.bj).compile()
            self.mark()
            self.jax.block_until_ready(fn(self.xj, self.yj, self.aj, self.bj))
            self.compiled[thr] = fn
        return self.compiled[thr]

    def solve(self, knob):
        import numpy as np

        fn = self._fn(knob)
        self.mark()  # the timed solve starts
        t0 = time.perf_counter()
        out = self.jax.block_until_ready(fn(self.xj, self.yj, self.aj, self.bj))
        secs = time.perf_counter() - t0
        f, g, nit, cost, conv = out
        # OTT: P = exp((f~ + g~ - C)/eps), the weights are inside its potentials
        f = np.asarray(f) - self.eps * np.log(self.a)
        g = np.asarray(g) - self.eps * np.log(self.b)
        return {"seconds": secs, "f": f, "g": g, "iterations": int(nit),
                "self_reported": {"reg_ot_cost": float(cost), "converged": bool(conv)}}


class OttOnline(Ott):
    online = True


class Sinkflow(Solver):
    knob_name = "--tol"
    mode = "dense"
    relax = None
    # The rows "sinkflow dense/streaming" are plain Sinkhorn: `--plain` where the binary
    # accelerates by default; "sinkflow streaming, default acceleration" runs the default.
    default_acceleration = False

    def __init__(self, *args):
        super().__init__(*args)
        exe = self.spec.get("sinkflow_bin")
        if not exe or not Path(exe).exists():
            raise Unavailable(f"sinkflow binary not found at {self.spec.get('sinkflow_bin_shown')}"
                              " (run `cargo build --release` at the repository root)")
        self.exe = exe
        try:
            h = subprocess.run([exe, "sinkhorn", "--help"], capture_output=True, text=True,
                               timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"cannot run the sinkflow binary ({e})")
        if h.returncode != 0:
            raise Unavailable("the sinkflow binary has no `sinkhorn` subcommand yet "
                              f"(`sinkflow sinkhorn --help` exited {h.returncode})")
        self.help = h.stdout
        flag = self.spec.get("sinkflow_potentials_flag") or ""
        self.pot_flag = flag if flag and flag in self.help else None
        if "--mode" not in self.help:
            raise Unavailable("`sinkflow sinkhorn` has no --mode option yet")
        v = subprocess.run([exe, "--version"], capture_output=True, text=True)
        self.version = (v.stdout.strip() or "sinkflow (version unknown)")

    def solve(self, knob):
        import numpy as np

        tmp = Path(self.spec["tmp_dir"])
        cmd = [self.exe, "sinkhorn", "--x", self.spec["x_path"], "--y", self.spec["y_path"],
               "--eps", repr(self.eps), "--tol", repr(knob), "--mode", self.mode,
               "--max-iters", str(self.spec["max_iters"]), "--json"]
        if self.relax:
            cmd += ["--over-relaxation", self.relax]
        elif not self.default_acceleration and "--plain" in self.help:
            cmd += ["--plain"]
        pot_path = tmp / f"sinkflow_potentials_{os.getpid()}.json"
        if self.pot_flag:
            cmd += [self.pot_flag, str(pot_path)]
        self.mark()  # the timed solve starts
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            proc = subprocess.Popen(cmd, stdout=fo, stderr=fe)
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            rc = os.waitstatus_to_exitcode(status)
            fo.seek(0)
            fe.seek(0)
            out, err = fo.read(), fe.read()
        rss = ru.ru_maxrss / 1024.0
        self.child_rss_mb = max(getattr(self, "child_rss_mb", 0.0) or 0.0, rss)
        if rc != 0:
            raise RuntimeError(f"sinkflow exited {rc}: {err.decode(errors='replace')[-500:]}")
        rep = json.loads(out.decode())
        res = {"seconds": float(rep["seconds"]), "wall_seconds": wall,
               "iterations": int(rep.get("iterations", -1)),
               "self_reported": {k: rep.get(k) for k in
                                 ("ot", "transport_cost", "marginal_error", "converged", "mode")}}
        if self.pot_flag and pot_path.exists():
            z = json.loads(pot_path.read_text())
            res["f"], res["g"] = np.asarray(z["f"]), np.asarray(z["g"])
            pot_path.unlink()
        return res


class SinkflowStreaming(Sinkflow):
    mode = "streaming"


class SinkflowStreamingOr19(SinkflowStreaming):
    relax = "1.9"


class SinkflowStreamingOrAuto(SinkflowStreaming):
    relax = "auto"


class SinkflowStreamingDefault(SinkflowStreaming):
    default_acceleration = True


SOLVERS = {
    "c_yardstick": CYardstick,
    "reference": CYardstick,
    "pot_log": PotLog,
    "pot_lazy": PotLazy,
    "geomloss_tensorized": GeomLossTensorized,
    "geomloss_tensorized_default": GeomLossDefault,
    "geomloss_online": GeomLossOnline,
    "ott_dense": Ott,
    "ott_online": OttOnline,
    "sinkflow_dense": Sinkflow,
    "sinkflow_streaming": SinkflowStreaming,
    "sinkflow_streaming_or19": SinkflowStreamingOr19,
    "sinkflow_streaming_orauto": SinkflowStreamingOrAuto,
    "sinkflow_streaming_default": SinkflowStreamingDefault,
}


def run_case(spec):
    """Worker: run one (library, N, d, eps) case; returns the result record."""
    import numpy as np

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    limit = spec["time_limit"]
    x = np.load(spec["x_path"])
    y = np.load(spec["y_path"])
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    rec = {"lib": spec["lib"], "N": len(x), "M": len(y), "d": x.shape[1], "eps": spec["eps"],
           "threads": spec["threads"]}
    try:
        solver = SOLVERS[spec["lib"]](spec, x, y, a, b)
    except Unavailable as e:
        rec.update(status="unavailable", reason=str(e))
        return rec
    rec["version"] = solver.version
    rec["knob_name"] = solver.knob_name
    solver.warmup()
    rec["rss_baseline_mb"] = max_rss_mb()

    sinkflow = isinstance(solver, Sinkflow)
    trials = []
    peak = None

    progress = spec.get("progress_path")

    def note_progress(current):
        # read by the parent if it has to kill this worker: the trials so far and the start
        # of the solve under way give a lower bound of the peer's time (see peer_time_bound)
        if progress:
            Path(progress).write_text(json.dumps({"trials": trials, "current": current},
                                                 default=_json_default))

    def trial(knob):
        nonlocal peak

        def started():
            note_progress({"knob": knob, "started_unix": time.time()})

        started()  # refined by the solver's own mark right before its solve starts
        solver.on_solve_start = started
        r = solver.solve(knob)
        if peak is None:
            peak = max_rss_mb()
        if "f" in r:
            ev = evaluate(x, y, a, b, r["f"], r["g"], solver.eps)
            ev["independent"] = True
        else:  # sinkflow without a potentials dump: its own numbers
            sr = r.get("self_reported", {})
            ev = {"err_l1": float(sr.get("marginal_error", math.inf)),
                  "ot_eps": sr.get("ot"), "transport_cost": sr.get("transport_cost"),
                  "independent": False}
        t = {"knob": knob, "seconds": r["seconds"], "iterations": r["iterations"], **ev}
        for k in ("self_reported", "wall_seconds", "schedule"):
            if k in r:
                t[k] = r[k]
        trials.append(t)
        note_progress(None)
        return t

    def time_left():
        return limit - (time.perf_counter() - t_start)

    def affordable(last):
        return time_left() > 2.5 * last["seconds"] + 1.0

    # --peer-limit-factor: a peer climbs its ladder until it reaches the target or the parent
    # kills it once a solve has run F x sinkflow's time, so an unfinished peer's lower bound
    # is that duration rather than a shorter rung the time budget allowed
    exhaust = bool(spec.get("exhaust"))

    def climb(last):
        return exhaust or affordable(last)

    target = spec["target"]
    chosen = None
    if spec["lib"] == "reference":
        chosen = trial(spec["ref_tol"])
    elif solver.knob_kind == "fixed":
        chosen = trial(0)
    elif solver.knob_kind == "tol":
        for knob in THRESHOLD_LADDER:
            t = trial(knob)
            if t["err_l1"] <= target:
                chosen = t
                break
            if not climb(t):
                break
    else:  # count: K = 10, 40, then predicted from the observed linear rate
        k, fails = int(spec.get("k_start") or 10), []
        while True:
            t = trial(k)
            if t["err_l1"] <= target:
                chosen = t
                break
            fails.append(t)
            if not climb(t) or k >= spec["max_iters"]:
                break
            nxt = 4 * k if not spec.get("k_start") else 2 * k
            if len(fails) >= 2:
                (k1, e1), (k2, e2) = [(u["knob"], u["err_l1"]) for u in fails[-2:]]
                if 0 < e2 < e1 and math.isfinite(e1):
                    rate = math.log(e2 / e1) / (k2 - k1)  # log-contraction per iteration
                    pred = k2 + math.log(target / e2) / rate
                    nxt = int(math.ceil(min(max(1.1 * pred, k2 + 10), 8 * k2)))
            k = min(nxt, spec["max_iters"])
        # the ladder may overshoot the smallest K that works: one interpolated guess between
        # the last failure and the success (linear convergence), kept if it also succeeds
        if chosen is not None and fails and affordable(chosen):
            (k1, e1), (k2, e2) = (fails[-1]["knob"], fails[-1]["err_l1"]), \
                (chosen["knob"], chosen["err_l1"])
            if 0 < e2 < e1 and math.isfinite(e1):
                rate = math.log(e2 / e1) / (k2 - k1)
                guess = int(math.ceil(k1 + 1.05 * math.log(target / e1) / rate))
                if k1 < guess < k2:
                    t = trial(guess)
                    if t["err_l1"] <= target:
                        chosen = t
    reached = chosen is not None and chosen["err_l1"] <= target
    if chosen is None:  # report the most accurate trial, flagged
        chosen = min(trials, key=lambda t: (t["err_l1"], t["seconds"]))
    times = [chosen["seconds"]]
    while len(times) < spec["reps"] and affordable(chosen):
        times.append(solver.solve(chosen["knob"])["seconds"])
    rec.update({k: v for k, v in chosen.items() if k not in ("seconds",)})
    rec["seconds"] = min(times)
    rec["seconds_all"] = times
    rec["repetitions"] = len(times)
    rec["reached_target"] = bool(reached)
    rec["trials"] = trials
    rec["peak_rss_mb"] = peak
    if sinkflow:
        rec["peak_rss_mb"] = solver_rss_mb(solver)
        rec["peak_rss_note"] = "sinkflow process (wait4)"
    if spec["lib"] == "reference":
        rec["status"] = "ok" if chosen["err_l1"] <= spec["ref_tol"] else \
            f"stopped at the time limit before tol {spec['ref_tol']:g} (best available)"
    elif solver.knob_kind == "fixed":
        rec["status"] = "ok" if reached else "target not reached (no tolerance: fixed schedule)"
    else:
        rec["status"] = "ok" if reached else "target not reached within the time limit"
    rec["case_seconds"] = time.perf_counter() - t_start
    rec["load_average_1min"] = [load_start, os.getloadavg()[0]]
    return rec


def solver_rss_mb(solver):
    return getattr(solver, "child_rss_mb", None)


def run_kernel_bench(spec):
    """Worker: ns per pair-iteration of the C kernel, 1 and 2 threads, and exp accuracy."""
    import ctypes
    import numpy as np

    lib = load_yardstick(spec["yardstick_so"])
    x = np.ascontiguousarray(np.load(spec["x_path"]))
    y = np.ascontiguousarray(np.load(spec["y_path"]))
    n, m, d = len(x), len(y), x.shape[1]
    reps = 10
    out = {"N": n, "M": m, "d": d, "isa_bits": lib.ys_isa(), "reps": reps,
           "ns_per_pair": {}}
    for thr in sorted({1, spec["threads"]}):
        s = lib.ys_bench_half_iter(n, m, d, _ptr(x), _ptr(y), 0.1, reps, thr)
        out["ns_per_pair"][str(thr)] = s / (n * m) * 1e9
    mean = ctypes.c_double()
    out["exp_max_ulp"] = lib.ys_exp_ulp(2_000_000, -708.0, 0.0, ctypes.byref(mean))
    out["exp_mean_ulp"] = mean.value
    out["status"] = "ok"
    return out


def worker_main(spec_path, out_path):
    spec = json.loads(Path(spec_path).read_text())
    pin_cpus(spec.get("threads", 2))
    try:
        if spec["lib"] == "c_kernel":
            rec = run_kernel_bench(spec)
        else:
            rec = run_case(spec)
    except MemoryError:
        rec = {"lib": spec["lib"], "eps": spec.get("eps"), "status": "out of memory (MemoryError)"}
    except Exception as e:  # recorded, not hidden
        import traceback

        rec = {"lib": spec["lib"], "eps": spec.get("eps"),
               "status": f"error: {type(e).__name__}: {e}"[:400],
               "traceback": traceback.format_exc()[-2000:]}
    Path(out_path).write_text(json.dumps(rec, default=_json_default))


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


# =====================================================================================
#                                  parent (orchestration)
# =====================================================================================


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                fl = line.split(":", 1)[1].split()
                return [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in fl]
    except OSError:
        pass
    return []


def machine_info(venv_python):
    import psutil

    info = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }
    vers = {}
    from importlib import metadata

    for pkg in ("numpy", "scipy", "POT", "geomloss", "torch", "jax", "jaxlib", "ott-jax",
                "pykeops", "psutil", "matplotlib"):
        try:
            vers[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            vers[pkg] = None
    info["versions"] = vers
    try:
        cc = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
        info["gcc"] = cc.stdout.splitlines()[0] if cc.returncode == 0 else None
    except OSError:
        info["gcc"] = None
    try:
        gr = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True)
        info["repo_commit"] = gr.stdout.strip() or None
    except OSError:
        info["repo_commit"] = None
    return info


def build_yardstick(build_dir):
    """Compile yardstick.c into build_dir; returns (path or None, message)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None, "unavailable: no C compiler (gcc/cc) on PATH"
    so = Path(build_dir) / "yardstick.so"
    cmd = [cc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC",
           str(HERE / "yardstick.c"), "-o", str(so), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "unavailable: build failed: " + r.stderr[-800:]
    return str(so), "built with: " + " ".join(["gcc" if c == cc else c for c in cmd[:6]])


def make_inputs(data_dir, n, d):
    import numpy as np

    xp = Path(data_dir) / f"x_N{n}_d{d}_seed{SEED}.npy"
    yp = Path(data_dir) / f"y_N{n}_d{d}_seed{SEED}.npy"
    if not (xp.exists() and yp.exists()):
        rng = np.random.default_rng(SEED)
        x = rng.standard_normal((n, d))
        y = 1.0 + math.sqrt(0.5) * rng.standard_normal((n, d))
        np.save(xp, x)
        np.save(yp, y)
    return str(xp), str(yp)


def run_worker(spec, args, tmp_dir):
    """Runs one case in a fresh subprocess with a time and memory guard."""
    import psutil

    spec_path = Path(tmp_dir) / f"spec_{os.getpid()}_{time.monotonic_ns()}.json"
    out_path = spec_path.with_suffix(".out.json")
    progress_path = spec_path.with_suffix(".progress.json")
    spec = {**spec, "progress_path": str(progress_path)}
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.update(thread_env(args.threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path),
           str(out_path)]
    hard_limit = spec.get("time_limit", args.time_limit) + args.grace
    mem_limit = args.mem_limit_gb * 2**30
    t0 = time.perf_counter()
    log_path = Path(tmp_dir) / (spec_path.stem + ".log")
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        killed = None
        peak_seen = 0
        decide_after = spec.get("decide_after")
        polls = 0
        while proc.poll() is None:
            time.sleep(0.1)
            polls += 1
            if decide_after and polls % 10 == 0:
                # --peer-limit-factor: stop once the solve under way has run long enough to
                # bound the ratio; the bound itself is what it ran (read back below)
                try:
                    cur = json.loads(progress_path.read_text()).get("current")
                except (OSError, ValueError):
                    cur = None
                if cur and time.time() - cur["started_unix"] > decide_after:
                    killed = (f"timeout (its solve ran > {decide_after:.4g} s = the peer "
                              "limit, killed)")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
            try:
                p = psutil.Process(proc.pid)
                rss = p.memory_info().rss + sum(c.memory_info().rss
                                                for c in p.children(recursive=True))
            except psutil.Error:
                rss = 0
            peak_seen = max(peak_seen, rss)
            if rss > mem_limit:
                killed = f"out of memory (RSS > {args.mem_limit_gb:g} GB, killed)"
            elif time.perf_counter() - t0 > hard_limit:
                killed = f"timeout (> {hard_limit:.0f} s, killed)"
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
    wall = time.perf_counter() - t0
    base = {"lib": spec["lib"], "N": spec.get("N"), "d": spec.get("d"), "eps": spec.get("eps")}
    if killed:
        rec = {**base, "status": killed, "case_seconds": wall,
               "peak_rss_mb": peak_seen / 2**20, "time_limit": spec.get("time_limit")}
        try:
            prog = json.loads(progress_path.read_text())
        except (OSError, ValueError):
            prog = None
        if prog:
            rec["trials"] = prog.get("trials", [])
            cur = prog.get("current")
            if cur:  # the solve under way when the worker was killed
                rec["killed_solve"] = {"knob": cur["knob"],
                                       "seconds": time.time() - cur["started_unix"]}
        return rec
    if out_path.exists():
        rec = json.loads(out_path.read_text())
        rec.setdefault("N", spec.get("N"))
        rec.setdefault("d", spec.get("d"))
        return rec
    tail = log_path.read_text()[-600:] if log_path.exists() else ""
    status = "killed (signal 9, likely the OOM killer)" if proc.returncode == -9 else \
        f"crashed (exit {proc.returncode})"
    return {**base, "status": status, "log_tail": tail, "case_seconds": wall}


def scrub(text):
    """Remove this machine's paths (repository, interpreter prefix, temp, home)."""
    pairs = [(str(REPO), "<repo>"), (sys.prefix, "<venv>"), (sys.base_prefix, "<python>"),
             (tempfile.gettempdir(), "<tmp>"), (os.path.expanduser("~"), "~")]
    for old, new in sorted(pairs, key=lambda p: -len(p[0])):
        if old and old not in ("/", "~"):
            text = text.replace(old, new)
    return text


def dump_json(res, path):
    Path(path).write_text(scrub(json.dumps(res, indent=1, default=_json_default)))


def fmt_num(v, spec="{:.3g}"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return spec.format(v)


def knob_text(c):
    k = c.get("knob")
    if k is None:
        return "–"
    if c["lib"].startswith("geomloss"):
        return f"K = {k}" if c.get("knob_kind", "count") != "fixed" and k else "default"
    return f"tol {k:g}"


# Peers that aim at the tolerance (GeomLoss's unmodified default schedule is reported for
# information only: it stops where its schedule ends, far from 1e-6).
PEER_LIBS = ["pot_log", "pot_lazy", "geomloss_tensorized", "geomloss_online", "ott_dense",
             "ott_online"]


def peer_time_bound(c, time_limit):
    """(seconds, exact): a peer's time to the target, or a lower bound of it when it did not
    reach the target: the longest of its unsuccessful solves (each starts from scratch, and
    reaching the target needs a knob at least as tight, hence at least as many iterations),
    counting the solve that was under way when the case limit killed it for as long as it
    had run. A killed case recorded without that detail (older runs) enters with its limit:
    its worker was killed at limit + grace, so its last solve ran at least the limit minus
    the setup, well under the grace."""
    if c.get("reached_target") and isinstance(c.get("seconds"), (int, float)):
        return c["seconds"], True
    tried = [t["seconds"] for t in c.get("trials", []) if isinstance(t.get("seconds"), float)]
    if str(c.get("status", "")).startswith("timeout"):
        if "killed_solve" in c:
            return max(tried + [float(c["killed_solve"]["seconds"])]), False
        return float(c.get("time_limit") or time_limit), False
    if tried:
        return max(tried), False
    return None, False


def target_rows(res):
    """The issue's targets, one row per (N, d, eps): sinkflow streaming (plain Sinkhorn)
    against every CPU peer. A peer that reached the target enters with its time; one that did
    not, with a lower bound of its time. The binding ratio is the largest sinkflow / peer
    ratio; it is an upper bound (`≤`) when a lower bound attains it."""
    rows = []
    keys = sorted({(c.get("N"), c.get("d"), c["eps"]) for c in res["cases"]
                   if c["lib"] != "reference"}, key=lambda k: (k[1] or 0, k[0] or 0, -k[2]))
    for n, d, eps in keys:
        case = {c["lib"]: c for c in res["cases"]
                if (c.get("N"), c.get("d"), c["eps"]) == (n, d, eps)}
        # the mode sinkflow's Auto rule picks (theory/sinkhorn.md §9): dense for d >= 8 while
        # C and C^T take at most 512 MiB, streaming otherwise
        auto = "sinkflow_dense" if (d or 0) >= 8 and 16 * n * n <= 512 * 2**20 \
            else "sinkflow_streaming"
        sf = case.get(auto)
        if not sf or not sf.get("reached_target"):
            continue
        t_sf = sf["seconds"]
        finished, bounds, failed, missing = [], [], [], []
        for lib in PEER_LIBS:
            c = case.get(lib)
            if not c:  # not run for this case: the ratio below does not cover it
                missing.append(LIB_LABEL.get(lib, lib))
                continue
            if str(c.get("status", "")).startswith("unavailable"):
                continue
            t, exact = peer_time_bound(c, res["time_limit"])
            # the ratio uses sinkflow's time from the peer's own run (side by side), which
            # differs from the row's when runs were merged
            t_own = c.get("sinkflow_seconds_same_run") or t_sf
            if t is not None:
                (finished if exact else bounds).append((t, lib, t_own))
            else:  # out of memory or crashed: no time to compare with
                failed.append(f"{LIB_LABEL.get(lib, lib)}: {c.get('status')}")
        best = min(finished) if finished else None
        binding = max([(ts / t, lib, True) for t, lib, ts in finished]
                      + [(ts / t, lib, False) for t, lib, ts in bounds], default=None)
        if binding is None:
            continue
        ratio_txt = (f"{binding[0]:.3f}" if binding[2]
                     else f"≤ {binding[0]:.3f} ({LIB_LABEL.get(binding[1], binding[1])}, "
                          "bound)")
        if missing:
            ratio_txt += f"; incomplete, not run: {', '.join(missing)}"
        cy = case.get("c_yardstick")
        cy_ratio = (t_sf / cy["seconds"]) if cy and cy.get("reached_target") else None
        nsp = t_sf / (2 * sf["iterations"] * n * n) * 1e9 if sf.get("iterations") else None
        rows.append({
            "N": n, "d": d, "eps": eps, "sinkflow_s": t_sf, "mode": auto.split("_")[1],
            "best": (f"{LIB_LABEL.get(best[1], best[1])}: {best[0]:.4g} s, ratio "
                     f"{best[2] / best[0]:.3f}") if best else "none",
            "unfinished": "; ".join([f"{LIB_LABEL.get(lib, lib)} > {t:.4g} s"
                                     for t, lib, _ in sorted(bounds)] + failed) or "–",
            "ratio": ratio_txt, "vs_c_solve": cy_ratio, "ns_pair_it": nsp})
    return rows


def write_markdown(res, path):
    m = res["machine"]
    lines = []
    title = "# sinkflow vs peers — side-by-side Sinkhorn benchmark"
    if res["profile"] == "quick":
        title += " (QUICK mode: N = 1000, one repetition — to be regenerated)"
    lines += [title, ""]
    lines += [f"Generated by `benches/peers/run_peers.py` ({res['profile']}) on "
              f"{res['date']}.", ""]
    lines += [f"- CPU: {m['cpu_model']} ({m['logical_cpus']} logical CPUs, "
              f"{m['physical_cores']} cores, flags {', '.join(m['cpu_flags'])}), "
              f"{m['memory_gb']} GB RAM; load average at start "
              f"{', '.join(f'{v:.2f}' for v in m['load_average_at_start'])}.",
              f"- Threads: {res['threads']} for every library; repetitions: "
              f"{res['reps']} (minimum reported); per-case limit {res['time_limit']} s, "
              f"{res['mem_limit_gb']} GB.",
              "- Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
              + f"; {m.get('gcc')}; sinkflow: {res.get('sinkflow_status')}.",
              *([f"- Runs merged into this report: " + "; ".join(
                  f"{r['date']}: N {r['sizes']}, d {r['dims']}, eps {r['eps']}, "
                  f"{r['reps']} rep(s), limit {r['time_limit']} s"
                  + (f" (a peer stopped once one of its solves had run "
                     f"{r['peer_limit_factor']:g} x sinkflow streaming's time)"
                     if r.get("peer_limit_factor") else "")
                  + (f", libraries {', '.join(r['libs'])}" if r.get("libs") else "")
                  + (f", max load {r['max_load']:.2f}" if r.get("finished", True)
                     and r.get("max_load") is not None else
                     ", still running or interrupted when merged (its finished cases only)")
                  for r in res["runs"])] if res.get("runs") else []),
              f"- Problem: X ~ N(0, I_d), Y ~ N(1, 0.5 I_d), N = M, uniform weights, float64, "
              f"seed {SEED}; cost |x-y|^2; target L1 marginal error <= {TARGET_ERR:g} "
              "(||P1-a||_1 + ||P^T1-b||_1, recomputed by the harness from the potentials).",
              *([f"- **Warning**: the 1-minute load average exceeded the number of CPUs "
                 f"during this run (max {res['max_load']:.1f} on {m['logical_cpus']} CPUs): "
                 "other processes competed for the cores, so the times (multi-threaded ones "
                 "most) are pessimistic and noisy; rerun on a quiet machine."]
                if res.get("max_load", 0) > (m["logical_cpus"] or 1) else []),
              "- OT_eps = <a,f> + <b,g> recomputed from each library's potentials; "
              "rel. diff is against the reference (C yardstick driven to "
              f"tol {res.get('ref_tol') or 1e-8:g}; where it was not run or could not "
              "finish, the median of the libraries that reached the target, see the "
              "agreement table).",
              "- `ns/pair-it` = seconds / (2 · iterations · N · M), overheads included. "
              "Peak RSS: worker process up to the end of its first solve (interpreter, imports, "
              "inputs, JIT included; `base` = after imports and warm-up, before the solve).",
              ""]
    trows = target_rows(res)
    if trows:
        lines += ["## Targets: sinkflow (plain Sinkhorn, the mode Auto picks) against every CPU peer",
                  "",
                  "Time to L1 marginal error <= 1e-6 (recomputed by the harness). A peer that "
                  "did not reach the target enters with a lower bound of its time: the "
                  "longest of its unsuccessful solves (each starts from scratch, and a tighter "
                  "setting needs at least as many iterations), counting the solve the case "
                  "limit interrupted for as long as it had run (older runs without that "
                  "record: the case limit). `binding ratio` is the largest sinkflow / peer "
                  "ratio over all peers, each with sinkflow's time from the peer's own run; "
                  "it is an upper bound (`≤`) when a lower bound attains it, i.e. when the "
                  "time limit, not the peer, decided it. `sinkflow / C` is "
                  "sinkflow's time over the C yardstick solver's on the same input.", "",
                  "| N | d | eps | sinkflow s (mode) | fastest peer that reached 1e-6 | peers that did "
                  "not (time >) | binding ratio | sinkflow / C | sinkflow ns/pair-it |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in trows:
            lines.append(f"| {r['N']} | {r['d']} | {r['eps']:g} | {r['sinkflow_s']:.4g} "
                         f"({r['mode']}) | "
                         f"{r['best']} | {r['unfinished']} | {r['ratio']} | "
                         f"{fmt_num(r['vs_c_solve'], '{:.2f}')} | "
                         f"{fmt_num(r['ns_pair_it'], '{:.3g}')} |")
        lines += ["", "## All cases", ""]
    lines += ["| N | d | eps | library | stop setting | seconds | iterations | L1 error | target | "
              "OT_eps | rel. diff vs ref | ns/pair-it | peak RSS MB (base) | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["cases"]:
        if c["lib"] == "reference":
            continue
        n, mm = c.get("N") or 0, c.get("M") or c.get("N") or 0
        it = c.get("iterations")
        secs = c.get("seconds")
        nsp = secs / (2 * it * n * mm) * 1e9 if secs and it and n else None
        key = f"{c.get('N')}_{c.get('d')}_{c['eps']}"
        ref = res["references"].get(key)
        if ref is None:  # no accurate reference run: the median of the converged peers
            ref = res["agreement"].get(key, {}).get("reference")
        rd = None
        if ref is not None and isinstance(c.get("ot_eps"), (int, float)):
            rd = abs(c["ot_eps"] - ref) / abs(ref)
        ind = "" if c.get("independent", True) else " (self-reported)"
        rss = c.get("peak_rss_mb")
        rss_s = "–" if rss is None else f"{rss:.0f}"
        if c.get("rss_baseline_mb") is not None and c.get("peak_rss_note") is None:
            rss_s += f" ({c['rss_baseline_mb']:.0f})"
        status = c.get("status", "?")
        if status.startswith("unavailable"):
            status += ": " + c.get("reason", "")
        if "killed_solve" in c:
            ks = c["killed_solve"]
            status += (f"; its solve at {knob_text({**c, 'knob': ks['knob']})} had run "
                       f"{ks['seconds']:.4g} s")
        lines.append(
            f"| {c.get('N')} | {c.get('d')} | {c['eps']:g} | {LIB_LABEL.get(c['lib'], c['lib'])} | "
            f"{knob_text(c)} | "
            f"{fmt_num(secs, '{:.4g}')} | {fmt_num(it, '{:d}')} | "
            f"{fmt_num(c.get('err_l1'), '{:.2e}')}{ind} | "
            f"{'yes' if c.get('reached_target') else 'no'} | "
            f"{fmt_num(c.get('ot_eps'), '{:.12g}')} | {fmt_num(rd, '{:.1e}')} | "
            f"{fmt_num(nsp, '{:.3g}')} | {rss_s} | {status.replace('|', '/')} |")
    lines += ["", "## Agreement of OT_eps between libraries that reached the target", "",
              "| N | d | eps | reference OT_eps | max rel. spread among them | "
              "max rel. diff vs reference | libraries |",
              "|---|---|---|---|---|---|---|"]
    for key, ag in res["agreement"].items():
        ref_s = fmt_num(ag["reference"], "{:.12g}")
        if ag.get("basis", "reference") != "reference":
            ref_s += f" ({ag['basis']})"
        libs = ", ".join(LIB_LABEL.get(x, x) for x in ag.get("libs", []))
        lines.append(f"| {ag['N']} | {ag['d']} | {ag['eps']:g} | {ref_s} | "
                     f"{fmt_num(ag['max_rel_spread'], '{:.1e}')} | "
                     f"{fmt_num(ag.get('max_rel_diff_vs_reference'), '{:.1e}')} | "
                     f"{ag['n_libs']}: {libs} |")
    lines += ["", "## Per-iteration yardstick: C kernel, ns per pair-iteration", "",
              "One pair-iteration = one (i, j) term of one log-sum-exp half-iteration "
              "(cost, max-shift, exp, sum). " + res.get("yardstick_build", ""), "",
              "| N = M | d | ISA | 1 thread ns | 2 threads ns | vector exp max ulp (mean) |",
              "|---|---|---|---|---|---|"]
    for kb in res["kernel"]:
        if kb.get("status") != "ok":
            lines.append(f"| {kb.get('N')} | {kb.get('d')} | – | – | – | {kb.get('status')} |")
            continue
        ns = kb["ns_per_pair"]
        isa = {512: "AVX-512F", 256: "AVX2+FMA", 0: "scalar"}.get(kb["isa_bits"], "?")
        lines.append(f"| {kb['N']} | {kb['d']} | {isa} | {ns.get('1', math.nan):.3f} | "
                     f"{ns.get(str(res['threads']), math.nan):.3f} | "
                     f"{kb['exp_max_ulp']:.2f} ({kb['exp_mean_ulp']:.3f}) |")
    lines += ["", "## Conventions (each peer mapped to cost |x-y|^2 and OT_eps with KL(P | a⊗b))",
              ""]
    for k, v in res["conventions"].items():
        lines.append(f"- **{k}**: {v}")
    lines.append("")
    Path(path).write_text(scrub("\n".join(lines)))


# One style per library: colour, line style (dashed: sinkflow's opt-in over-relaxed rows).
PLOT_STYLE = {
    "c_yardstick": ("black", ":"),
    "sinkflow_dense": ("tab:blue", "-."),
    "sinkflow_streaming": ("tab:blue", "-"),
    "sinkflow_streaming_or19": ("tab:cyan", "--"),
    "sinkflow_streaming_orauto": ("tab:purple", "--"),
    "pot_log": ("tab:red", "-"),
    "pot_lazy": ("tab:pink", "-"),
    "geomloss_tensorized": ("tab:green", "-"),
    "geomloss_online": ("tab:olive", "-"),
    "ott_dense": ("tab:orange", "-"),
    "ott_online": ("tab:brown", "-"),
}


def write_plot(res, path):
    """Log-log time to the target vs N, one panel per (d, eps) that has data. GeomLoss's
    unmodified default schedule is left out (it does not aim at the target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def plotted_time(c):
        # a peer that did not reach the target is drawn at the lower bound of its time that
        # the targets table uses (killed cases included)
        if c.get("reached_target") or c["lib"] not in PEER_LIBS:
            return c.get("seconds")
        return peer_time_bound(c, res["time_limit"])[0]

    cases = [{**c, "seconds": plotted_time(c)} for c in res["cases"]
             if c["lib"] in PLOT_STYLE and c.get("d")]
    cases = [c for c in cases if isinstance(c["seconds"], (int, float))]
    panels = sorted({(c["d"], c["eps"]) for c in cases}, key=lambda k: (k[0], -k[1]))
    if not panels:
        return
    ncol = min(3, len(panels))
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 4.2 * nrow + 1.4), squeeze=False)
    for k, (d, eps) in enumerate(panels):
        ax = axes[k // ncol][k % ncol]
        for lib, (color, ls) in PLOT_STYLE.items():
            pts = sorted((c["N"], c["seconds"], c.get("reached_target", False))
                         for c in cases if c["lib"] == lib and c["eps"] == eps and c["d"] == d)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, color=color,
                    label=LIB_LABEL.get(lib, lib), lw=2.2 if lib == "sinkflow_streaming" else 1.3)
            for p in pts:
                ax.plot(p[0], p[1], "o" if p[2] else "^", color=color,
                        markersize=5 if p[2] else 8, fillstyle="full" if p[2] else "none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N = M")
        ax.set_ylabel("solve time [s]")
        ax.set_title(f"eps = {eps:g}, d = {d}")
        ax.grid(True, which="both", alpha=0.3)
    for k in range(len(panels), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    handles, labels = {}, {}
    for row in axes:
        for ax in row:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=3,
               fontsize=8)
    title = (f"Sinkhorn solve time to L1 marginal error {TARGET_ERR:g}, 2 threads "
             "(o: reached; open triangle: not reached, drawn at the measured lower bound "
             "of its time)")
    if res["profile"] == "quick":
        title += "\nQUICK mode (N = 1000 only, one repetition)"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


CONVENTIONS = {
    "sinkflow": "cost |x-y|^2; OT_eps = <P,C> + eps KL(P|a⊗b) = <a,f> + <b,g>; "
                "P = a_i b_j exp((f_i+g_j-C_ij)/eps).",
    "C yardstick": "same convention by construction (yardstick.c).",
    "POT sinkhorn_log": "M = ot.dist(x, y, 'sqeuclidean') = |x-y|^2, reg = eps; "
                        "f = eps (log_u - log a), g = eps (log_v - log b); "
                        "sinkhorn2 would return <P,M> only.",
    "POT empirical_sinkhorn (isLazy=True)": "metric 'sqeuclidean', reg = eps; returned "
                        "(f~, g~) are log-scalings: f = eps (f~ - log a), g = eps (g~ - log b).",
    "GeomLoss SamplesLoss (p=2)": "cost |x-y|^2/2 with eps_G = blur^2: blur = sqrt(eps/2); "
                        "f = 2 F, g = 2 G; OT_eps = 2 x GeomLoss value (debias=False).",
    "OTT-JAX PointCloud": "default cost SqEuclidean = |x-y|^2, epsilon absolute "
                          "(relative_epsilon=None); returned potentials include the weights "
                          "(P = exp((f~+g~-C)/eps)): f = f~ - eps log a, g = g~ - eps log b; "
                          "reg_ot_cost = OT_eps.",
}


def parent_main(args):
    os.environ.update(thread_env(args.threads))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [1000] if args.quick else args.sizes
    reps = 1 if args.quick else args.reps
    if args.time_limit is None:
        args.time_limit = 150.0 if args.quick else 300.0
    # sinkflow streaming runs before the peers: with --peer-limit-factor their limit is
    # measured from its time
    libs = sorted(args.libs, key=ALL_LIBS.index)
    if args.peer_limit_factor and "sinkflow_streaming" not in libs:
        raise SystemExit("--peer-limit-factor needs sinkflow_streaming among --libs")
    tmp_root = tempfile.mkdtemp(prefix="sinkflow-peers-")
    data_dir = args.data_dir or tmp_root
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    so, build_msg = build_yardstick(tmp_root)
    print(f"[peers] C yardstick: {build_msg}", flush=True)

    sinkflow_bin = Path(args.sinkflow_bin) if args.sinkflow_bin else REPO / "target" / "release" / "sinkflow"
    shown = args.sinkflow_bin or "target/release/sinkflow"
    sinkflow_status = "binary present" if sinkflow_bin.exists() else \
        f"skipped: {shown} not found (run `cargo build --release`)"
    if sinkflow_bin.exists():
        h = subprocess.run([str(sinkflow_bin), "sinkhorn", "--help"], capture_output=True)
        if h.returncode != 0:
            sinkflow_status = "skipped: the binary has no `sinkhorn` subcommand yet"
    print(f"[peers] sinkflow: {sinkflow_status}", flush=True)

    res = {
        "profile": "quick" if args.quick else "full", "finished": False,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(sys.executable),
        "threads": args.threads, "reps": reps, "time_limit": args.time_limit,
        "mem_limit_gb": args.mem_limit_gb, "target_l1": TARGET_ERR, "seed": SEED,
        "ref_tol": None if args.no_reference else args.ref_tol,
        "peer_limit_factor": args.peer_limit_factor,
        "sizes": sizes, "dims": args.dims, "eps": args.eps,
        "yardstick_build": build_msg, "sinkflow_status": sinkflow_status,
        "conventions": CONVENTIONS, "timing": "minimum over repetitions; solve only",
        "cases": [], "kernel": [], "references": {}, "agreement": {},
    }

    def save():
        dump_json(res, out_dir / "peers.json")

    try:
        if "c_yardstick" in libs:  # per-iteration yardstick (N = 4000 always included)
            for d in args.dims:
                for n in sorted(set(sizes) | {4000}):
                    xp, yp = make_inputs(data_dir, n, d)
                    kb = run_worker({"x_path": xp, "y_path": yp, "N": n, "d": d,
                                     "threads": args.threads, "yardstick_so": so,
                                     "time_limit": args.time_limit, "lib": "c_kernel"},
                                    args, tmp_root)
                    kb.setdefault("N", n)
                    kb.setdefault("d", d)
                    res["kernel"].append(kb)
                    print(f"[peers] C kernel d={d} N={n}: ns/pair-iteration by threads "
                          f"{kb.get('ns_per_pair', kb.get('status'))}", flush=True)
        for d in args.dims:
            for n in sizes:
                xp, yp = make_inputs(data_dir, n, d)
                common = {"x_path": xp, "y_path": yp, "N": n, "d": d, "threads": args.threads,
                          "reps": reps, "target": TARGET_ERR, "yardstick_so": so,
                          "max_iters": args.max_iters, "batch_size": args.batch_size,
                          "tmp_dir": tmp_root, "time_limit": args.time_limit,
                          "sinkflow_bin": str(sinkflow_bin), "sinkflow_bin_shown": shown,
                          "sinkflow_potentials_flag": args.sinkflow_potentials_flag,
                          "ref_tol": args.ref_tol}
                for eps in args.eps:
                    spec = {**common, "eps": eps}
                    key = f"{n}_{d}_{eps}"
                    if not args.no_reference:
                        ref = run_worker({**spec, "lib": "reference",
                                          "time_limit": 2 * args.time_limit}, args, tmp_root)
                        # a reference must be at least as accurate as the target of the peers
                        if isinstance(ref.get("ot_eps"), (int, float)) \
                                and ref.get("err_l1", math.inf) <= TARGET_ERR:
                            res["references"][key] = ref["ot_eps"]
                        res["cases"].append(ref)
                        print(f"[peers] d={d} N={n} eps={eps:g}: reference OT_eps = "
                              f"{ref.get('ot_eps')} (err {ref.get('err_l1')}, "
                              f"{ref.get('status')})", flush=True)
                    sf_plain = None  # sinkflow streaming (the target's row) in this run
                    for lib in libs:
                        lspec = {**spec, "lib": lib}
                        if lib in PEER_LIBS and sf_plain is not None:
                            lspec["sinkflow_seconds_same_run"] = sf_plain["seconds"]
                            if args.peer_limit_factor:
                                lspec.update(
                                    decide_after=args.peer_limit_factor * sf_plain["seconds"],
                                    exhaust=True, k_start=sf_plain.get("iterations"))
                        rec = run_worker(lspec, args, tmp_root)
                        rec.setdefault("time_limit", lspec["time_limit"])
                        if "sinkflow_seconds_same_run" in lspec:
                            rec["sinkflow_seconds_same_run"] = lspec["sinkflow_seconds_same_run"]
                        if lib == "sinkflow_streaming" and rec.get("reached_target"):
                            sf_plain = rec
                        res["cases"].append(rec)
                        print(f"[peers]   {lib:28s} {rec.get('status','?')[:60]:60s} "
                              f"t={fmt_num(rec.get('seconds'), '{:.4g}')} s "
                              f"it={rec.get('iterations', '–')} "
                              f"err={fmt_num(rec.get('err_l1'), '{:.2e}')} "
                              f"OT={fmt_num(rec.get('ot_eps'), '{:.12g}')}", flush=True)
                        save()
                    compute_agreement(res)
                    save()
    finally:
        res["finished"] = True  # also when interrupted by an exception (the cases say how)
        res["machine"]["load_average_at_end"] = list(os.getloadavg())
        loads = [v for c in res["cases"] for v in c.get("load_average_1min", [])]
        res["max_load"] = max(loads + res["machine"]["load_average_at_start"][:1]
                              + res["machine"]["load_average_at_end"][:1])
        save()
        if not args.keep_tmp:
            shutil.rmtree(tmp_root, ignore_errors=True)
    finish_report(res, out_dir)


def compute_agreement(res):
    """Spread of OT_eps among the libraries that reached the target, per (N, d, eps).
    Relative to the reference when it ran, else to the median of those values."""
    res["agreement"] = {}
    keys = sorted({(c.get("N"), c.get("d"), c.get("eps")) for c in res["cases"]
                   if c.get("N") is not None}, key=lambda k: (k[1] or 0, k[0], -k[2]))
    for n, d, eps in keys:
        vals = {c["lib"]: c["ot_eps"] for c in res["cases"]
                if (c.get("N"), c.get("d"), c.get("eps")) == (n, d, eps)
                and c.get("reached_target") and c["lib"] != "reference"
                and isinstance(c.get("ot_eps"), (int, float))}
        if not vals:
            continue
        key = f"{n}_{d}_{eps}"
        refv = res["references"].get(key)
        basis = "reference"
        if refv is None:
            v = sorted(vals.values())
            refv, basis = v[len(v) // 2], "median of the peers (no reference)"
        res["agreement"][key] = {
            "N": n, "d": d, "eps": eps, "reference": refv, "basis": basis,
            "n_libs": len(vals), "libs": sorted(vals),
            "max_rel_spread": (max(vals.values()) - min(vals.values())) / abs(refv),
            "max_rel_diff_vs_reference": max(abs(v - refv) for v in vals.values()) / abs(refv)}


def finish_report(res, out_dir):
    compute_agreement(res)
    if "max_load" not in res:
        m = res["machine"]
        loads = [v for c in res["cases"] for v in c.get("load_average_1min", [])]
        res["max_load"] = max(loads + m["load_average_at_start"][:1]
                              + m.get("load_average_at_end", [0.0])[:1])
    dump_json(res, out_dir / "peers.json")
    write_markdown(res, out_dir / "peers.md")
    write_plot(res, out_dir / "peers.png")
    print(f"[peers] wrote {out_dir / 'peers.json'}, peers.md, peers.png", flush=True)


def _lib_order(lib):
    return ALL_LIBS.index(lib) if lib in ALL_LIBS else -1


def merge_runs(paths, out_dir):
    """One report from several runs (e.g. a d = 2 sweep, N = 16000 at eps = 1, d = 16):
    cases, references and kernel rows are united (a later run replaces the same case); the
    machine, date, reps and limits of every run are kept in `runs`."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    res = dict(runs[0])
    described = []  # one entry per original run (a merged input brings its own list)
    for r in runs:
        if r.get("runs"):
            described += r["runs"]
            continue
        described.append({k: r.get(k) for k in ("profile", "date", "reps", "time_limit",
                                                "sizes", "dims", "eps", "max_load",
                                                "peer_limit_factor", "ref_tol", "finished")}
                         | {"libs": sorted({c["lib"] for c in r["cases"]}, key=_lib_order)})
    res["profile"] = f"merged from {len(described)} runs"
    res["runs"] = described
    res["date"] = " / ".join(r["date"] for r in described)
    res["reps"] = "/".join(str(r["reps"]) for r in described)
    res["time_limit"] = max(r["time_limit"] for r in runs)
    cases, kernel, refs = {}, {}, {}
    for r in runs:
        for c in r["cases"]:
            if str(c.get("status", "")).startswith("timeout"):
                c.setdefault("time_limit", r["time_limit"])
            cases[(c["lib"], c.get("N"), c.get("d"), c["eps"])] = c
        for kb in r["kernel"]:
            kernel[(kb.get("N"), kb.get("d"))] = kb
        refs.update(r["references"])
    res["cases"] = list(cases.values())
    res["kernel"] = list(kernel.values())
    res["references"] = refs
    res["agreement"] = {}
    res["max_load"] = max(r.get("max_load", 0.0) for r in runs)
    finish_report(res, out_dir)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N = 1000 only, one repetition")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    p.add_argument("--dims", type=int, nargs="+", default=[2])
    p.add_argument("--eps", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    p.add_argument("--libs", nargs="+", default=ALL_LIBS, choices=ALL_LIBS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3, help="repetitions (minimum reported)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds per (library, N, eps) case (default 300; 150 with --quick)")
    p.add_argument("--peer-limit-factor", type=float, default=None, metavar="F",
                   help="decide the time target at the least cost: a peer climbs its ladder "
                        "(GeomLoss from sinkflow's iteration count) until it reaches the "
                        "target or one of its solves has run F x sinkflow streaming's time in "
                        "the same case, when it is killed and enters with the time that "
                        "solve had run (--time-limit still caps the whole case)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the C reference solve at --ref-tol (OT_eps is then compared "
                        "with the median of the libraries that reached the target)")
    p.add_argument("--grace", type=float, default=60.0,
                   help="extra seconds before a case over its limit is killed")
    p.add_argument("--mem-limit-gb", type=float, default=16.0)
    p.add_argument("--max-iters", type=int, default=200000)
    p.add_argument("--batch-size", type=int, default=1000,
                   help="rows per block for POT lazy and OTT online")
    p.add_argument("--ref-tol", type=float, default=1e-8,
                   help="tolerance of the reference solve (C yardstick)")
    p.add_argument("--sinkflow-bin", default=None,
                   help="path of the sinkflow binary (default: target/release/sinkflow "
                        "under the repository root)")
    p.add_argument("--sinkflow-potentials-flag", default="--potentials-out",
                   help="option of `sinkflow sinkhorn` that writes f, g to a .json file (used "
                        "only if its help text lists it)")
    p.add_argument("--out-dir", default=str(REPO / "benches" / "results"))
    p.add_argument("--data-dir", default=None, help="where the .npy inputs go (default: temp)")
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite peers.md and peers.png from an existing peers.json in --out-dir")
    p.add_argument("--merge", nargs="+", default=None, metavar="PEERS_JSON",
                   help="write one report in --out-dir from several peers.json files")
    args = p.parse_args()
    if args.merge:
        merge_runs(args.merge, Path(args.out_dir))
        return
    if args.report_only:
        out_dir = Path(args.out_dir)
        res = json.loads((out_dir / "peers.json").read_text())
        finish_report(res, out_dir)
        return
    parent_main(args)


if __name__ == "__main__":
    main()
