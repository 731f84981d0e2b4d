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
    /// Whether the AVX-512 build may replace the summation pass by the hand-vectorised
    /// [`exp_nonpositive`] with fused multiply-adds (true for [`FastExp`] only).
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

/// Pass 2 of the row log-sum-exp with AVX-512F intrinsics: the same exponential as
/// [`exp_nonpositive`] (Cody–Waite reduction, degree-13 Taylor, exponent-bit scaling, 0 below
/// $-708$) with fused multiply-adds, eight lanes, two accumulators. LLVM does not vectorise
/// `f64::mul_add` in the generic kernel, hence the explicit intrinsics. The rounding differs
/// from the baseline build by a few ulp of the sum (`tests/sinkhorn_kernel.rs`).
///
/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn lse_from_shifted_avx512(z: &[f64], mx: f64) -> f64 {
    use std::arch::x86_64::*;
    if !mx.is_finite() {
        return mx;
    }
    #[inline(always)]
    unsafe fn exp8(x: __m512d) -> __m512d {
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
        const C: [f64; 13] = [
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
        let mut p = _mm512_set1_pd(1.0 / 6_227_020_800.0);
        for c in C {
            p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
        }
        let k = _mm512_sub_epi64(_mm512_castpd_si512(t), _mm512_castpd_si512(shift));
        let e = _mm512_slli_epi64::<52>(_mm512_add_epi64(k, _mm512_set1_epi64(1023)));
        _mm512_maskz_mov_pd(ok, _mm512_mul_pd(p, _mm512_castsi512_pd(e)))
    }
    let n = z.len();
    let vmx = _mm512_set1_pd(mx);
    let (mut a0, mut a1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let mut j = 0;
    while j + 16 <= n {
        let x0 = _mm512_sub_pd(_mm512_loadu_pd(z.as_ptr().add(j)), vmx);
        let x1 = _mm512_sub_pd(_mm512_loadu_pd(z.as_ptr().add(j + 8)), vmx);
        a0 = _mm512_add_pd(a0, exp8(x0));
        a1 = _mm512_add_pd(a1, exp8(x1));
        j += 16;
    }
    if j + 8 <= n {
        let x0 = _mm512_sub_pd(_mm512_loadu_pd(z.as_ptr().add(j)), vmx);
        a0 = _mm512_add_pd(a0, exp8(x0));
        j += 8;
    }
    let mut s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for &t in &z[j..] {
        s += exp_nonpositive(t - mx);
    }
    mx + s.ln()
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
    /// The portable kernels compiled for AVX2 (bit-identical to the baseline).
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
            SimdPath::Avx2 => std::is_x86_feature_detected!("avx2"),
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

/// [`lse_row_cloud`] compiled for AVX-512F or AVX2 when the CPU has them (runtime detection),
/// else the baseline build; the rounding contract is that of [`lse_row_dispatch`].
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
    #[cfg(target_arch = "x86_64")]
    {
        let path = active_path();
        if path == SimdPath::Avx512 {
            // SAFETY: the path is only selected when the CPU has AVX-512F and FMA.
            return unsafe { lse_row_cloud_avx512::<E>(x, coords, m, factor, u, inv_eps, z) };
        }
        if path == SimdPath::Avx2 {
            // SAFETY: the path is only selected when the CPU has AVX2.
            return unsafe { lse_row_cloud_avx2::<E>(x, coords, m, factor, u, inv_eps, z) };
        }
    }
    lse_row_cloud::<E>(x, coords, m, factor, u, inv_eps, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn lse_row_cloud_avx512<E: ExpFn>(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    if E::AVX512_FMA {
        let mx = shifted_row_cloud_any(x, coords, m, factor, u, inv_eps, z);
        // SAFETY: AVX-512F and FMA are this function's features (checked by the dispatcher).
        return lse_from_shifted_avx512(&z[..m], mx);
    }
    lse_row_cloud::<E>(x, coords, m, factor, u, inv_eps, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lse_row_cloud_avx2<E: ExpFn>(
    x: &[f64],
    coords: &[f64],
    m: usize,
    factor: f64,
    u: &[f64],
    inv_eps: f64,
    z: &mut [f64],
) -> f64 {
    lse_row_cloud::<E>(x, coords, m, factor, u, inv_eps, z)
}

/// [`lse_row`] compiled for AVX-512F or AVX2 when the CPU has them (runtime detection, cached),
/// else the baseline build. The AVX2 build is bit-identical to the baseline (Rust never fuses
/// `a * b + c`, and the lane structure is fixed by the code). On AVX-512F + FMA CPUs the fast
/// exponential's summation pass is the hand-vectorised `lse_from_shifted_avx512`, which
/// differs from the baseline by at most (m + 2)·2u in the result; the libm exponential stays
/// bit-identical everywhere. On one machine every caller (dense, streaming, step API) goes
/// through the same dispatch, so they agree bit for bit with each other.
#[inline]
pub fn lse_row_dispatch<E: ExpFn>(u: &[f64], c: &[f64], inv_eps: f64, z: &mut [f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let path = active_path();
        if path == SimdPath::Avx512 {
            // SAFETY: the path is only selected when the CPU has AVX-512F and FMA.
            return unsafe { lse_row_avx512::<E>(u, c, inv_eps, z) };
        }
        if path == SimdPath::Avx2 {
            // SAFETY: the path is only selected when the CPU has AVX2.
            return unsafe { lse_row_avx2::<E>(u, c, inv_eps, z) };
        }
    }
    lse_row::<E>(u, c, inv_eps, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lse_row_avx2<E: ExpFn>(u: &[f64], c: &[f64], inv_eps: f64, z: &mut [f64]) -> f64 {
    lse_row::<E>(u, c, inv_eps, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn lse_row_avx512<E: ExpFn>(u: &[f64], c: &[f64], inv_eps: f64, z: &mut [f64]) -> f64 {
    if E::AVX512_FMA {
        let m = u.len();
        let mx = shifted_row(u, c, inv_eps, z);
        // SAFETY: AVX-512F and FMA are this function's features (checked by the dispatcher).
        return lse_from_shifted_avx512(&z[..m], mx);
    }
    lse_row::<E>(u, c, inv_eps, z)
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
