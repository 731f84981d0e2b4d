//! The hot loops: cost rows and the row-wise log-sum-exp.
//!
//! Everything the solvers do per iteration is one call of [`lse_row`] per row:
//! $$\mathrm{lse}_i=\log\sum_j\exp\bigl(u_j-C_{ij}/\varepsilon\bigr),\qquad
//! u_j=h_j/\varepsilon+\log\rho_j,$$
//! so that $T(h,\rho)(x_i)=-\varepsilon\,\mathrm{lse}_i$. The row of costs comes either from a
//! materialised matrix ([`crate::sinkhorn::Mode::Dense`]) or from [`fill_cost_row`]
//! ([`crate::sinkhorn::Mode::Streaming`]); the dense matrix is itself filled by
//! [`fill_cost_row`], so both modes run the same arithmetic on the same numbers.
//!
//! [`lse_row`] is two passes over contiguous slices with [`LANES`] independent accumulators
//! (max, then sum of exponentials), written without bounds checks in the inner loops so that
//! the compiler vectorises them. `f64::exp` is a libm call and does not vectorise, so the
//! default exponential is [`exp_nonpositive`], a branch-free Cody–Waite + degree-13 Taylor
//! exponential (arguments are always $\le 0$ after the max shift); [`ExpKernel::Std`] keeps the
//! libm path, and `tests/sinkhorn_kernel.rs` checks that both give the same OT_eps to 1e-12
//! relative and that the two exponentials agree to a few ulp.

/// Width of the independent accumulators in [`lse_row`].
pub const LANES: usize = 8;

/// Which exponential the row kernel uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExpKernel {
    /// [`exp_nonpositive`]: vectorisable, within a few ulp of `f64::exp` (default).
    #[default]
    Fast,
    /// `f64::exp` (libm): the reference path.
    Std,
}

/// An exponential usable in the kernel (only ever called with arguments $\le 0$ or $-\infty$).
pub trait ExpFn {
    /// $e^x$ for $x\le 0$.
    fn exp(x: f64) -> f64;
    /// Whether the FMA builds (AVX2, AVX-512) may replace the summation pass by the
    /// hand-vectorised [`exp_nonpositive`] with fused multiply-adds (true for [`FastExp`]
    /// only; the name predates the AVX2 form).
    const AVX512_FMA: bool = false;
}

/// `f64::exp`.
pub struct StdExp;
impl ExpFn for StdExp {
    #[inline(always)]
    fn exp(x: f64) -> f64 {
        x.exp()
    }
}

/// [`exp_nonpositive`].
pub struct FastExp;
impl ExpFn for FastExp {
    const AVX512_FMA: bool = true;
    #[inline(always)]
    fn exp(x: f64) -> f64 {
        exp_nonpositive(x)
    }
}

/// $e^x$ for $x\le0$ (including $-\infty$), branch-free so that loops over it vectorise.
///
/// Cody–Waite reduction $x=k\ln2+r$, $\lvert r\rvert\le\ln2/2$ (fdlibm's split of $\ln 2$, so
/// $k\ln2_{hi}$ is exact), Taylor polynomial of degree 13 for $e^r$ (truncation error
/// $<r^{14}/14!<5\cdot10^{-18}$), and $2^k$ built from its exponent bits. Arguments below
/// $-708$ return exactly 0 (true value $<3\cdot10^{-308}$, irrelevant next to the max term 1
/// of a shifted log-sum-exp). Positive arguments are outside the contract (results are wrong
/// above $\approx 709$, fine below); the kernel never produces them.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // fdlibm ln2_hi
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // fdlibm ln2_lo
                                                               // 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    const UNDER: f64 = -708.0;
    let xc = if x < UNDER { UNDER } else { x };
    let t = xc * LOG2E + SHIFT;
    let kf = t - SHIFT;
    let r = (xc - kf * LN2_HI) - kf * LN2_LO;
    // Horner, 1/n! for n = 13..0
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let k = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let scale = f64::from_bits((k.wrapping_add(1023) << 52) as u64);
    let y = p * scale;
    if x < UNDER {
        0.0
    } else {
        y
    }
}

/// One row of costs $c(z,y_j)$, $j<m$, from coordinate differences (MATH.md §2), in the
/// summation order of [`crate::Cost::eval`] (so the values are bit-identical to it).
///
/// `coords` is coordinate-major `d × m` (`coords[k*m + j]` = coordinate `k` of $y_j$),
/// `factor` the $\kappa$ of $c=\kappa\lvert x-y\rvert^2$.
#[inline(always)]
pub fn fill_cost_row(z: &[f64], coords: &[f64], m: usize, factor: f64, out: &mut [f64]) {
    let out = &mut out[..m];
    out.fill(0.0);
    for (k, &zk) in z.iter().enumerate() {
        let row = &coords[k * m..(k + 1) * m];
        for (o, &yk) in out.iter_mut().zip(row) {
            let t = zk - yk;
            *o += t * t;
        }
    }
    if factor != 1.0 {
        for o in out.iter_mut() {
            *o *= factor;
        }
    }
}

/// $\log\sum_j\exp(u_j-c_j\,\varepsilon^{-1})$ with a max shift; `z` is scratch of length
/// $\ge m$ and holds $u_j-c_j\varepsilon^{-1}$ on return.
///
/// Returns $-\infty$ if every term is $-\infty$ (never the case for valid weights).
#[inline(always)]
pub fn lse_row<E: ExpFn>(u: &[f64], c: &[f64], inv_eps: f64, z: &mut [f64]) -> f64 {
    let m = u.len();
    let c = &c[..m];
    let z = &mut z[..m];
    let mx = shifted_row(u, c, inv_eps, z);
    lse_from_shifted::<E>(z, mx)
}

/// Pass 2 of [`lse_row`]: $m+\log\sum_j e^{z_j-m}$ given $m=\max_j z_j$ (the one summation
/// order every row kernel uses).
#[inline(always)]
pub fn lse_from_shifted<E: ExpFn>(z: &[f64], mx: f64) -> f64 {
    if !mx.is_finite() {
        return mx;
    }
    let mut s = [0.0f64; LANES];
    let mut zc = z.chunks_exact(LANES);
    for zz in &mut zc {
        for l in 0..LANES {
            s[l] += E::exp(zz[l] - mx);
        }
    }
    for (l, &t) in zc.remainder().iter().enumerate() {
        s[l] += E::exp(t - mx);
    }
    let mut sum = 0.0;
    for t in s {
        sum += t;
    }
    mx + sum.ln()
}

/// Pass 1 of [`lse_row`]: `z_j = u_j - c_j inv_eps`, returns $\max_j z_j$.
#[inline(always)]
pub fn shifted_row(u: &[f64], c: &[f64], inv_eps: f64, z: &mut [f64]) -> f64 {
    let m = u.len();
    let c = &c[..m];
    let z = &mut z[..m];
    let mut mx = [f64::NEG_INFINITY; LANES];
    let mut zc = z.chunks_exact_mut(LANES);
    let mut uc = u.chunks_exact(LANES);
    let mut cc = c.chunks_exact(LANES);
    for ((zz, uu), ccc) in (&mut zc).zip(&mut uc).zip(&mut cc) {
        for l in 0..LANES {
            let t = uu[l] - ccc[l] * inv_eps;
            zz[l] = t;
            mx[l] = if t > mx[l] { t } else { mx[l] };
        }
    }
    for (((zz, &uu), &ccc), l) in zc
        .into_remainder()
        .iter_mut()
        .zip(uc.remainder())
        .zip(cc.remainder())
        .zip(0..)
    {
        let t = uu - ccc * inv_eps;
        *zz = t;
        mx[l] = if t > mx[l] { t } else { mx[l] };
    }
    let mut out = f64::NEG_INFINITY;
    for t in mx {
        out = if t > out { t } else { out };
    }
    out
}

/// Streaming rows of a point cloud, fused: `z_j = u_j - c(x, y_j)/eps` with the cost computed
/// on the fly from coordinate differences, returns $\max_j z_j$. Bit-identical to
/// [`fill_cost_row`] followed by [`shifted_row`] (same operations in the same order: the squared
/// differences are summed coordinate by coordinate, then scaled by `factor`), without the
/// intermediate cost row.
#[inline(always)]
pub fn shifted_row_cloud(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    let d = x.len();
    let u = &u[..m];
    let z = &mut z[..m];
    let mut mx = [f64::NEG_INFINITY; LANES];
    let chunks = m / LANES;
    for ch in 0..chunks {
        let base = ch * LANES;
        let mut acc = [0.0f64; LANES];
        for (k, &xk) in x.iter().enumerate() {
            let row = &coords[k * m + base..k * m + base + LANES];
            for l in 0..LANES {
                let t = xk - row[l];
                acc[l] += t * t;
            }
        }
        if factor != 1.0 {
            for a in acc.iter_mut() {
                *a *= factor;
            }
        }
        let uu = &u[base..base + LANES];
        let zz = &mut z[base..base + LANES];
        for l in 0..LANES {
            let t = uu[l] - acc[l] * inv_eps;
            zz[l] = t;
            mx[l] = if t > mx[l] { t } else { mx[l] };
        }
    }
    for j in chunks * LANES..m {
        let mut acc = 0.0f64;
        for k in 0..d {
            let t = x[k] - coords[k * m + j];
            acc += t * t;
        }
        if factor != 1.0 {
            acc *= factor;
        }
        let t = u[j] - acc * inv_eps;
        z[j] = t;
        let l = j - chunks * LANES;
        mx[l] = if t > mx[l] { t } else { mx[l] };
    }
    let mut out = f64::NEG_INFINITY;
    for t in mx {
        out = if t > out { t } else { out };
    }
    out
}

/// The fused streaming row log-sum-exp ([`shifted_row_cloud`] then [`lse_from_shifted`]),
/// bit-identical to [`fill_cost_row`] + [`lse_row`].
#[inline(always)]
pub fn lse_row_cloud<E: ExpFn>(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    let mx = shifted_row_cloud_any(x, coords, m, factor, u, inv_eps, z);
    lse_from_shifted::<E>(&z[..m], mx)
}

/// [`shifted_row_cloud`] through its fixed-dimension specialisations when `d` ≤ 3 (the one
/// place that chooses between them).
#[inline(always)]
fn shifted_row_cloud_any(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    match x.len() {
        1 => shifted_row_cloud_fixed::<1>(x, coords, m, factor, u, inv_eps, z),
        2 => shifted_row_cloud_fixed::<2>(x, coords, m, factor, u, inv_eps, z),
        3 => shifted_row_cloud_fixed::<3>(x, coords, m, factor, u, inv_eps, z),
        _ => shifted_row_cloud(x, coords, m, factor, u, inv_eps, z),
    }
}

/// [`shifted_row_cloud`] for a compile-time dimension `D` (1, 2, 3: the common cases), so that
/// the coordinate loop unrolls and the lane loop vectorises; same operations in the same order.
#[inline(always)]
fn shifted_row_cloud_fixed<const D: usize>(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    let rows: [&[f64]; D] = std::array::from_fn(|k| &coords[k * m..(k + 1) * m]);
    let xs: [f64; D] = std::array::from_fn(|k| x[k]);
    let u = &u[..m];
    let z = &mut z[..m];
    let mut mx = [f64::NEG_INFINITY; LANES];
    let mut zc = z.chunks_exact_mut(LANES);
    let mut uc = u.chunks_exact(LANES);
    let mut j = 0;
    for (zz, uu) in (&mut zc).zip(&mut uc) {
        let mut acc = [0.0f64; LANES];
        for k in 0..D {
            let row = &rows[k][j..j + LANES];
            for l in 0..LANES {
                let t = xs[k] - row[l];
                acc[l] += t * t;
            }
        }
        if factor != 1.0 {
            for a in acc.iter_mut() {
                *a *= factor;
            }
        }
        for l in 0..LANES {
            let t = uu[l] - acc[l] * inv_eps;
            zz[l] = t;
            mx[l] = if t > mx[l] { t } else { mx[l] };
        }
        j += LANES;
    }
    for (l, (zz, &uu)) in zc
        .into_remainder()
        .iter_mut()
        .zip(uc.remainder())
        .enumerate()
    {
        let mut acc = 0.0f64;
        for k in 0..D {
            let t = xs[k] - rows[k][j + l];
            acc += t * t;
        }
        if factor != 1.0 {
            acc *= factor;
        }
        let t = uu - acc * inv_eps;
        *zz = t;
        mx[l] = if t > mx[l] { t } else { mx[l] };
    }
    let mut out = f64::NEG_INFINITY;
    for t in mx {
        out = if t > out { t } else { out };
    }
    out
}

/// The instruction-set path of the kernels: chosen once per process, the best the CPU has
/// unless the environment variable `SINKFLOW_SIMD` (`avx512`, `avx2` or `baseline`) asks for
/// another (for benchmarking the paths side by side on one machine). `avx512` needs AVX-512F
/// and FMA, `avx2` needs AVX2; `baseline` is the portable build (SSE2 on x86-64). Asking for a
/// path the CPU lacks, or an unknown name, is an error of every solve (see [`simd_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdPath {
    /// AVX-512F + FMA kernels (the hand-vectorised exponential sum included).
    Avx512,
    /// AVX2 + FMA kernels (the exponential sum with explicit intrinsics, bit-identical to the
    /// AVX-512 path's).
    Avx2,
    /// The portable kernels, baseline target features.
    Baseline,
}

impl SimdPath {
    /// The name used by `SINKFLOW_SIMD` and reported as `"simd"` in the CLI's JSON.
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Avx512 => "avx512",
            SimdPath::Avx2 => "avx2",
            SimdPath::Baseline => "baseline",
        }
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx512 => {
                std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            SimdPath::Avx512 | SimdPath::Avx2 => false,
            SimdPath::Baseline => true,
        }
    }

    /// The best path this CPU has.
    pub fn best() -> SimdPath {
        [SimdPath::Avx512, SimdPath::Avx2]
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(SimdPath::Baseline)
    }

    fn from_env() -> Result<SimdPath, String> {
        let Ok(v) = std::env::var("SINKFLOW_SIMD") else {
            return Ok(SimdPath::best());
        };
        let path = match v.trim().to_ascii_lowercase().as_str() {
            "" => return Ok(SimdPath::best()),
            "avx512" => SimdPath::Avx512,
            "avx2" => SimdPath::Avx2,
            "baseline" => SimdPath::Baseline,
            other => {
                return Err(format!(
                    "unknown path '{other}' (expected avx512, avx2 or baseline)"
                ))
            }
        };
        if path.available() {
            Ok(path)
        } else {
            Err(format!(
                "this CPU cannot run the {} path (best available: {})",
                path.name(),
                SimdPath::best().name()
            ))
        }
    }
}

static SIMD_PATH: std::sync::OnceLock<Result<SimdPath, String>> = std::sync::OnceLock::new();

/// The kernels' instruction-set path for this process (read once from `SINKFLOW_SIMD`, else
/// the best the CPU has); an unknown name or a path the CPU lacks is
/// [`SinkhornError::InvalidParameter`](crate::sinkhorn::SinkhornError::InvalidParameter).
pub fn simd_path() -> Result<SimdPath, crate::sinkhorn::SinkhornError> {
    SIMD_PATH
        .get_or_init(SimdPath::from_env)
        .clone()
        .map_err(|message| crate::sinkhorn::SinkhornError::InvalidParameter {
            name: "SINKFLOW_SIMD",
            message,
        })
}

/// The path the dispatchers run: the selected one, or (when the selection is invalid, which
/// every solve reports as an error before it reaches a kernel) the best available.
#[inline]
fn active_path() -> SimdPath {
    match SIMD_PATH.get_or_init(SimdPath::from_env) {
        Ok(p) => *p,
        Err(_) => SimdPath::best(),
    }
}

/// [`lse_row_cloud`] on the process's path ([`simd_path`]): the one-row case of the engine's
/// row tiles, so it agrees bit for bit with the engine's half-step on the same path; the
/// rounding contract is that of [`lse_row_dispatch`].
#[inline]
pub fn lse_row_cloud_dispatch<E: ExpFn>(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    let src = TileSource::Cloud {
        pts: x,
        d: x.len(),
        coords,
        stride: m,
        factor,
    };
    let mut out = [0.0];
    let a = TileArgs {
        src,
        r0: 0,
        u,
        m,
        inv_eps,
        zs: m,
    };
    lse_tile::<E, 1>(active_path(), a, z, &mut out);
    out[0]
}

/// [`lse_row`] on the process's path ([`simd_path`]), as the engine's row tiles compute it.
/// The baseline path is bit-identical to [`lse_row`]. The AVX2 and AVX-512 paths (both with
/// FMA) compute the fast exponential's sum with explicit intrinsics: the same Cody–Waite
/// reduction and degree-13 Horner steps as [`exp_nonpositive`] but fused, in the same lane
/// order, so the two FMA paths agree with each other bit for bit and differ from the baseline
/// by at most $(m+2)\cdot2u$ in the result (the exponentials differ by a few ulp); the libm
/// exponential ([`StdExp`]) is bit-identical on every path. On one machine every caller
/// (dense, streaming, step API, `c_transform`) goes through the same row code on the same
/// path, so they agree bit for bit with each other.
#[inline]
pub fn lse_row_dispatch<E: ExpFn>(u: &[f64], c: &[f64], inv_eps: f64, z: &mut [f64]) -> f64 {
    let m = u.len();
    let mut out = [0.0];
    let a = TileArgs {
        src: TileSource::Rows { c, stride: m },
        r0: 0,
        u,
        m,
        inv_eps,
        zs: m,
    };
    lse_tile::<E, 1>(active_path(), a, z, &mut out);
    out[0]
}

/// `z_j <- e^{z_j}` in place for $z_j\le 700$ (the range of [`exp_nonpositive`]'s formula;
/// $-\infty$ and arguments below $-708$ give 0) on the process's path ([`simd_path`]): the
/// vector forms of [`exp_nonpositive`] on the AVX2 / AVX-512 paths (a few ulp apart from the
/// portable form), the portable form on the baseline path and for the tail. Used by the
/// sparse mode's exact column accumulation and its stored values, whose terms are not a
/// row's log-sum-exp.
pub(crate) fn exp_in_place(z: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        match active_path() {
            // SAFETY: the path is only selected (or accepted) when the CPU has the features.
            SimdPath::Avx512 => return unsafe { exp_in_place_avx512(z) },
            SimdPath::Avx2 => return unsafe { exp_in_place_avx2(z) },
            SimdPath::Baseline => {}
        }
    }
    for v in z.iter_mut() {
        *v = exp_nonpositive(*v);
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_in_place_avx2(z: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut ch = z.chunks_exact_mut(4);
    for c in &mut ch {
        let v = _mm256_loadu_pd(c.as_ptr());
        _mm256_storeu_pd(c.as_mut_ptr(), exp4_fma(v));
    }
    for v in ch.into_remainder() {
        *v = exp_nonpositive(*v);
    }
}

/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn exp_in_place_avx512(z: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut ch = z.chunks_exact_mut(8);
    for c in &mut ch {
        let v = _mm512_loadu_pd(c.as_ptr());
        _mm512_storeu_pd(c.as_mut_ptr(), exp8_avx512(v));
    }
    for v in ch.into_remainder() {
        *v = exp_nonpositive(*v);
    }
}

/// [`fill_cost_row`] compiled for AVX2 when available (bit-identical, see
/// [`lse_row_dispatch`]).
#[inline]
pub fn fill_cost_row_dispatch(z: &[f64], coords: &[f64], m: usize, factor: f64, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        let path = active_path();
        if path == SimdPath::Avx512 {
            // SAFETY: the path is only selected when the CPU has AVX-512F (and FMA).
            return unsafe { fill_cost_row_avx512(z, coords, m, factor, out) };
        }
        if path == SimdPath::Avx2 {
            // SAFETY: the path is only selected when the CPU has AVX2.
            return unsafe { fill_cost_row_avx2(z, coords, m, factor, out) };
        }
    }
    fill_cost_row(z, coords, m, factor, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_cost_row_avx2(z: &[f64], coords: &[f64], m: usize, factor: f64, out: &mut [f64]) {
    fill_cost_row(z, coords, m, factor, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fill_cost_row_avx512(z: &[f64], coords: &[f64], m: usize, factor: f64, out: &mut [f64]) {
    fill_cost_row(z, coords, m, factor, out)
}

/// $u_j=h_j\varepsilon^{-1}+\log\rho_j$ (the one formula every caller uses, so that the solver,
/// the step API and [`crate::sinkhorn::c_transform`] agree bit for bit).
#[inline]
pub fn scaled_potential(h: &[f64], log_w: &[f64], inv_eps: f64, u: &mut [f64]) {
    for ((o, &hj), &lw) in u.iter_mut().zip(h).zip(log_w) {
        *o = hj * inv_eps + lw;
    }
}

/// $\log\rho_j$ ($-\infty$ for zero weights).
pub fn log_weights(w: &[f64]) -> Vec<f64> {
    w.iter().map(|&t| t.ln()).collect()
}

// ------------------------------------------------------------------ row tiles

/// Rows per tile of the engine's half-step kernel: every load of the other side's coordinates
/// (or of the scaled potential) in pass 1 serves `TILE` rows; pass 2 sums the rows one after
/// the other (and, for stored rows on the AVX paths, prefetches the next tile's rows). Each
/// row keeps its own arithmetic and summation order, so a row's result does not depend on the
/// tile it sits in.
pub const TILE: usize = 4;

/// The inputs of a tile: rows `r0..` of `src` against the scaled potential `u` (`m` long);
/// row `r` of the tile writes its $z$ at `r * zs` of the scratch.
#[derive(Clone, Copy)]
struct TileArgs<'a> {
    src: TileSource<'a>,
    r0: usize,
    u: &'a [f64],
    m: usize,
    inv_eps: f64,
    zs: usize,
}

/// One 64-byte line of eight doubles (the alignment unit of [`AlignedBuf`]).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f64; LANES]);

/// A buffer of doubles whose first element sits on a 64-byte boundary, allocated in whole
/// 64-byte lines (so rows of a stride that is a multiple of [`LANES`] are aligned too).
#[derive(Clone, Default)]
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: f64) -> AlignedBuf {
        AlignedBuf {
            lines: vec![Line([fill; LANES]); len.div_ceil(LANES)],
            len,
        }
    }

    /// Make room for at least `len` doubles (contents unspecified afterwards).
    pub fn ensure(&mut self, len: usize) {
        if len > self.len {
            *self = AlignedBuf::new(len, 0.0);
        }
    }

    pub fn as_slice(&self) -> &[f64] {
        // SAFETY: `lines` holds `LANES * lines.len() >= len` contiguous initialised doubles
        // (`Line` is `repr(C)` over `[f64; LANES]`, alignment 64 ≥ that of f64).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f64>(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        // SAFETY: as in `as_slice`, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f64>(), self.len) }
    }
}

/// `len` rounded up to a multiple of [`LANES`]: the row stride of the engine's aligned copies.
#[inline]
pub(crate) fn padded(len: usize) -> usize {
    len.div_ceil(LANES) * LANES
}

/// Where pass 1 of a tile gets its costs.
#[derive(Clone, Copy)]
pub(crate) enum TileSource<'a> {
    /// Stored cost rows: row `r` is `c[r * stride..][..m]`.
    Rows { c: &'a [f64], stride: usize },
    /// Rows are the points `pts` (row-major, `d` per point) against the coordinate-major
    /// copy `coords` of the other cloud (`coords[k * stride + j]`), cost
    /// `factor · |x − y|²` summed as in [`fill_cost_row`].
    Cloud {
        pts: &'a [f64],
        d: usize,
        coords: &'a [f64],
        stride: usize,
        factor: f64,
    },
}

/// `src[at..at + rem]` in a chunk of `LANES`, the rest `fill` (a fixed-size copy for a full
/// chunk: a copy of run-time length becomes a `memmove` call per chunk).
#[inline(always)]
fn load_chunk(src: &[f64], at: usize, rem: usize, fill: f64) -> [f64; LANES] {
    let mut a = [fill; LANES];
    if rem == LANES {
        a.copy_from_slice(&src[at..at + LANES]);
    } else {
        a[..rem].copy_from_slice(&src[at..at + rem]);
    }
    a
}

/// `dst[at..at + rem] = a[..rem]` (fixed-size for a full chunk, as [`load_chunk`]).
#[inline(always)]
fn store_chunk(dst: &mut [f64], at: usize, rem: usize, a: &[f64; LANES]) {
    if rem == LANES {
        dst[at..at + LANES].copy_from_slice(a);
    } else {
        dst[at..at + rem].copy_from_slice(&a[..rem]);
    }
}

/// The `LANES` costs of columns `j..j + LANES` for the `R` rows `r0..r0 + R`, each exactly as
/// [`fill_cost_row`] computes it. `rem < LANES` marks a tail chunk (columns past `m` read as
/// zero coordinates / zero costs; their terms are discarded by the caller's `-inf`).
#[inline(always)]
fn costs_chunk<const R: usize, const D: usize, const SCALED: bool>(
    (pts, d, coords, stride, factor): (&[f64], usize, &[f64], usize, f64),
    r0: usize,
    j: usize,
    rem: usize,
) -> [[f64; LANES]; R] {
    let dd = if D == 0 { d } else { D };
    let mut acc = [[0.0f64; LANES]; R];
    for k in 0..dd {
        let y = load_chunk(coords, k * stride + j, rem, 0.0);
        for (r, a) in acc.iter_mut().enumerate() {
            let xk = pts[(r0 + r) * dd + k];
            for l in 0..LANES {
                let t = xk - y[l];
                a[l] += t * t;
            }
        }
    }
    if SCALED {
        for a in acc.iter_mut() {
            for v in a.iter_mut() {
                *v *= factor;
            }
        }
    }
    acc
}

/// Pass 1 of a tile of `R` rows starting at row `r0`: `z[r * zs + j] = u_j − c_rj ε⁻¹` for
/// `j < m`, returns each row's maximum. Same operations in the same order as
/// [`shifted_row`] / [`shifted_row_cloud`] (the max is order-independent).
#[inline(always)]
fn tile_pass1<const R: usize>(
    src: TileSource<'_>,
    r0: usize,
    u: &[f64],
    m: usize,
    inv_eps: f64,
    z: &mut [f64],
    zs: usize,
) -> [f64; R] {
    match src {
        TileSource::Rows { c, stride } => tile_pass1_with::<R, _>(
            u,
            m,
            inv_eps,
            z,
            zs,
            #[inline(always)]
            |j, rem| std::array::from_fn(|r| load_chunk(c, (r0 + r) * stride + j, rem, 0.0)),
        ),
        TileSource::Cloud {
            pts,
            d,
            coords,
            stride,
            factor,
        } => {
            macro_rules! cloud {
                ($d:literal, $s:literal) => {
                    tile_pass1_with::<R, _>(
                        u,
                        m,
                        inv_eps,
                        z,
                        zs,
                        #[inline(always)]
                        |j, rem| {
                            costs_chunk::<R, $d, $s>((pts, d, coords, stride, factor), r0, j, rem)
                        },
                    )
                };
            }
            match (d, factor == 1.0) {
                (1, true) => cloud!(1, false),
                (1, false) => cloud!(1, true),
                (2, true) => cloud!(2, false),
                (2, false) => cloud!(2, true),
                (3, true) => cloud!(3, false),
                (3, false) => cloud!(3, true),
                (_, true) => cloud!(0, false),
                (_, false) => cloud!(0, true),
            }
        }
    }
}

#[inline(always)]
fn tile_pass1_with<const R: usize, F: Fn(usize, usize) -> [[f64; LANES]; R]>(
    u: &[f64],
    m: usize,
    inv_eps: f64,
    z: &mut [f64],
    zs: usize,
    costs: F,
) -> [f64; R] {
    let mut mx = [[f64::NEG_INFINITY; LANES]; R];
    let mut j = 0;
    while j < m {
        let rem = (m - j).min(LANES);
        let uu = load_chunk(u, j, rem, f64::NEG_INFINITY);
        let cs = costs(j, rem);
        for r in 0..R {
            let mut t8 = [0.0f64; LANES];
            for l in 0..LANES {
                let t = uu[l] - cs[r][l] * inv_eps;
                t8[l] = t;
                mx[r][l] = if t > mx[r][l] { t } else { mx[r][l] };
            }
            store_chunk(z, r * zs + j, rem, &t8);
        }
        j += LANES;
    }
    let mut out = [f64::NEG_INFINITY; R];
    for r in 0..R {
        for t in mx[r] {
            out[r] = if t > out[r] { t } else { out[r] };
        }
    }
    out
}

/// Pass 2 of a tile in the portable form: the lane sums of [`lse_from_shifted`] for each row
/// (a tail chunk is read through a `-inf`-padded copy, whose terms are exactly 0).
#[inline(always)]
fn tile_pass2_generic<E: ExpFn, const R: usize>(
    z: &[f64],
    zs: usize,
    m: usize,
    mx: [f64; R],
) -> [[f64; LANES]; R] {
    // One row after the other: eight lanes of exponentials are already independent, and
    // more chains in flight spill the sixteen vector registers of SSE2/AVX2.
    let mut s = [[0.0f64; LANES]; R];
    for r in 0..R {
        let mut j = 0;
        while j < m {
            let rem = (m - j).min(LANES);
            let zz = load_chunk(z, r * zs + j, rem, f64::NEG_INFINITY);
            for l in 0..LANES {
                s[r][l] += E::exp(zz[l] - mx[r]);
            }
            j += LANES;
        }
    }
    s
}

/// `mx + log Σ_l s_l` with the lane sums added in lane order (the final step of
/// [`lse_from_shifted`]); a non-finite max is returned as is.
#[inline(always)]
fn finish_row(s: &[f64; LANES], mx: f64) -> f64 {
    if !mx.is_finite() {
        return mx;
    }
    let mut sum = 0.0;
    for &t in s {
        sum += t;
    }
    mx + sum.ln()
}

/// The portable tile (baseline build; also the AVX paths' form for the libm exponential).
#[inline(always)]
fn lse_tile_generic<E: ExpFn, const R: usize>(a: TileArgs<'_>, z: &mut [f64], out: &mut [f64]) {
    let TileArgs {
        src,
        r0,
        u,
        m,
        inv_eps,
        zs,
    } = a;
    let mx = tile_pass1::<R>(src, r0, u, m, inv_eps, z, zs);
    let s = tile_pass2_generic::<E, R>(z, zs, m, mx);
    for r in 0..R {
        out[r] = finish_row(&s[r], mx[r]);
    }
}

/// The AVX2 + FMA exponential of four lanes: the operations of [`exp_nonpositive`] with the
/// reduction and the Horner steps fused (the same function as the AVX-512 one, lane by lane).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp4_fma(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let under = _mm256_set1_pd(-708.0);
    let ok = _mm256_cmp_pd::<_CMP_GE_OQ>(x, under);
    let xc = _mm256_max_pd(x, under);
    let shift = _mm256_set1_pd(6_755_399_441_055_744.0);
    let t = _mm256_fmadd_pd(xc, _mm256_set1_pd(std::f64::consts::LOG2_E), shift);
    let kf = _mm256_sub_pd(t, shift);
    let r = _mm256_fnmadd_pd(
        kf,
        _mm256_set1_pd(f64::from_bits(0x3fe6_2e42_fee0_0000)),
        xc,
    );
    let r = _mm256_fnmadd_pd(kf, _mm256_set1_pd(f64::from_bits(0x3dea_39ef_3579_3c76)), r);
    let mut p = _mm256_set1_pd(1.0 / 6_227_020_800.0);
    for c in EXP_HORNER {
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
    }
    let k = _mm256_sub_epi64(_mm256_castpd_si256(t), _mm256_castpd_si256(shift));
    let e = _mm256_slli_epi64::<52>(_mm256_add_epi64(k, _mm256_set1_epi64x(1023)));
    _mm256_and_pd(_mm256_mul_pd(p, _mm256_castsi256_pd(e)), ok)
}

/// $1/n!$ for $n=12,\dots,0$ (the Horner steps after the leading $1/13!$).
const EXP_HORNER: [f64; 13] = [
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// Pass 2 of a tile with AVX2 + FMA: lanes 0–3 and 4–7 of each chunk in two accumulators per
/// row, i.e. the lane sums of the portable form, with [`exp4_fma`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_pass2_avx2<const R: usize>(
    z: &[f64],
    zs: usize,
    m: usize,
    mx: [f64; R],
    next: Option<[*const f64; R]>,
) -> [[f64; LANES]; R] {
    use std::arch::x86_64::*;
    let vmx: [__m256d; R] = std::array::from_fn(|r| _mm256_set1_pd(mx[r]));
    let mut lo = [_mm256_setzero_pd(); R];
    let mut hi = [_mm256_setzero_pd(); R];
    let full = m / LANES * LANES;
    // Row after row (two chains of four lanes each, as the C yardstick): eight chains of a
    // four-row tile spill the sixteen ymm registers.
    for r in 0..R {
        let mut j = 0;
        while j < full {
            if let Some(nx) = next {
                _mm_prefetch::<_MM_HINT_T1>(nx[r].add(j).cast::<i8>());
            }
            let p = z.as_ptr().add(r * zs + j);
            let x0 = _mm256_sub_pd(_mm256_loadu_pd(p), vmx[r]);
            let x1 = _mm256_sub_pd(_mm256_loadu_pd(p.add(4)), vmx[r]);
            lo[r] = _mm256_add_pd(lo[r], exp4_fma(x0));
            hi[r] = _mm256_add_pd(hi[r], exp4_fma(x1));
            j += LANES;
        }
    }
    if full < m {
        let rem = m - full;
        for r in 0..R {
            let mut zz = [f64::NEG_INFINITY; LANES];
            zz[..rem].copy_from_slice(&z[r * zs + full..r * zs + m]);
            let x0 = _mm256_sub_pd(_mm256_loadu_pd(zz.as_ptr()), vmx[r]);
            let x1 = _mm256_sub_pd(_mm256_loadu_pd(zz.as_ptr().add(4)), vmx[r]);
            lo[r] = _mm256_add_pd(lo[r], exp4_fma(x0));
            hi[r] = _mm256_add_pd(hi[r], exp4_fma(x1));
        }
    }
    let mut s = [[0.0f64; LANES]; R];
    for r in 0..R {
        _mm256_storeu_pd(s[r].as_mut_ptr(), lo[r]);
        _mm256_storeu_pd(s[r].as_mut_ptr().add(4), hi[r]);
    }
    s
}

/// The stored cost rows of the tile after this one (rows `r0 + R..r0 + 2R`), when the tile
/// reads stored rows and those rows exist: pass 2 (compute-bound) prefetches them into the
/// L2 cache line by line, so that the next pass 1 does not wait for memory (dense mode reads
/// a whole cost matrix per half-step). Prefetches change no value.
#[inline(always)]
fn next_rows<const R: usize>(src: TileSource<'_>, r0: usize, m: usize) -> Option<[*const f64; R]> {
    match src {
        TileSource::Rows { c, stride } if (r0 + 2 * R - 1) * stride + m <= c.len() => {
            Some(std::array::from_fn(|r| c[(r0 + R + r) * stride..].as_ptr()))
        }
        _ => None,
    }
}

/// The AVX-512F exponential of eight lanes: [`exp4_fma`]'s operations, with the $2^k$
/// scaling done by `scalef` (the same values: the product by a power of two is exact here).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp8_avx512(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let under = _mm512_set1_pd(-708.0);
    let ok = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(x, under);
    let xc = _mm512_max_pd(x, under);
    let shift = _mm512_set1_pd(6_755_399_441_055_744.0);
    let t = _mm512_fmadd_pd(xc, _mm512_set1_pd(std::f64::consts::LOG2_E), shift);
    let kf = _mm512_sub_pd(t, shift);
    let r = _mm512_fnmadd_pd(
        kf,
        _mm512_set1_pd(f64::from_bits(0x3fe6_2e42_fee0_0000)),
        xc,
    );
    let r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(f64::from_bits(0x3dea_39ef_3579_3c76)), r);
    let mut p = _mm512_set1_pd(1.0 / 6_227_020_800.0);
    for c in EXP_HORNER {
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
    }
    _mm512_maskz_scalef_pd(ok, p, kf)
}

/// Pass 2 of a tile with AVX-512F: one accumulator of eight lanes per row (the lane sums of
/// the portable form), with [`exp8_avx512`].
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn tile_pass2_avx512<const R: usize>(
    z: &[f64],
    zs: usize,
    m: usize,
    mx: [f64; R],
    next: Option<[*const f64; R]>,
) -> [[f64; LANES]; R] {
    use std::arch::x86_64::*;
    let vmx: [__m512d; R] = std::array::from_fn(|r| _mm512_set1_pd(mx[r]));
    let mut acc = [_mm512_setzero_pd(); R];
    let full = m / LANES * LANES;
    // Row after row: the iterations of one row are independent but for the accumulator's
    // addition, so the out-of-order core keeps several exponentials in flight; interleaving
    // the rows of the tile instead made the compiler keep the accumulators on the stack (a
    // load and a store per row and chunk, measured slower).
    for r in 0..R {
        let zr = z.as_ptr().add(r * zs);
        let mut a = _mm512_setzero_pd();
        let mut j = 0;
        while j < full {
            if let Some(nx) = next {
                _mm_prefetch::<_MM_HINT_T1>(nx[r].add(j).cast::<i8>());
            }
            let x = _mm512_sub_pd(_mm512_loadu_pd(zr.add(j)), vmx[r]);
            a = _mm512_add_pd(a, exp8_avx512(x));
            j += LANES;
        }
        acc[r] = a;
    }
    if full < m {
        let rem = m - full;
        for r in 0..R {
            let mut zz = [f64::NEG_INFINITY; LANES];
            zz[..rem].copy_from_slice(&z[r * zs + full..r * zs + m]);
            let x = _mm512_sub_pd(_mm512_loadu_pd(zz.as_ptr()), vmx[r]);
            acc[r] = _mm512_add_pd(acc[r], exp8_avx512(x));
        }
    }
    let mut s = [[0.0f64; LANES]; R];
    for r in 0..R {
        _mm512_storeu_pd(s[r].as_mut_ptr(), acc[r]);
    }
    s
}

/// Pass 1 of a tile with explicit AVX-512F intrinsics: [`tile_pass1`]'s operations in the
/// same order (products and differences unfused, so the values are bit-identical to it), a
/// tail chunk through masked loads (`u` padded with `-inf`, costs and coordinates with 0)
/// and a masked store. Each load of `u` and of the other side's coordinates serves the `R`
/// rows of the tile; the cost factor is tested once per tile, not per chunk.
///
/// # Safety
/// The CPU must support AVX-512F; the slices must hold what [`TileSource`] describes for
/// rows `r0..r0 + R` (checked by the assertions) and `z` must hold `(R - 1) * zs + m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn tile_pass1_avx512<const R: usize>(
    src: TileSource<'_>,
    r0: usize,
    u: &[f64],
    m: usize,
    inv_eps: f64,
    z: &mut [f64],
    zs: usize,
) -> [f64; R] {
    use std::arch::x86_64::*;
    assert!(u.len() >= m);
    let vinv = _mm512_set1_pd(inv_eps);
    let full = m / LANES * LANES;
    let tail: __mmask8 = ((1u32 << (m - full)) - 1) as __mmask8;
    let zp = z.as_mut_ptr();
    let up = u.as_ptr();
    let mut mx = [_mm512_set1_pd(f64::NEG_INFINITY); R];
    // `z_r = u - cost_r * inv_eps` (multiply, then subtract: no fused rounding), max, store.
    macro_rules! finish {
        ($uu:expr, $cs:expr, $j:expr, $mask:expr) => {
            for r in 0..R {
                let t = _mm512_sub_pd($uu, _mm512_mul_pd($cs[r], vinv));
                mx[r] = _mm512_max_pd(t, mx[r]);
                match $mask {
                    None => _mm512_storeu_pd(zp.add(r * zs + $j), t),
                    Some(k) => _mm512_mask_storeu_pd(zp.add(r * zs + $j), k, t),
                }
            }
        };
    }
    match src {
        TileSource::Rows { c, stride } => {
            assert!(stride >= m && c.len() >= (r0 + R - 1) * stride + m);
            let rows: [*const f64; R] = std::array::from_fn(|r| c.as_ptr().add((r0 + r) * stride));
            let mut j = 0;
            while j < full {
                let uu = _mm512_loadu_pd(up.add(j));
                let cs: [__m512d; R] = std::array::from_fn(|r| _mm512_loadu_pd(rows[r].add(j)));
                finish!(uu, cs, j, None::<__mmask8>);
                j += LANES;
            }
            if full < m {
                let uu = _mm512_mask_loadu_pd(_mm512_set1_pd(f64::NEG_INFINITY), tail, up.add(j));
                let cs: [__m512d; R] =
                    std::array::from_fn(|r| _mm512_maskz_loadu_pd(tail, rows[r].add(j)));
                finish!(uu, cs, j, Some(tail));
            }
        }
        TileSource::Cloud {
            pts,
            d,
            coords,
            stride,
            factor,
        } => {
            assert!(d > 0 && stride >= m && coords.len() >= (d - 1) * stride + m);
            assert!(pts.len() >= (r0 + R) * d);
            // The costs of one chunk: squared differences summed coordinate by coordinate
            // (the first one is the sum's first term: 0 + t*t = t*t), then the factor.
            #[inline(always)]
            #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
            unsafe fn costs<const R: usize, const D: usize, const SCALED: bool>(
                xs: &[[f64; 3]; R],
                pts: *const f64,
                d: usize,
                yp: *const f64,
                stride: usize,
                j: usize,
                mask: Option<__mmask8>,
                vfac: __m512d,
            ) -> [__m512d; R] {
                let dd = if D == 0 { d } else { D };
                let mut acc = [_mm512_setzero_pd(); R];
                for k in 0..dd {
                    let at = yp.add(k * stride + j);
                    let y = match mask {
                        None => _mm512_loadu_pd(at),
                        Some(mk) => _mm512_maskz_loadu_pd(mk, at),
                    };
                    for r in 0..R {
                        let xk = if D == 0 {
                            _mm512_set1_pd(*pts.add(r * dd + k))
                        } else {
                            _mm512_set1_pd(xs[r][k])
                        };
                        let t = _mm512_sub_pd(xk, y);
                        let sq = _mm512_mul_pd(t, t);
                        acc[r] = if k == 0 {
                            sq
                        } else {
                            _mm512_add_pd(acc[r], sq)
                        };
                    }
                }
                if SCALED {
                    for a in acc.iter_mut() {
                        *a = _mm512_mul_pd(*a, vfac);
                    }
                }
                acc
            }
            let p0 = pts.as_ptr().add(r0 * d);
            let xs: [[f64; 3]; R] = std::array::from_fn(|r| {
                std::array::from_fn(|k| if k < d { pts[(r0 + r) * d + k] } else { 0.0 })
            });
            let vfac = _mm512_set1_pd(factor);
            let yp = coords.as_ptr();
            macro_rules! cloud {
                ($d:literal, $s:literal) => {{
                    let mut j = 0;
                    while j < full {
                        let uu = _mm512_loadu_pd(up.add(j));
                        let cs = costs::<R, $d, $s>(&xs, p0, d, yp, stride, j, None, vfac);
                        finish!(uu, cs, j, None::<__mmask8>);
                        j += LANES;
                    }
                    if full < m {
                        let uu = _mm512_mask_loadu_pd(
                            _mm512_set1_pd(f64::NEG_INFINITY),
                            tail,
                            up.add(j),
                        );
                        let cs = costs::<R, $d, $s>(&xs, p0, d, yp, stride, j, Some(tail), vfac);
                        finish!(uu, cs, j, Some(tail));
                    }
                }};
            }
            match (d, factor == 1.0) {
                (1, true) => cloud!(1, false),
                (1, false) => cloud!(1, true),
                (2, true) => cloud!(2, false),
                (2, false) => cloud!(2, true),
                (3, true) => cloud!(3, false),
                (3, false) => cloud!(3, true),
                (_, true) => cloud!(0, false),
                (_, false) => cloud!(0, true),
            }
        }
    }
    let mut out = [f64::NEG_INFINITY; R];
    for r in 0..R {
        let mut lanes = [0.0f64; LANES];
        _mm512_storeu_pd(lanes.as_mut_ptr(), mx[r]);
        for t in lanes {
            out[r] = if t > out[r] { t } else { out[r] };
        }
    }
    out
}

/// Pass 1 of a tile with explicit AVX2 intrinsics: [`tile_pass1_avx512`] in steps of four
/// lanes (the same operations in the same order as [`tile_pass1`], so the same values; the
/// maximum does not depend on the lane layout), a tail of one to three columns through masked
/// loads and stores.
///
/// # Safety
/// The CPU must support AVX2; the slices as for [`tile_pass1_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_pass1_avx2<const R: usize>(
    src: TileSource<'_>,
    r0: usize,
    u: &[f64],
    m: usize,
    inv_eps: f64,
    z: &mut [f64],
    zs: usize,
) -> [f64; R] {
    use std::arch::x86_64::*;
    const W: usize = 4;
    assert!(u.len() >= m);
    let vinv = _mm256_set1_pd(inv_eps);
    let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
    let full = m / W * W;
    let rem = (m - full) as i64;
    // Lane l is active in the tail when l < rem (sign bit set).
    let tail = _mm256_set_epi64x(
        -i64::from(3 < rem),
        -i64::from(2 < rem),
        -i64::from(1 < rem),
        -i64::from(0 < rem),
    );
    let zp = z.as_mut_ptr();
    let up = u.as_ptr();
    let mut mx = [ninf; R];
    macro_rules! finish {
        ($uu:expr, $cs:expr, $j:expr, $masked:expr) => {
            for r in 0..R {
                let t = _mm256_sub_pd($uu, _mm256_mul_pd($cs[r], vinv));
                mx[r] = _mm256_max_pd(t, mx[r]);
                if $masked {
                    _mm256_maskstore_pd(zp.add(r * zs + $j), tail, t);
                } else {
                    _mm256_storeu_pd(zp.add(r * zs + $j), t);
                }
            }
        };
    }
    let load_u = |j: usize, masked: bool| {
        if masked {
            _mm256_blendv_pd(
                ninf,
                _mm256_maskload_pd(up.add(j), tail),
                _mm256_castsi256_pd(tail),
            )
        } else {
            _mm256_loadu_pd(up.add(j))
        }
    };
    let load = |p: *const f64, masked: bool| {
        if masked {
            _mm256_maskload_pd(p, tail)
        } else {
            _mm256_loadu_pd(p)
        }
    };
    match src {
        TileSource::Rows { c, stride } => {
            assert!(stride >= m && c.len() >= (r0 + R - 1) * stride + m);
            let rows: [*const f64; R] = std::array::from_fn(|r| c.as_ptr().add((r0 + r) * stride));
            let mut j = 0;
            while j < m {
                let masked = j == full;
                let uu = load_u(j, masked);
                let cs: [__m256d; R] = std::array::from_fn(|r| load(rows[r].add(j), masked));
                finish!(uu, cs, j, masked);
                j += W;
            }
        }
        TileSource::Cloud {
            pts,
            d,
            coords,
            stride,
            factor,
        } => {
            assert!(d > 0 && stride >= m && coords.len() >= (d - 1) * stride + m);
            assert!(pts.len() >= (r0 + R) * d);
            let p0 = pts.as_ptr().add(r0 * d);
            let yp = coords.as_ptr();
            let vfac = _mm256_set1_pd(factor);
            macro_rules! cloud {
                ($d:literal, $s:literal) => {{
                    let dd = if $d == 0 { d } else { $d };
                    let xs: [[__m256d; 3]; R] = std::array::from_fn(|r| {
                        std::array::from_fn(|k| {
                            _mm256_set1_pd(if k < d { *p0.add(r * d + k) } else { 0.0 })
                        })
                    });
                    let mut j = 0;
                    while j < m {
                        let masked = j == full;
                        let uu = load_u(j, masked);
                        let mut cs = [_mm256_setzero_pd(); R];
                        for k in 0..dd {
                            let y = load(yp.add(k * stride + j), masked);
                            for (r, a) in cs.iter_mut().enumerate() {
                                let xk = if $d == 0 {
                                    _mm256_set1_pd(*p0.add(r * dd + k))
                                } else {
                                    xs[r][k]
                                };
                                let t = _mm256_sub_pd(xk, y);
                                let sq = _mm256_mul_pd(t, t);
                                *a = if k == 0 { sq } else { _mm256_add_pd(*a, sq) };
                            }
                        }
                        if $s {
                            for a in cs.iter_mut() {
                                *a = _mm256_mul_pd(*a, vfac);
                            }
                        }
                        finish!(uu, cs, j, masked);
                        j += W;
                    }
                }};
            }
            match (d, factor == 1.0) {
                (1, true) => cloud!(1, false),
                (1, false) => cloud!(1, true),
                (2, true) => cloud!(2, false),
                (2, false) => cloud!(2, true),
                (3, true) => cloud!(3, false),
                (3, false) => cloud!(3, true),
                (_, true) => cloud!(0, false),
                (_, false) => cloud!(0, true),
            }
        }
    }
    let mut out = [f64::NEG_INFINITY; R];
    for r in 0..R {
        let mut lanes = [0.0f64; W];
        _mm256_storeu_pd(lanes.as_mut_ptr(), mx[r]);
        for t in lanes {
            out[r] = if t > out[r] { t } else { out[r] };
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lse_tile_avx2<E: ExpFn, const R: usize>(a: TileArgs<'_>, z: &mut [f64], out: &mut [f64]) {
    let TileArgs {
        src,
        r0,
        u,
        m,
        inv_eps,
        zs,
    } = a;
    if E::AVX512_FMA {
        let mx = tile_pass1_avx2::<R>(src, r0, u, m, inv_eps, z, zs);
        let s = tile_pass2_avx2::<R>(z, zs, m, mx, next_rows::<R>(src, r0, m));
        for r in 0..R {
            out[r] = finish_row(&s[r], mx[r]);
        }
        return;
    }
    lse_tile_generic::<E, R>(a, z, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn lse_tile_avx512<E: ExpFn, const R: usize>(
    a: TileArgs<'_>,
    z: &mut [f64],
    out: &mut [f64],
) {
    let TileArgs {
        src,
        r0,
        u,
        m,
        inv_eps,
        zs,
    } = a;
    if E::AVX512_FMA {
        let mx = tile_pass1_avx512::<R>(src, r0, u, m, inv_eps, z, zs);
        let s = tile_pass2_avx512::<R>(z, zs, m, mx, next_rows::<R>(src, r0, m));
        for r in 0..R {
            out[r] = finish_row(&s[r], mx[r]);
        }
        return;
    }
    lse_tile_generic::<E, R>(a, z, out)
}

/// One tile of `R` rows on `path`.
#[inline(always)]
fn lse_tile<E: ExpFn, const R: usize>(
    path: SimdPath,
    a: TileArgs<'_>,
    z: &mut [f64],
    out: &mut [f64],
) {
    let (m, zs) = (a.m, a.zs);
    // The intrinsic passes read `z` unchecked: rows at `r * zs`, `m` long.
    assert!(R >= 1 && out.len() >= R && zs >= m && z.len() >= (R - 1) * zs + m);
    #[cfg(target_arch = "x86_64")]
    {
        if path == SimdPath::Avx512 {
            // SAFETY: the path is only selected (or accepted) when the CPU has AVX-512F + FMA.
            return unsafe { lse_tile_avx512::<E, R>(a, z, out) };
        }
        if path == SimdPath::Avx2 {
            // SAFETY: the path is only selected (or accepted) when the CPU has AVX2 + FMA.
            return unsafe { lse_tile_avx2::<E, R>(a, z, out) };
        }
    }
    let _ = path;
    lse_tile_generic::<E, R>(a, z, out)
}

/// `out[i] = lse` of rows `r0 + i` (`i < out.len()`) of `src` against `u` (length `m`), in
/// tiles of [`TILE`] rows; `z` is scratch of at least `TILE · padded(m)` doubles. Every row's
/// value is that of the one-row call ([`lse_row_dispatch`] / [`lse_row_cloud_dispatch`] on
/// the same path), whatever tile it falls in.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lse_rows<E: ExpFn>(
    path: SimdPath,
    src: TileSource<'_>,
    r0: usize,
    u: &[f64],
    m: usize,
    inv_eps: f64,
    z: &mut [f64],
    out: &mut [f64],
) {
    let zs = padded(m);
    let mut done = 0;
    while done < out.len() {
        let r = r0 + done;
        let o = &mut out[done..];
        let k = o.len().min(TILE);
        let a = TileArgs {
            src,
            r0: r,
            u,
            m,
            inv_eps,
            zs,
        };
        match k {
            4 => lse_tile::<E, 4>(path, a, z, o),
            3 => lse_tile::<E, 3>(path, a, z, o),
            2 => lse_tile::<E, 2>(path, a, z, o),
            _ => lse_tile::<E, 1>(path, a, z, o),
        }
        done += k;
    }
}

/// The path the engine runs for this half-step (read once per half-step).
#[inline]
pub(crate) fn current_path() -> SimdPath {
    active_path()
}

/// [`lse_row`] on an explicit path (for tests and benchmarks comparing the paths in one
/// process): the portable kernels on `Baseline` (bit-identical to [`lse_row`]), the FMA
/// exponential sum on `Avx2` / `Avx512`.
///
/// # Panics
/// If the CPU cannot run `path` (a caller bug: check [`SimdPath::available`]).
#[track_caller]
pub fn lse_row_on<E: ExpFn>(
    path: SimdPath,
    u: &[f64],
    c: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    assert!(
        path.available(),
        "this CPU cannot run the {} path",
        path.name()
    );
    let m = u.len();
    let mut out = [0.0];
    let a = TileArgs {
        src: TileSource::Rows { c, stride: m },
        r0: 0,
        u,
        m,
        inv_eps,
        zs: m,
    };
    lse_tile::<E, 1>(path, a, z, &mut out);
    out[0]
}

/// The fused streaming log-sum-exp of several rows at once on an explicit path: row `i` is
/// the point `pts[i*d..(i+1)*d]` against the coordinate-major cloud `coords` (`d × m`), cost
/// `factor · |x − y|²`, in tiles of [`TILE`] rows. Each value equals the one-row
/// [`lse_row_cloud_dispatch`] on that path bit for bit (test
/// `sinkhorn_kernel::row_tiles_are_bit_identical_to_single_rows`).
///
/// # Panics
/// If the CPU cannot run `path`, or on inconsistent lengths (caller bugs).
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn lse_rows_cloud_on<E: ExpFn>(
    path: SimdPath,
    pts: &[f64],
    d: usize,
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    out: &mut [f64],
) {
    assert!(
        path.available(),
        "this CPU cannot run the {} path",
        path.name()
    );
    assert!(d > 0 && pts.len() == out.len() * d && coords.len() >= d * m && u.len() >= m);
    let mut z = AlignedBuf::new(TILE * padded(m), 0.0);
    let src = TileSource::Cloud {
        pts,
        d,
        coords,
        stride: m,
        factor,
    };
    lse_rows::<E>(path, src, 0, u, m, inv_eps, z.as_mut_slice(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place vector exponential of the sparse mode equals the exponential to a few
    /// ulp on the process's path (Cody–Waite + degree-13 Taylor: truncation < 5e-18 relative,
    /// plus about 13 roundings of the Horner steps and one of the scaling, each half an ulp of
    /// a value in [1/√2, √2]; 8 ulp is a safe bound), over [-708, 700] and for lengths that
    /// exercise the vector body and the scalar tail; arguments below -708 and -inf give 0.
    #[test]
    fn exp_in_place_matches_exp() {
        for len in [0usize, 1, 3, 4, 7, 8, 9, 33] {
            let xs: Vec<f64> = (0..len)
                .map(|i| -708.0 + 1408.0 * (i as f64 + 0.37) / (len as f64 + 0.5))
                .collect();
            let mut z = xs.clone();
            exp_in_place(&mut z);
            for (&x, &e) in xs.iter().zip(&z) {
                let want = x.exp();
                assert!(
                    (e - want).abs() <= 8.0 * f64::EPSILON * want,
                    "exp({x}) = {e} vs {want} on {:?}",
                    active_path()
                );
            }
        }
        let mut z = vec![f64::NEG_INFINITY, -709.0, -1e300, 0.0, -1e-300];
        exp_in_place(&mut z);
        assert_eq!(&z[..3], &[0.0, 0.0, 0.0]);
        assert_eq!(z[3], 1.0);
        assert_eq!(z[4], 1.0);
    }
}
