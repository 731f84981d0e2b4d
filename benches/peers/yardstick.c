/*
 * yardstick.c -- hand-vectorised float64 log-sum-exp Sinkhorn kernel.
 *
 * The per-iteration yardstick of the side-by-side harness (run_peers.py).
 * It is compiled by the harness with the system C compiler
 * (gcc -O3 -march=native -fopenmp -shared -fPIC) into a temporary directory and
 * called through ctypes. It is never committed as a binary.
 *
 * Problem: cost c(x, y) = |x - y|^2 in R^d, point clouds x (n x d), y (m x d),
 * weights a (n), b (m). One half-iteration of log-domain Sinkhorn is
 *
 *     f_i = -eps * log sum_j b_j exp((g_j - c(x_i, y_j)) / eps),
 *
 * computed with a max-shift (two passes over a row buffer): with the scaled
 * coordinates x' = x / sqrt(eps), y' = y / sqrt(eps) and h_j = g_j / eps + log b_j,
 *     z_j = h_j - |x'_i - y'_j|^2,  f_i = -eps * (max_j z_j + log sum_j exp(z_j - max_j z_j)).
 * The other half-iteration (g from f) is the same kernel with the roles swapped.
 *
 * "One pair-iteration" = one (i, j) term of one half-iteration; the harness
 * reports nanoseconds per pair-iteration = time of one half-iteration / (n m).
 *
 * Vector exp: exp(r + k ln 2) = 2^k exp(r), |r| <= ln(2)/2 by Cody-Waite
 * reduction with a two-constant ln 2 (fdlibm's ln2_hi/ln2_lo), then the degree-13
 * Taylor polynomial of exp(r) in Horner form with FMA (truncation error
 * < 0.35^14 / 14! < 5e-18 relative, i.e. < 0.05 ulp) and an exact 2^k scaling
 * through the exponent bits. Arguments are <= 0 here (max-shift); arguments below
 * -708 return 0 (those terms are below 1e-307 times the largest term, which is 1,
 * so they cannot change the sum). Accuracy, as measured by ys_exp_ulp() against
 * the x87 long-double expl over [-708, 0]: max error about 1 ulp; run_peers.py
 * measures and records it on each run.
 *
 * ISA: AVX-512F (8 lanes) if the compiler targets it (-march=native on a CPU that
 * has it), else AVX2+FMA (4 lanes), else portable scalar code (for other CPUs).
 * ys_isa() tells which one was compiled. Threads: OpenMP over rows, static
 * schedule, one row buffer per thread.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* fdlibm constants */
#define YS_LOG2E 1.44269504088896338700e+00
#define YS_LN2_HI 6.93147180369123816490e-01
#define YS_LN2_LO 1.90821492927058770002e-10
#define YS_EXP_MIN (-708.0)

/* 1/k!, k = 0..13 */
static const double YS_C[14] = {
    1.0,
    1.0,
    0.5,
    1.66666666666666666667e-01,
    4.16666666666666666667e-02,
    8.33333333333333333333e-03,
    1.38888888888888888889e-03,
    1.98412698412698412698e-04,
    2.48015873015873015873e-05,
    2.75573192239858906526e-06,
    2.75573192239858906526e-07,
    2.50521083854417187751e-08,
    2.08767569878680989792e-09,
    1.60590438368216145994e-10,
};

/* ---------------------------------------------------------------- scalar exp */
static inline double ys_exp_scalar(double x) {
    if (!(x >= YS_EXP_MIN)) return 0.0; /* also maps NaN to 0: never occurs here */
    double kd = nearbyint(x * YS_LOG2E);
    double r = fma(-kd, YS_LN2_HI, x);
    r = fma(-kd, YS_LN2_LO, r);
    double p = YS_C[13];
    for (int c = 12; c >= 0; --c) p = fma(p, r, YS_C[c]);
    int64_t k = (int64_t)kd;
    union { double d; uint64_t u; } s;
    s.u = (uint64_t)(k + 1023) << 52;
    return p * s.d;
}

#if defined(__AVX512F__)
#define YS_W 8
typedef __m512d vd;
static inline vd v_set1(double a) { return _mm512_set1_pd(a); }
static inline vd v_load(const double *p) { return _mm512_loadu_pd(p); }
static inline void v_store(double *p, vd a) { _mm512_storeu_pd(p, a); }
static inline vd v_add(vd a, vd b) { return _mm512_add_pd(a, b); }
static inline vd v_sub(vd a, vd b) { return _mm512_sub_pd(a, b); }
static inline vd v_mul(vd a, vd b) { return _mm512_mul_pd(a, b); }
static inline vd v_fma(vd a, vd b, vd c) { return _mm512_fmadd_pd(a, b, c); }
static inline vd v_fnma(vd a, vd b, vd c) { return _mm512_fnmadd_pd(a, b, c); }
static inline vd v_max(vd a, vd b) { return _mm512_max_pd(a, b); }
static inline double v_hmax(vd a) { return _mm512_reduce_max_pd(a); }
static inline double v_hsum(vd a) { return _mm512_reduce_add_pd(a); }
static inline vd v_exp(vd x) {
    __mmask8 ok = _mm512_cmp_pd_mask(x, _mm512_set1_pd(YS_EXP_MIN), _CMP_GE_OQ);
    x = _mm512_max_pd(x, _mm512_set1_pd(YS_EXP_MIN));
    vd kd = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(YS_LOG2E)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vd r = _mm512_fnmadd_pd(kd, _mm512_set1_pd(YS_LN2_HI), x);
    r = _mm512_fnmadd_pd(kd, _mm512_set1_pd(YS_LN2_LO), r);
    vd p = _mm512_set1_pd(YS_C[13]);
    for (int c = 12; c >= 0; --c) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(YS_C[c]));
    p = _mm512_scalef_pd(p, kd); /* p * 2^kd, exact */
    return _mm512_maskz_mov_pd(ok, p);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define YS_W 4
typedef __m256d vd;
static inline vd v_set1(double a) { return _mm256_set1_pd(a); }
static inline vd v_load(const double *p) { return _mm256_loadu_pd(p); }
static inline void v_store(double *p, vd a) { _mm256_storeu_pd(p, a); }
static inline vd v_add(vd a, vd b) { return _mm256_add_pd(a, b); }
static inline vd v_sub(vd a, vd b) { return _mm256_sub_pd(a, b); }
static inline vd v_mul(vd a, vd b) { return _mm256_mul_pd(a, b); }
static inline vd v_fma(vd a, vd b, vd c) { return _mm256_fmadd_pd(a, b, c); }
static inline vd v_fnma(vd a, vd b, vd c) { return _mm256_fnmadd_pd(a, b, c); }
static inline vd v_max(vd a, vd b) { return _mm256_max_pd(a, b); }
static inline double v_hmax(vd a) {
    double t[4];
    _mm256_storeu_pd(t, a);
    return fmax(fmax(t[0], t[1]), fmax(t[2], t[3]));
}
static inline double v_hsum(vd a) {
    double t[4];
    _mm256_storeu_pd(t, a);
    return (t[0] + t[1]) + (t[2] + t[3]);
}
static inline vd v_exp(vd x) {
    vd ok = _mm256_cmp_pd(x, _mm256_set1_pd(YS_EXP_MIN), _CMP_GE_OQ);
    x = _mm256_max_pd(x, _mm256_set1_pd(YS_EXP_MIN));
    vd kd = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(YS_LOG2E)),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vd r = _mm256_fnmadd_pd(kd, _mm256_set1_pd(YS_LN2_HI), x);
    r = _mm256_fnmadd_pd(kd, _mm256_set1_pd(YS_LN2_LO), r);
    vd p = _mm256_set1_pd(YS_C[13]);
    for (int c = 12; c >= 0; --c) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(YS_C[c]));
    /* 2^k: k in [-1021, 0] after the clamp; build the exponent bits with integer
       lanes: (k + 1023) << 52. */
    __m128i k32 = _mm256_cvtpd_epi32(kd);
    __m256i k64 = _mm256_cvtepi32_epi64(k32);
    __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(k64, _mm256_set1_epi64x(1023)), 52);
    p = _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
    return _mm256_and_pd(p, ok);
}
#else
#define YS_W 1
#endif

int ys_isa(void) {
#if YS_W == 8
    return 512;
#elif YS_W == 4
    return 256;
#else
    return 0;
#endif
}

int ys_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* out[i] = exp(x[i]) with the vector exp (scalar tail / fallback). */
void ys_exp_array(const double *x, double *out, long n) {
    long i = 0;
#if YS_W > 1
    for (; i + YS_W <= n; i += YS_W) v_store(out + i, v_exp(v_load(x + i)));
#endif
    for (; i < n; ++i) out[i] = ys_exp_scalar(x[i]);
}

/* Max and mean error in ulps of ys_exp_array against expl over n points spread
   uniformly over [lo, hi] (deterministic grid with an irrational shift). */
double ys_exp_ulp(long n, double lo, double hi, double *mean_ulp) {
    if (n <= 0) return 0.0;
    double *x = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * n);
    for (long i = 0; i < n; ++i) {
        double u = fmod((double)i * 0.6180339887498949 + 0.5 / n, 1.0);
        x[i] = lo + (hi - lo) * u;
    }
    ys_exp_array(x, y, n);
    double mx = 0.0, sum = 0.0;
    for (long i = 0; i < n; ++i) {
        long double ref = expl((long double)x[i]);
        double rd = (double)ref;
        double ulp = nextafter(rd, INFINITY) - rd;
        double e = (double)fabsl((long double)y[i] - ref) / ulp;
        if (e > mx) mx = e;
        sum += e;
    }
    if (mean_ulp) *mean_ulp = sum / n;
    free(x);
    free(y);
    return mx;
}

/* One row: -eps * logsumexp_j (h_j - |xr - y_j|^2), xr and y pre-scaled by
   1/sqrt(eps), yt is d x m (column j of y in yt[k*m + j]). buf has m doubles. */
static inline double ys_row(int m, int d, const double *xr, const double *yt,
                            const double *h, double eps, double *buf) {
    int j = 0;
    double zmax = -INFINITY;
#if YS_W > 1
    vd vmax0 = v_set1(-INFINITY), vmax1 = v_set1(-INFINITY);
    if (d == 2) {
        const vd x0 = v_set1(xr[0]), x1 = v_set1(xr[1]);
        const double *y0 = yt, *y1 = yt + m;
        for (; j + 2 * YS_W <= m; j += 2 * YS_W) {
            vd da = v_sub(x0, v_load(y0 + j)), db = v_sub(x0, v_load(y0 + j + YS_W));
            vd ea = v_sub(x1, v_load(y1 + j)), eb = v_sub(x1, v_load(y1 + j + YS_W));
            vd za = v_fnma(da, da, v_load(h + j));
            vd zb = v_fnma(db, db, v_load(h + j + YS_W));
            za = v_fnma(ea, ea, za);
            zb = v_fnma(eb, eb, zb);
            v_store(buf + j, za);
            v_store(buf + j + YS_W, zb);
            vmax0 = v_max(vmax0, za);
            vmax1 = v_max(vmax1, zb);
        }
    } else {
        for (; j + YS_W <= m; j += YS_W) {
            vd z = v_load(h + j);
            for (int k = 0; k < d; ++k) {
                vd dk = v_sub(v_set1(xr[k]), v_load(yt + (long)k * m + j));
                z = v_fnma(dk, dk, z);
            }
            v_store(buf + j, z);
            vmax0 = v_max(vmax0, z);
        }
    }
    zmax = v_hmax(v_max(vmax0, vmax1));
#endif
    for (; j < m; ++j) {
        double z = h[j];
        for (int k = 0; k < d; ++k) {
            double dk = xr[k] - yt[(long)k * m + j];
            z -= dk * dk;
        }
        buf[j] = z;
        if (z > zmax) zmax = z;
    }
    double s = 0.0;
    j = 0;
#if YS_W > 1
    {
        const vd vm = v_set1(zmax);
        vd s0 = v_set1(0.0), s1 = v_set1(0.0);
        for (; j + 2 * YS_W <= m; j += 2 * YS_W) {
            s0 = v_add(s0, v_exp(v_sub(v_load(buf + j), vm)));
            s1 = v_add(s1, v_exp(v_sub(v_load(buf + j + YS_W), vm)));
        }
        for (; j + YS_W <= m; j += YS_W) s0 = v_add(s0, v_exp(v_sub(v_load(buf + j), vm)));
        s = v_hsum(v_add(s0, s1));
    }
#endif
    for (; j < m; ++j) s += ys_exp_scalar(buf[j] - zmax);
    return -eps * (zmax + log(s));
}

/* f_i = -eps log sum_j exp(h_j - |xs_i - ys_j|^2) for i < n.
   xs: n x d row-major (scaled), yt: d x m (scaled, transposed), h: m. */
void ys_half_iter(int n, int m, int d, const double *xs, const double *yt, const double *h,
                  double eps, double *f, int nthreads) {
#pragma omp parallel num_threads(nthreads)
    {
        double *buf = aligned_alloc(64, sizeof(double) * (((size_t)m + 7) / 8 * 8));
#pragma omp for schedule(static)
        for (int i = 0; i < n; ++i) f[i] = ys_row(m, d, xs + (long)i * d, yt, h, eps, buf);
        free(buf);
    }
}

/* Scaled copies: row-major s = p / sqrt(eps) (n x d) and its transpose t (d x n). */
static void ys_prepare(int n, int d, const double *p, double eps, double *s, double *t) {
    double sc = 1.0 / sqrt(eps);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < d; ++k) {
            double v = p[(long)i * d + k] * sc;
            s[(long)i * d + k] = v;
            t[(long)k * n + i] = v;
        }
}

static double ys_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Time `reps` half-iterations (f from g = 0, uniform weights) on given clouds;
   returns the best (minimum) seconds of one half-iteration. Setup is untimed. */
double ys_bench_half_iter(int n, int m, int d, const double *x, const double *y, double eps,
                          int reps, int nthreads) {
    double *xs = malloc(sizeof(double) * n * d), *xt = malloc(sizeof(double) * n * d);
    double *ys = malloc(sizeof(double) * m * d), *yt = malloc(sizeof(double) * m * d);
    double *h = malloc(sizeof(double) * m), *f = malloc(sizeof(double) * n);
    ys_prepare(n, d, x, eps, xs, xt);
    ys_prepare(m, d, y, eps, ys, yt);
    for (int j = 0; j < m; ++j) h[j] = -log((double)m);
    ys_half_iter(n, m, d, xs, yt, h, eps, f, nthreads); /* warm-up: threads, pages */
    double best = INFINITY;
    for (int r = 0; r < reps; ++r) {
        double t0 = ys_now();
        ys_half_iter(n, m, d, xs, yt, h, eps, f, nthreads);
        double t = ys_now() - t0;
        if (t < best) best = t;
    }
    free(xs); free(xt); free(ys); free(yt); free(h); free(f);
    return best;
}

/* Full log-domain Sinkhorn with the kernel above, cost |x-y|^2, weights a, b.
   Each iteration: g = T(f, mu) (nu-marginal exact), then f_new = T(g, nu); the
   mu-marginal L1 error of the plan (f, g) is sum_i a_i |exp((f_i - f_new_i)/eps) - 1|,
   free of charge. Stops when it is <= tol, after max_iter iterations or, if
   max_seconds > 0, once the solve has run that long. On return
   (f, g) is the last pair whose error was measured (err_out), seconds_out the
   solve time. Returns the number of iterations (g-updates). */
int ys_sinkhorn(int n, int m, int d, const double *x, const double *y, const double *a,
                const double *b, double eps, double tol, int max_iter, double max_seconds,
                int nthreads, double *f, double *g, double *err_out, double *seconds_out) {
    double t0 = ys_now();
    double *xs = malloc(sizeof(double) * n * d), *xt = malloc(sizeof(double) * n * d);
    double *ys = malloc(sizeof(double) * m * d), *yt = malloc(sizeof(double) * m * d);
    double *la = malloc(sizeof(double) * n), *lb = malloc(sizeof(double) * m);
    double *hf = malloc(sizeof(double) * n), *hg = malloc(sizeof(double) * m);
    double *fn = malloc(sizeof(double) * n);
    ys_prepare(n, d, x, eps, xs, xt);
    ys_prepare(m, d, y, eps, ys, yt);
    for (int i = 0; i < n; ++i) la[i] = log(a[i]);
    for (int j = 0; j < m; ++j) lb[j] = log(b[j]);
    for (int i = 0; i < n; ++i) f[i] = 0.0;
    double err = INFINITY;
    int it = 0;
    /* f <- T(0, nu) as the start */
    for (int j = 0; j < m; ++j) hg[j] = lb[j];
    ys_half_iter(n, m, d, xs, yt, hg, eps, f, nthreads);
    while (it < max_iter) {
        for (int i = 0; i < n; ++i) hf[i] = f[i] / eps + la[i];
        ys_half_iter(m, n, d, ys, xt, hf, eps, g, nthreads);
        for (int j = 0; j < m; ++j) hg[j] = g[j] / eps + lb[j];
        ys_half_iter(n, m, d, xs, yt, hg, eps, fn, nthreads);
        ++it;
        err = 0.0;
        for (int i = 0; i < n; ++i) err += a[i] * fabs(expm1((f[i] - fn[i]) / eps));
        if (err <= tol || it >= max_iter) break;
        if (max_seconds > 0.0 && ys_now() - t0 > max_seconds) break;
        memcpy(f, fn, sizeof(double) * n);
    }
    *err_out = err;
    *seconds_out = ys_now() - t0;
    free(xs); free(xt); free(ys); free(yt); free(la); free(lb); free(hf); free(hg); free(fn);
    return it;
}
