/*
 * yardstick_driver.c -- a timing driver around yardstick.c for the criterion group
 * `kernel_peak` of benches/sinkhorn.rs.
 *
 * The bench compiles it at run time together with yardstick.c (no build script: the
 * default build needs no C compiler) and talks to it through stdin/stdout:
 *
 *     yardstick_driver POINTS_FILE N M D EPS
 *
 * POINTS_FILE holds x (N x D) then y (M x D), row-major little-endian float64. Each
 * input line "THREADS ITERS" runs ITERS half-iterations f = T(g, nu) (g = 0, uniform
 * weights, as ys_bench_half_iter) with THREADS OpenMP threads and answers one line with
 * the total nanoseconds. The first request for a thread count is preceded by one untimed
 * half-iteration (threads and pages warm). The first line printed is "isa BITS".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int ys_isa(void);
void ys_half_iter(int n, int m, int d, const double *xs, const double *yt, const double *h,
                  double eps, double *f, int nthreads);

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s POINTS N M D EPS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]), m = atoi(argv[3]), d = atoi(argv[4]);
    double eps = atof(argv[5]);
    if (n <= 0 || m <= 0 || d <= 0 || !(eps > 0.0)) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    double *x = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * m * d);
    if (fread(x, sizeof(double), (size_t)n * d, fp) != (size_t)n * d ||
        fread(y, sizeof(double), (size_t)m * d, fp) != (size_t)m * d) {
        fprintf(stderr, "short points file\n");
        return 2;
    }
    fclose(fp);
    /* The scaled copies of ys_prepare: xs = x / sqrt(eps) row-major, yt = y / sqrt(eps)
       coordinate-major. */
    double sc = 1.0 / sqrt(eps);
    double *xs = malloc(sizeof(double) * n * d), *yt = malloc(sizeof(double) * m * d);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < d; ++k) xs[(long)i * d + k] = x[(long)i * d + k] * sc;
    for (int j = 0; j < m; ++j)
        for (int k = 0; k < d; ++k) yt[(long)k * m + j] = y[(long)j * d + k] * sc;
    double *h = malloc(sizeof(double) * m), *f = malloc(sizeof(double) * n);
    for (int j = 0; j < m; ++j) h[j] = -log((double)m);
    printf("isa %d\n", ys_isa());
    fflush(stdout);
    int warm[1024] = {0};
    int threads;
    long iters;
    while (scanf("%d %ld", &threads, &iters) == 2) {
        if (threads < 1 || threads > 1023 || iters < 0) {
            fprintf(stderr, "bad request\n");
            return 2;
        }
        if (!warm[threads]) {
            ys_half_iter(n, m, d, xs, yt, h, eps, f, threads);
            warm[threads] = 1;
        }
        double t0 = now_ns();
        for (long r = 0; r < iters; ++r) ys_half_iter(n, m, d, xs, yt, h, eps, f, threads);
        double t = now_ns() - t0;
        printf("%.0f\n", t);
        fflush(stdout);
    }
    free(x); free(y); free(xs); free(yt); free(h); free(f);
    return 0;
}
