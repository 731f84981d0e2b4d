"""Tests of the Python package `sinkflow` (the bindings of the Rust crate).

Run with the standard library (`python -m unittest discover -s tests/python -t .`) or with
pytest. Bit-identity checks compare with the `sinkflow` binary's `--json` output (shortest
round-trip decimals, so exact); the binary is taken from $SINKFLOW_BIN or target/release/ and
those checks are skipped when it is absent.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import numpy as np

import sinkflow
from sinkflow import ConvergenceError, InputError, gaussian, particles, sinkhorn

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SINKFLOW_BIN") or str(ROOT / "target" / "release" / "sinkflow")
HAVE_BIN = os.path.isfile(BIN) and os.access(BIN, os.X_OK)


def cli(*args):
    out = subprocess.run([BIN, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def fmt_vec(v):
    return ",".join(repr(float(t)) for t in np.ravel(v))


def fmt_mat(m):
    return ";".join(fmt_vec(r) for r in np.atleast_2d(m))


def cloud(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


M1, S1 = np.array([0.0, 0.0]), np.array([[1.0, 0.3], [0.3, 1.0]])
M2, S2 = np.array([1.0, -0.5]), np.array([[2.0, 0.0], [0.0, 0.5]])


@unittest.skipUnless(HAVE_BIN, "the sinkflow binary is not built")
class BitIdentityWithTheCli(unittest.TestCase):
    """The same inputs give the same doubles as the Rust API (through the CLI's JSON)."""

    def test_gaussian_divergence(self):
        ref = cli("gaussian", "divergence", "--eps", "0.5", "--mean-a", fmt_vec(M1),
                  "--cov-a", fmt_mat(S1), "--mean-b", fmt_vec(M2), "--cov-b", fmt_mat(S2))
        got = gaussian.divergence_parts(M1, S1, M2, S2, 0.5)
        for k in ("divergence", "ot_ab", "ot_aa", "ot_bb"):
            self.assertEqual(got[k], ref[k], k)
        self.assertEqual(gaussian.divergence(M1, S1, M2, S2, 0.5), ref["divergence"])
        self.assertEqual(gaussian.ot(M1, S1, M2, S2, 0.5).value, ref["ot_ab"])

    def test_gaussian_half_cost(self):
        ref = cli("gaussian", "divergence", "--eps", "0.3", "--cost", "half-sq",
                  "--mean-a", fmt_vec(M1), "--cov-a", fmt_mat(S1), "--mean-b", fmt_vec(M2),
                  "--cov-b", fmt_mat(S2))
        self.assertEqual(gaussian.divergence(M1, S1, M2, S2, 0.3, cost="half-sq"), ref["divergence"])

    def test_gaussian_flow(self):
        ref = cli("gaussian", "flow", "--eps", "0.5", "--mean0", "0,0", "--cov0", "1,0;0,0",
                  "--mean-target", "1,1", "--cov-target", "2,0.5;0.5,1", "--t-end", "4",
                  "--samples", "2")
        got = gaussian.flow([0, 0], [[1, 0], [0, 0]], [1, 1], [[2, 0.5], [0.5, 1]], 0.5, 4, 2)
        self.assertEqual(got["t"].tolist(), ref["t"])
        self.assertEqual(got["means"].tolist(), ref["mean"])
        self.assertEqual(got["covs"].tolist(), ref["cov"])
        self.assertEqual(got["divergence"].tolist(), ref["divergence"])

    def _files(self, tmp, x, y):
        px, py_ = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(px, x)
        np.save(py_, y)
        return px, py_

    def test_sinkhorn_solve_and_potentials(self):
        x, y = cloud(40, 2, 1), cloud(30, 2, 2) + 0.5
        with tempfile.TemporaryDirectory() as tmp:
            px, py_ = self._files(tmp, x, y)
            pot = os.path.join(tmp, "pot.json")
            ref = cli("sinkhorn", "--x", px, "--y", py_, "--eps", "0.3", "--potentials-out", pot)
            with open(pot) as f:
                fg = json.load(f)
        got = sinkhorn.solve(x, y, 0.3)
        self.assertEqual(got.ot, ref["ot"])
        self.assertEqual(got.transport_cost, ref["transport_cost"])
        self.assertEqual(got.primal, ref["primal"])
        self.assertEqual(got.iterations, ref["iterations"])
        self.assertEqual(got.marginal_error, ref["marginal_error"])
        self.assertEqual(got.f.tolist(), fg["f"])
        self.assertEqual(got.g.tolist(), fg["g"])
        self.assertEqual(got.acceleration, ref["acceleration"])

    def test_sinkhorn_plain_and_default_at_small_eps(self):
        # eps = 0.01 is below 1/2000 of the squared bounding-box diagonal (about 50): the
        # default anneals and over-relaxes; --plain / plain=True runs plain Sinkhorn. Both
        # bit-identical with the CLI.
        x, y = cloud(60, 2, 5), cloud(50, 2, 6) + 0.5
        with tempfile.TemporaryDirectory() as tmp:
            px, py_ = self._files(tmp, x, y)
            args = ("sinkhorn", "--x", px, "--y", py_, "--eps", "0.01", "--tol", "1e-6")
            ref_default = cli(*args)
            ref_plain = cli(*args, "--plain")
        default = sinkhorn.solve(x, y, 0.01, tol=1e-6)
        plain = sinkhorn.solve(x, y, 0.01, tol=1e-6, plain=True)
        for got, ref in ((default, ref_default), (plain, ref_plain)):
            for k in ("ot", "primal", "iterations", "marginal_error", "acceleration"):
                self.assertEqual(getattr(got, k), ref[k], k)
        self.assertEqual(plain.acceleration,
                         {"policy": "plain", "over_relaxation": None, "eps_scaling": None})
        self.assertEqual(default.acceleration["policy"], "auto")
        self.assertEqual(default.acceleration["over_relaxation"]["kind"], "anderson")
        self.assertGreater(default.acceleration["eps_scaling"]["stages"], 0)

    def test_sinkhorn_debiased_divergence(self):
        x, y = cloud(25, 3, 3), cloud(35, 3, 4)
        with tempfile.TemporaryDirectory() as tmp:
            px, py_ = self._files(tmp, x, y)
            ref = cli("sinkhorn", "--x", px, "--y", py_, "--eps", "0.5", "--debias",
                      "--cost", "half-sq")
        got = sinkhorn.divergence(x, y, 0.5, cost="half-sq")
        self.assertEqual(got.divergence, ref["divergence"])
        self.assertEqual(got.ot_xx, ref["ot_xx"])
        self.assertEqual(got.ot_yy, ref["ot_yy"])
        self.assertEqual(got.acceleration, ref["acceleration"])


@unittest.skipUnless(HAVE_BIN, "the sinkflow binary is not built")
class PmaGridsBitIdentityWithTheCli(unittest.TestCase):
    """sinkflow.pma.grid / grid_ipfp give the doubles of `sinkflow pma grid|ipfp --json`."""

    def assert_same(self, got, ref, n2=False):
        for k in ("t", "residual"):
            self.assertEqual(got[k].tolist(), ref[k], k)
        m = len(ref["t"])
        self.assertEqual(got["x"].reshape(len(ref["x"]), -1).squeeze(-1 if not n2 else None).tolist()
                         if not n2 else got["x"].reshape(-1, 2).tolist(), ref["x"])
        for k in ("phi", "rho"):
            self.assertEqual(got[k].reshape(m, -1).tolist(), ref[k], k)
        if n2:
            self.assertEqual(got["grad_phi"].reshape(m, -1, 2).tolist(), ref["grad_phi"])
        else:
            self.assertEqual(got["grad_phi"].tolist(), ref["grad_phi"])

    def test_grid_1d_catalogue(self):
        ref = cli("pma", "grid", "--f", "cos:0.3:1", "--g", "gauss:0.5:0.2", "--domain", "torus",
                  "--n", "16", "--t-end", "0.1", "--dt", "0.0005", "--samples", "2",
                  "--normalise")
        got = sinkflow.pma.grid("cos:0.3:1", "gauss:0.5:0.2", "torus", 0.1, 0.0005, n=16,
                                samples=2, normalise=True)
        self.assert_same(got, ref)

    def test_grid_1d_arrays_implicit(self):
        n = 12
        x = (np.arange(n) + 0.5) / n
        f = -np.log(1 + 0.2 * np.cos(np.pi * x))
        f += np.log(np.mean(np.exp(-f)))
        g = np.zeros(n)
        with tempfile.TemporaryDirectory() as tmp:
            pf, pg = os.path.join(tmp, "f.npy"), os.path.join(tmp, "g.npy")
            np.save(pf, f)
            np.save(pg, g)
            ref = cli("pma", "grid", "--f", pf, "--g", pg, "--domain", "interval", "--n", str(n),
                      "--t-end", "0.2", "--dt", "0.01", "--scheme", "implicit")
        got = sinkflow.pma.grid(f, g, "interval", 0.2, 0.01, scheme="implicit")
        self.assert_same(got, ref)

    def test_grid_2d(self):
        ref = cli("pma", "grid", "--f", "cos:0.2:1", "--g", "uniform", "--domain", "torus",
                  "--dim", "2", "--n", "8", "--t-end", "0.02", "--dt", "0.001", "--normalise")
        got = sinkflow.pma.grid("cos:0.2:1", "uniform", "torus", 0.02, 0.001, n=8, dim=2,
                                normalise=True)
        self.assertEqual(got["phi"].shape, (2, 8, 8))
        self.assert_same(got, ref, n2=True)

    def test_grid_ipfp_1d_and_2d(self):
        ref = cli("pma", "ipfp", "--f", "cos:0.3:1", "--g", "uniform", "--domain", "torus",
                  "--n", "16", "--eps", "0.02", "--t-end", "0.1", "--samples", "2", "--normalise")
        got = sinkflow.pma.grid_ipfp("cos:0.3:1", "uniform", "torus", 0.02, 0.1, n=16,
                                     samples=2, normalise=True)
        self.assertEqual(got["k"], ref["k"])
        self.assert_same(got, ref)
        ref = cli("pma", "ipfp", "--f", "uniform", "--g", "cos:0.2:1", "--domain", "box",
                  "--n", "8", "--eps", "0.1", "--t-end", "0.2", "--normalise")
        got = sinkflow.pma.grid_ipfp("uniform", "cos:0.2:1", "box", 0.1, 0.2, n=8,
                                     normalise=True)
        self.assertEqual(got["k"], ref["k"])
        self.assert_same(got, ref, n2=True)


@unittest.skipUnless(HAVE_BIN, "the sinkflow binary is not built")
class PmaParticlesAndMirrorBitIdentityWithTheCli(unittest.TestCase):
    def test_particle_ipfp(self):
        x, y = cloud(20, 2, 11), cloud(25, 2, 12) * 0.7
        with tempfile.TemporaryDirectory() as tmp:
            px, py_ = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(px, x)
            np.save(py_, y)
            ref = cli("pma", "particles", "--x", px, "--y", py_, "--eps", "0.2", "--t-end", "1")
        got = sinkflow.pma.particle_ipfp(x, y, 0.2, 1.0)
        self.assertEqual(got["k"], ref["k"])
        for k in ("t", "x", "phi", "grad_phi", "rho_ratio", "residual"):
            self.assertEqual(got[k].tolist(), ref[k], k)

    def test_mirror(self):
        ref = cli("pma", "mirror", "--energy", "kl", "--s0", "1,0;0,2", "--theta", "1,0;0,1",
                  "--target", "2,0;0,1", "--t-end", "1", "--samples", "2")
        got = sinkflow.pma.mirror("kl", 1.0, s0=np.diag([1.0, 2.0]), theta=np.eye(2),
                                  target=np.diag([2.0, 1.0]), samples=2)
        for k in ("t", "mirror_cov", "wasserstein_cov"):
            self.assertEqual(got[k].tolist(), ref[k], k)
        ref = cli("pma", "mirror", "--energy", "euclidean", "--mirror", "quartic", "--t-end",
                  "3", "--samples", "3")
        got = sinkflow.pma.mirror("euclidean", 3.0, mirror="quartic", samples=3)
        for k in ("t", "mirror_z", "gradient_flow_z"):
            self.assertEqual(got[k].tolist(), ref[k], k)


class PmaGridsBadInput(unittest.TestCase):
    def test_bad_inputs(self):
        u = np.zeros(8)
        cases = [
            (lambda: sinkflow.pma.grid(u, u, "sphere", 0.1, 0.01), "domain"),
            (lambda: sinkflow.pma.grid(u, u, "torus", 0.1, 0.01, scheme="rk4"), "scheme"),
            (lambda: sinkflow.pma.grid(u, u, "torus", 0.1, -0.01), "dt"),
            (lambda: sinkflow.pma.grid(u, u[:6], "torus", 0.1, 0.01), ""),
            (lambda: sinkflow.pma.grid(u, u + 1.0, "torus", 0.1, 0.01), "g"),
            (lambda: sinkflow.pma.grid("no-such", "uniform", "torus", 0.1, 0.01, n=8), "catalogue"),
            (lambda: sinkflow.pma.grid("uniform", "uniform", "torus", 0.1, 0.01), "n is required"),
            (lambda: sinkflow.pma.grid(u, u, "torus", 0.1, 0.01, phi0=np.zeros(3)), "phi0"),
            (lambda: sinkflow.pma.grid(np.zeros((8, 8)), np.zeros((8, 8)), "interval", 0.1, 0.01), "domain"),
            (lambda: sinkflow.pma.grid_ipfp(u, u, "torus", -0.1, 0.1), "eps"),
            (lambda: sinkflow.pma.grid_ipfp(u, u, "torus", 1e-4, 0.1), ""),
            (lambda: sinkflow.pma.particle_ipfp(cloud(5, 2, 1), cloud(5, 3, 2), 0.1, 1.0), "dimension"),
            (lambda: sinkflow.pma.particle_ipfp(cloud(5, 2, 1), cloud(5, 2, 2), 0.0, 1.0), "eps"),
            (lambda: sinkflow.pma.mirror("kl", 1.0, s0=np.eye(2), theta=np.eye(2)), "target"),
            (lambda: sinkflow.pma.mirror("entropy", 1.0, s0=-np.eye(2), theta=np.eye(2)), ""),
            (lambda: sinkflow.pma.mirror("euclidean", 1.0, mirror="cubic"), "unknown mirror"),
            (lambda: sinkflow.pma.mirror("magic", 1.0, s0=np.eye(2), theta=np.eye(2)), "unknown energy"),
        ]
        for i, (call, text) in enumerate(cases):
            with self.subTest(case=i, expected=text):
                with self.assertRaises(InputError) as cm:
                    call()
                self.assertIn(text, str(cm.exception))


class FiniteMetricAndWasserstein(unittest.TestCase):
    @unittest.skipUnless(HAVE_BIN, "the sinkflow binary is not built")
    def test_metric_bit_identical_with_the_cli(self):
        x = np.array([[0.0, 0.0], [0.3, 0.1], [0.7, 0.4], [1.0, 0.2], [0.5, 0.9]])
        mu = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
        sigma = np.array([0.5, -0.2, 0.1, -0.3, -0.1])
        with tempfile.TemporaryDirectory() as tmp:
            paths = [os.path.join(tmp, k + ".npy") for k in ("x", "mu", "sigma")]
            for p, a in zip(paths, (x, mu, sigma)):
                np.save(p, a)
            ref = cli("finite", "metric", "--x", paths[0], "--eps", "0.3", "--mu", paths[1],
                      "--sigma", paths[2])
        self.assertEqual(sinkflow.finite.metric(x, mu, sigma, 0.3), ref["g"])

    @unittest.skipUnless(HAVE_BIN, "the sinkflow binary is not built")
    def test_flow_bit_identical_with_the_cli_in_double_and_double_double(self):
        # 40 points on [-2, 2], double well, eps = 0.02: s = 1.9 (double is safe) and
        # eps = 0.15: s = 14, past the double range (cond K ~ 1e15 > 1e10), double-double only
        x = np.linspace(-2.0, 2.0, 40)
        v = (x ** 2 - 1.0) ** 2 + 0.3 * x
        mu0 = np.full(40, 1 / 40)
        with tempfile.TemporaryDirectory() as tmp:
            paths = [os.path.join(tmp, k + ".npy") for k in ("x", "v", "mu0")]
            for p, a in zip(paths, (x, v, mu0)):
                np.save(p, a)
            for eps, precision in ((0.02, "double"), (0.15, "double-double")):
                for scheme in ("implicit", "reflected"):
                    ref = cli("finite", "flow", "--x", paths[0], "--v", paths[1], "--mu0",
                              paths[2], "--eps", repr(eps), "--t-end", "0.1", "--dt", "0.05",
                              "--scheme", scheme, "--precision", precision)
                    out = sinkflow.finite.flow(x, v, mu0, eps, 0.05, 2, scheme=scheme,
                                               precision=precision)
                    self.assertEqual(out["mu"].tolist(), ref["mu"], (eps, precision, scheme))
        with self.assertRaises(InputError) as cm:
            sinkflow.finite.flow(np.linspace(-2, 2, 40), np.zeros(40), np.full(40, 1 / 40),
                                 0.15, 0.05, 1)
        self.assertIn("eps", str(cm.exception))
        with self.assertRaises(InputError):
            sinkflow.finite.flow(np.linspace(-2, 2, 40), np.zeros(40), np.full(40, 1 / 40),
                                 0.02, 0.05, 1, precision="quad")

    def test_wasserstein_flow_1d_and_2d(self):
        x = np.linspace(0.0, 1.0, 11)
        v = (x - 0.3) ** 2
        mu0 = np.full(11, 1 / 11)
        out = sinkflow.finite.wasserstein_flow(x, v, mu0, [0.0, 0.5, 1.0])
        self.assertEqual(out["mu"].shape, (3, 11))
        self.assertEqual(out["mu"][0].tolist(), mu0.tolist())
        self.assertAlmostEqual(out["mu"][-1].sum(), 1.0, places=12)
        self.assertGreater(out["mu"][-1][3], mu0[3])
        xs, ys = np.linspace(0, 1, 6), np.linspace(0, 1, 4)
        X, Y = np.meshgrid(xs, ys)
        # V depends on x only: mass moves along the last axis, the rows stay equal.
        out = sinkflow.finite.wasserstein_flow((xs, ys), X, np.full(24, 1 / 24), [0.0, 0.2])
        self.assertEqual(out["mu"].shape, (2, 4, 6))
        self.assertAlmostEqual(out["mu"][-1].sum(), 1.0, places=12)
        last = out["mu"][-1]
        for j in range(1, 4):
            np.testing.assert_allclose(last[j], last[0], rtol=1e-12)
        self.assertGreater(last[0, 0], 1 / 24)
        self.assertLess(last[0, -1], 1 / 24)

    def test_bad_inputs(self):
        x = np.linspace(0.0, 1.0, 5)
        mu = np.full(5, 0.2)
        cases = [
            (lambda: sinkflow.finite.metric(x, mu, np.ones(5), 0.3), "mass"),
            (lambda: sinkflow.finite.metric(x, mu, np.zeros(4), 0.3), "sigma"),
            (lambda: sinkflow.finite.metric(x, mu, np.zeros(5), -1.0), "eps"),
            (lambda: sinkflow.finite.wasserstein_flow(x[::-1], x, mu, [1.0]), ""),
            (lambda: sinkflow.finite.wasserstein_flow(x, x, mu, [1.0, 0.5]), ""),
        ]
        for i, (call, text) in enumerate(cases):
            with self.subTest(case=i, expected=text):
                with self.assertRaises(InputError) as cm:
                    call()
                self.assertIn(text, str(cm.exception))


class ArrayHandling(unittest.TestCase):
    """dtype, memory order and shape conventions of the inputs; ownership of the outputs."""

    def setUp(self):
        self.x, self.y = cloud(30, 2, 5), cloud(20, 2, 6) + 1.0

    def test_float32_is_computed_in_float64(self):
        x32, y32 = self.x.astype(np.float32), self.y.astype(np.float32)
        a = sinkhorn.solve(x32, y32, 0.5)
        b = sinkhorn.solve(x32.astype(np.float64), y32.astype(np.float64), 0.5)
        self.assertEqual(a.ot, b.ot)
        self.assertEqual(a.f.dtype, np.float64)
        self.assertTrue(np.array_equal(a.f, b.f))

    def test_fortran_order_and_strided_views_equal_c_order(self):
        ref = sinkhorn.solve(self.x, self.y, 0.5)
        f = sinkhorn.solve(np.asfortranarray(self.x), np.asfortranarray(self.y), 0.5)
        big = np.zeros((30, 4))
        big[:, ::2] = self.x
        s = sinkhorn.solve(big[:, ::2], self.y, 0.5)
        for r in (f, s):
            self.assertEqual(r.ot, ref.ot)
            self.assertTrue(np.array_equal(r.f, ref.f))

    def test_1d_points_and_lists(self):
        x1, y1 = self.x[:, 0], self.y[:, 0]
        a = sinkhorn.solve(x1, y1, 0.5)
        b = sinkhorn.solve(x1[:, None], y1[:, None], 0.5)
        c = sinkhorn.solve(x1.tolist(), y1.tolist(), 0.5)
        self.assertEqual(a.ot, b.ot)
        self.assertEqual(a.ot, c.ot)
        self.assertEqual(a.barycentric_map(x1[:3]).shape, (3, 1))

    def test_scalar_gaussians_for_d1(self):
        self.assertEqual(gaussian.w2(0.0, 1.0, 1.0, 4.0), gaussian.w2([0.0], [[1.0]], [1.0], [[4.0]]))
        self.assertAlmostEqual(gaussian.w2(0.0, 1.0, 1.0, 4.0), 2.0, places=14)  # 1 + (2-1)^2

    def test_outputs_own_the_rust_buffers_without_copy(self):
        r = sinkhorn.solve(self.x, self.y, 0.5)
        for a in (r.f, r.g, r.history):
            self.assertEqual(a.dtype, np.float64)
            self.assertFalse(a.flags.owndata)  # the buffer belongs to the Rust Vec it came from
            self.assertEqual(type(a.base).__name__, "PySliceContainer")
        self.assertIs(r.f, r.f)  # the attribute is the array, not a fresh copy
        p = r.plan()
        self.assertEqual(p.shape, (30, 20))
        self.assertTrue(p.flags.c_contiguous)
        self.assertAlmostEqual(p.sum(), 1.0, places=12)

    def test_plan_marginals_and_map(self):
        r = sinkhorn.solve(self.x, self.y, 0.5, tol=1e-12)
        p = sinkhorn.plan(r)
        self.assertLess(np.abs(p.sum(1) - 1 / 30).sum(), 1e-11)
        self.assertLess(np.abs(p.sum(0) - 1 / 20).sum(), 1e-12)
        t = sinkhorn.barycentric_map(r, self.x)
        self.assertTrue(np.allclose(t, (p @ self.y) / p.sum(1)[:, None], rtol=1e-12, atol=1e-12))
        self.assertTrue(np.allclose(r.f_at(self.x), r.f, rtol=0, atol=1e-9))

    def test_iterator_reproduces_the_solver_bit_for_bit(self):
        r = sinkhorn.solve(self.x, self.y, 0.5, max_iters=7, allow_nonconvergence=True,
                           plain=True)
        it = sinkhorn.iterate(self.x, self.y, 0.5)
        for _ in range(7):
            kind_f = next(it)[0]
            kind, f, g, _ = next(it)
        self.assertEqual((kind_f, kind), ("f", "g"))
        self.assertTrue(np.array_equal(f, r.f))
        self.assertTrue(np.array_equal(g, r.g))

    def test_weights(self):
        wx = np.full(30, 1 / 30)
        a = sinkhorn.solve(self.x, self.y, 0.5, wx=wx)
        self.assertEqual(a.ot, sinkhorn.solve(self.x, self.y, 0.5).ot)
        b = sinkhorn.solve(self.x, self.y, 0.5, wx=wx * 3, normalise=True)
        self.assertAlmostEqual(a.ot, b.ot, places=12)

    def test_gaussian_objects(self):
        o = gaussian.ot(M1, S1, M2, S2, 0.5)
        self.assertAlmostEqual(o.value, o.transport_cost + 0.5 * o.mutual_information, places=12)
        f, g = o.potentials
        # OT_eps = E_mu f + E_nu g for quadratic forms x^T Q x + l^T x + k.
        ef = np.trace(f["quad"] @ S1) + M1 @ f["quad"] @ M1 + f["lin"] @ M1 + f["constant"]
        eg = np.trace(g["quad"] @ S2) + M2 @ g["quad"] @ M2 + g["lin"] @ M2 + g["constant"]
        self.assertAlmostEqual(ef + eg, o.value, places=12)
        mean, cov = gaussian.plan(M1, S1, M2, S2, 0.5)
        self.assertEqual(mean.shape, (4,))
        self.assertTrue(np.array_equal(cov[:2, 2:], o.cross_covariance))
        k = gaussian.map(M1, S1, M2, S2, 0.5)
        self.assertTrue(np.allclose(gaussian.map(M1, S1, M2, S2, 0.5, x=M1), M2))
        self.assertTrue(np.array_equal(k, o.map_matrix))
        b = gaussian.bures_flow(M1, S1, M2, S2, [0.0, 1.0, 50.0])
        self.assertAlmostEqual(b["divergence"][0], gaussian.w2(M1, S1, M2, S2), places=12)
        self.assertLess(b["divergence"][-1], 1e-12)


class Exceptions(unittest.TestCase):
    """Every error reaches Python as InputError / ConvergenceError with the library's message."""

    def setUp(self):
        self.x, self.y = cloud(10, 2, 7), cloud(12, 2, 8)

    def test_hierarchy(self):
        self.assertTrue(issubclass(InputError, ValueError))
        self.assertTrue(issubclass(ConvergenceError, RuntimeError))

    def test_bad_inputs(self):
        nan = self.x.copy()
        nan[3, 1] = np.nan
        cases = [
            (lambda: sinkhorn.solve(self.x, self.y, 0.0), "eps must be finite and > 0"),
            (lambda: sinkhorn.solve(self.x, self.y, float("nan")), "eps"),
            (lambda: sinkhorn.solve(nan, self.y, 0.5), "non-finite value in coordinates"),
            (lambda: sinkhorn.solve(self.x, self.y[:, :1], 0.5), "dimension mismatch"),
            (lambda: sinkhorn.solve(np.zeros((0, 2)), self.y, 0.5), "empty"),
            (lambda: sinkhorn.solve(np.zeros((2, 2, 2)), self.y, 0.5), "shape"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, wx=-np.ones(10) / 10), "negative weight"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, wx=np.ones(10)), "pass normalise"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, wx=np.ones(3) / 3), "dimension mismatch"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, cost="l1"), "unknown cost"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, mode="gpu"), "unknown mode"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, tol=-1.0), "tolerance"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, over_relaxation="fast"), "over_relaxation"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5, f0=np.zeros(10)), "both f0 and g0"),
            (lambda: sinkhorn.solve(["a"], self.y, 0.5), "float64"),
            (lambda: sinkhorn.solve(self.x, self.y, 0.5).barycentric_map(np.zeros((2, 3))), "dimension"),
            (lambda: gaussian.ot(M1, [[1, 0], [0, -1]], M2, S2, 0.5), "semi-definite"),
            (lambda: gaussian.ot(M1, [[1, 2], [0, 1]], M2, S2, 0.5), "symmetric"),
            (lambda: gaussian.ot(M1, S1, [1, 2, 3], np.eye(3), 0.5), "dimension"),
            (lambda: gaussian.ot(M1, np.ones((2, 3)), M2, S2, 0.5), "square"),
            (lambda: gaussian.flow(M1, S1, M2, S2, 0.5, -1.0), "time"),
            (lambda: gaussian.flow(M1, S1, M2, S2, 0.5, 1.0, method="rk4"), "unknown method"),
            (lambda: gaussian.bures_flow(M1, S1, M2, S2, [float("inf")]), "time"),
            (lambda: particles.drift(self.x, self.y, 0.5, kind="l-step", L=2), "odd"),
            (lambda: particles.drift(self.x, self.y, 0.5, kind="magic"), "unknown drift"),
            (lambda: particles.flow(self.x, self.y, 0.5, 1.0, dt=0.0), "dt"),
            (lambda: particles.flow(self.x, self.y, 0.5, 1.0, integrator="rk4"), "integrator"),
            (lambda: sinkflow.finite.flow([[0.0]], [0.0], [1.0], 0.1, 0.1, 1), "point"),
            (lambda: sinkflow.finite.kernel_condition(np.linspace(0, 1, 5), -1.0), "eps"),
            (lambda: sinkflow.pma.riccati([[1, 0], [0, -1]], np.eye(2), [1.0]), ""),
            (lambda: sinkflow.validate(only=["no-such-experiment"]), "unknown experiment id"),
            (lambda: sinkflow.validate(only=["gaussian-convergence"], profile="huge"), "unknown profile"),
        ]
        for i, (call, text) in enumerate(cases):
            with self.subTest(case=i, expected=text):
                with self.assertRaises(InputError) as cm:
                    call()
                self.assertIn(text, str(cm.exception))

    def test_nonconvergence_carries_residual_and_partial_result(self):
        with self.assertRaises(ConvergenceError) as cm:
            sinkhorn.solve(self.x, self.y, 0.01, max_iters=3)
        e = cm.exception
        self.assertIn("did not converge", str(e))
        self.assertIsInstance(e.residual, float)
        self.assertFalse(e.result.converged)
        self.assertEqual(e.result.iterations, 3)
        self.assertEqual(e.result.marginal_error, e.residual)
        r = sinkhorn.solve(self.x, self.y, 0.01, max_iters=3, allow_nonconvergence=True)
        self.assertFalse(r.converged)
        self.assertEqual(r.ot, e.result.ot)

    def test_nonconvergence_of_divergence_drift_and_flow(self):
        with self.assertRaises(ConvergenceError) as cm:
            sinkhorn.divergence(self.x, self.y, 0.01, max_iters=2)
        self.assertFalse(cm.exception.result.converged)
        d = sinkhorn.divergence(self.x, self.y, 0.01, max_iters=2, allow_nonconvergence=True)
        self.assertFalse(d.converged)
        with self.assertRaises(ConvergenceError) as cm:
            particles.drift(self.x, self.y, 0.01, max_iters=2)
        self.assertGreater(cm.exception.residual, 0.0)
        with self.assertRaises(ConvergenceError) as cm:
            particles.flow(self.x, self.y, 0.01, 0.1, dt=0.05, samples=1, max_iters=2)
        self.assertFalse(cm.exception.result["converged"])
        out = particles.flow(self.x, self.y, 0.01, 0.1, dt=0.05, samples=1, max_iters=2,
                             allow_nonconvergence=True)
        self.assertEqual(out["positions"].shape, (2, 10, 2))

    def test_numerical_failure_is_a_convergence_error(self):
        # A Gram matrix too ill-conditioned for the finite-space flow: a numerical refusal.
        pts = np.linspace(0.0, 1.0, 50)
        mu0 = np.full(50, 1 / 50)
        try:
            sinkflow.finite.flow(pts, pts, mu0, 10.0, 0.01, 1)
        except (InputError, ConvergenceError) as e:
            self.assertIn("eps", str(e))
        else:
            self.fail("an ill-conditioned kernel was accepted")


class ReleasesTheGilAndStopsOnCtrlC(unittest.TestCase):
    def _long_problem(self):
        x = cloud(1500, 2, 9)
        return x, x[::-1] + 0.25

    def test_a_python_thread_runs_during_a_solve(self):
        x, y = self._long_problem()
        ticks, stop = [0], threading.Event()

        def spin():
            while not stop.is_set():
                ticks[0] += 1

        t = threading.Thread(target=spin)
        t.start()
        time.sleep(0.05)
        before = ticks[0]
        t0 = time.perf_counter()
        sinkhorn.solve(x, y, 0.05, tol=1e-12, max_iters=300, allow_nonconvergence=True)
        elapsed = time.perf_counter() - t0
        during = ticks[0] - before
        stop.set()
        t.join()
        self.assertGreater(elapsed, 0.05)
        # With the GIL held the thread could not run at all during the solve.
        self.assertGreater(during, 1000)

    @unittest.skipUnless(hasattr(signal, "pthread_kill"), "POSIX signals")
    def test_ctrl_c_interrupts_a_long_solve_within_a_second(self):
        if threading.current_thread() is not threading.main_thread():
            self.skipTest("signals are delivered to the main thread")
        x, y = self._long_problem()
        main = threading.main_thread().ident
        timer = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
        t0 = time.perf_counter()
        timer.start()
        with self.assertRaises(KeyboardInterrupt):
            sinkhorn.solve(x, y, 1e-4, tol=1e-14, max_iters=10**9)
        elapsed = time.perf_counter() - t0
        timer.join()
        self.assertLess(elapsed, 0.3 + 1.0)
        # The library is usable afterwards (the check was uninstalled, nothing pending).
        self.assertTrue(sinkhorn.solve(x[:20], y[:20], 0.5).converged)

    @unittest.skipUnless(hasattr(signal, "pthread_kill"), "POSIX signals")
    def test_ctrl_c_interrupts_a_long_pma_grid_run(self):
        if threading.current_thread() is not threading.main_thread():
            self.skipTest("signals are delivered to the main thread")
        main = threading.main_thread().ident
        timer = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
        t0 = time.perf_counter()
        timer.start()
        with self.assertRaises(KeyboardInterrupt):  # 2e6 explicit steps
            sinkflow.pma.grid("cos:0.3:1", "uniform", "torus", 100.0, 5e-5, n=64,
                              normalise=True)
        elapsed = time.perf_counter() - t0
        timer.join()
        self.assertLess(elapsed, 0.3 + 1.0)

    @unittest.skipUnless(hasattr(signal, "pthread_kill"), "POSIX signals")
    def test_ctrl_c_interrupts_a_long_particle_flow(self):
        if threading.current_thread() is not threading.main_thread():
            self.skipTest("signals are delivered to the main thread")
        x, y = cloud(50, 2, 10), cloud(50, 2, 11)
        main = threading.main_thread().ident
        timer = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
        t0 = time.perf_counter()
        timer.start()
        with self.assertRaises(KeyboardInterrupt):  # a one-sided drift never enters the solver
            particles.flow(x, y, 0.5, 1e4, dt=1e-3, kind="one-sided", monitor_divergence=False,
                           keep_positions=False)
        elapsed = time.perf_counter() - t0
        timer.join()
        self.assertLess(elapsed, 0.3 + 1.0)


class Validation(unittest.TestCase):
    def test_submodules_import_like_packages(self):
        import sinkflow.gaussian as g
        from sinkflow.sinkhorn import solve

        self.assertIs(g, sinkflow.gaussian)
        self.assertIs(solve, sinkflow.sinkhorn.solve)
        self.assertTrue(sinkflow.__version__)

    def test_experiments_are_listed(self):
        ex = sinkflow.experiments()
        self.assertGreater(len(ex), 5)
        self.assertEqual(len({e["id"] for e in ex}), len(ex))
        self.assertTrue(all(e["title"] for e in ex))

    def test_validate_one_experiment(self):
        with tempfile.TemporaryDirectory() as tmp:
            s = sinkflow.validate(only="gaussian-convergence", out=tmp)
            self.assertTrue((Path(tmp) / "summary.json").is_file())
            self.assertTrue((Path(tmp) / "REPORT.md").is_file())
        ids = {e["id"] for e in s["experiments"]}
        self.assertTrue(ids)
        self.assertTrue(all(i.startswith("gaussian-convergence") for i in ids), ids)
        self.assertTrue(all(e["verdict"] in ("pass", "fail", "inconclusive") for e in s["experiments"]))


class WorkedExample(unittest.TestCase):
    def test_hand_written_numpy_sinkhorn_flow_against_the_gaussian_flow(self):
        # The README's example: a user's own particle flow of S_eps(., target) in numpy.
        from statistics import NormalDist

        def T(x, y, eps, it=60):  # entropic map x -> E[Y | x], uniform weights, cost |x-y|^2
            C, g = (x[:, None] - y[None]) ** 2 / eps, np.zeros(len(y))
            for _ in range(it):
                f = -np.log(np.exp(g[None] - C).mean(1))
                g = -np.log(np.exp(f[:, None] - C).mean(0))
            P = np.exp(f[:, None] + g[None] - C)
            return (P @ y) / P.sum(1)

        q = np.array([NormalDist().inv_cdf((i + 0.5) / 100) for i in range(100)])
        x, y, eps, dt = q.copy(), 1.0 + 0.5 * q, 0.5, 0.05
        v = lambda x: 2 * (T(x, y, eps) - T(x, x, eps))  # velocity of the S_eps(., y) flow
        for _ in range(20):  # Heun to t = 1
            k = v(x)
            x = x + dt / 2 * (k + v(x + dt * k))
        ref = sinkflow.gaussian.flow(q.mean(), q.var(), y.mean(), y.var(), eps, t_end=1.0, samples=1)
        # Heun's O(dt^2) error, 60 Sinkhorn sweeps and N = 100 particles: measured gaps 4.9e-4
        # (mean) and 2.2e-4 (variance), so 1e-3 leaves a factor 2 and catches any O(dt) bug.
        self.assertAlmostEqual(x.mean(), ref["means"][-1, 0], delta=1e-3)
        self.assertAlmostEqual(x.var(), ref["covs"][-1, 0, 0], delta=1e-3)


if __name__ == "__main__":
    unittest.main()
