//! Criterion benchmarks of the Sinkhorn engine (seeded inputs, setup outside the timing).
//!
//! Groups (ids are `variant/N`):
//! * `iteration`: one log-domain iteration (two half-steps, 2NM log-sum-exp terms) through the
//!   step API, N = M in {1000, 4000, 16000}, d in {2, 16}, dense vs streaming, on 1 and 2
//!   threads; plus streaming at N = M = 100 000, d = 2 (one iteration is 2·10^10 terms);
//! * `solve`: time to L1 marginal error 1e-6 from zero potentials: N = 1000 with d = 2 at
//!   eps in {1, 0.1, 0.01} and d = 16 at eps in {1, 0.1}; N = 4000, d = 2 at eps in {1, 0.1};
//!   N = 16 000, d = 2 at eps = 1. `SINKFLOW_BENCH_FULL=1` adds the rest of
//!   N in {1000, 4000, 16000} × d in {2, 16} × eps in {1, 0.1, 0.01} that is not absurd (each
//!   such solve takes from tens of seconds to many minutes, times 10 samples); time to
//!   tolerance is iterations × the cost of one iteration, and the iteration counts, which do
//!   not depend on the machine, are in `benches/results/peers.*`;
//! * `self_and_debiased`: an OT solve, the symmetric self solve and the debiased divergence of the
//!   same clouds, side by side (targets: symmetric ≤ 0.6×, divergence ≤ 2× the OT solve);
//! * `particles`: one drift evaluation of the Sinkhorn particle flow (cold and warm-started);
//! * `acceleration`: time to L1 1e-6 of the default solve (adaptive over-relaxation, eps-scaling
//!   at small eps) against the plain one, N = M = 1000, d = 2, X ~ N(0, I), Y ~ N(1, I/2) (the
//!   peer harness's input), eps in {1, 0.1, 0.01}; the iteration counts of both are printed
//!   once per case (theory/sinkhorn.md §4c);
//! * `kernel_peak`: one half-step, per pair, N = M = 4000, d = 2, eps = 0.1, for every
//!   instruction-set path this CPU has (`SINKFLOW_SIMD`) × threads {1, 2} × mode {dense,
//!   streaming}, against the C yardstick (`benches/peers/yardstick.c`) in the same run,
//!   compiled at run time with the system C compiler (skipped with a message without one) for
//!   `-march=native`, for `x86-64-v3` (AVX2 + FMA, built when native has AVX-512: it pairs
//!   with the avx2 path there) and for the portable x86-64 target (no AVX; it pairs with the
//!   baseline path). Each path runs in a worker process (this bench re-executed with `SINKFLOW_SIMD`
//!   set), the yardstick in `benches/peers/yardstick_driver.c`. After the criterion samples, an
//!   interleaved series (engine and yardstick alternating, several rounds, medians) is written
//!   to `benches/results/kernel_peak.json` with the CPU model and the load average
//!   (`SINKFLOW_PEAK_SERIES_ONLY=1` skips the criterion samples and runs only that series);
//! * the Gaussian closed forms are in `benches/gaussian.rs`.
//!
//! Conventions: cost |x-y|^2 (`Cost::SqEuclidean`, the default), eps in the units of that cost,
//! uniform weights, stopping on the L1 violation of the first marginal (theory/sinkhorn.md §3).
//! Points are standard normal scaled by sqrt(2/d), so that E|x-y|^2 = 4 in every dimension and
//! a given eps means the same regime for d = 2 and d = 16 (unscaled, d = 16 at eps = 0.1
//! needs ~10^4 iterations and a single solve takes minutes).
//!
//! `cargo bench --bench sinkhorn` runs the default sweep (about 25 minutes on 2 cores);
//! a single group: `cargo bench --bench sinkhorn -- solve/`; the path comparison alone:
//! `cargo bench --bench sinkhorn -- kernel_peak` (a few minutes).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sinkflow::particles::drift::DriftParams;
use sinkflow::particles::flow::velocity;
use sinkflow::sinkhorn::{
    divergence, solve, solve_symmetric, Geometry, Mode, PointCloud, SinkhornParams, Stepper,
};

/// The peer harness's input: `n` points of N(mean·1, sd² I) in dimension `d`.
fn gaussian_cloud(seed: u64, n: usize, d: usize, mean: f64, sd: f64) -> PointCloud {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            mean + sd * z
        })
        .collect();
    PointCloud::from_flat(v, d, None, false).expect("valid cloud")
}

fn points(seed: u64, n: usize, d: usize, shift: f64) -> Vec<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let scale = (2.0 / d as f64).sqrt();
    (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            scale * z + shift
        })
        .collect()
}

fn cloud(seed: u64, n: usize, d: usize, shift: f64) -> PointCloud {
    PointCloud::from_flat(points(seed, n, d, shift), d, None, false).expect("valid cloud")
}

/// Run `f` on a rayon pool of `threads` threads.
fn on_threads<R: Send>(pool: &rayon::ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    pool.install(f)
}

fn full() -> bool {
    std::env::var_os("SINKFLOW_BENCH_FULL").is_some()
}

/// The CPU model (from `/proc/cpuinfo` where there is one) and the kernels' dispatched path,
/// recorded in the name of every per-iteration benchmark.
fn machine_tag() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().replace(' ', "_"))
        })
        .unwrap_or_else(|| "unknown-cpu".into());
    let path = sinkflow::sinkhorn::kernel::simd_path()
        .map(|p| p.name())
        .unwrap_or("invalid-SINKFLOW_SIMD");
    format!("{model}/{path}")
}

fn iteration(c: &mut Criterion) {
    let tag = machine_tag();
    eprintln!("per-iteration benchmarks on {tag}");
    let mut g = c.benchmark_group(format!("iteration/{tag}"));
    g.sample_size(10);
    let pools: Vec<(usize, rayon::ThreadPool)> = [1usize, 2]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool");
            (t, pool)
        })
        .collect();
    let mut cases: Vec<(usize, usize, Mode)> = Vec::new();
    for n in [1000usize, 4000, 16000] {
        for d in [2usize, 16] {
            for mode in [Mode::Dense, Mode::Streaming] {
                cases.push((n, d, mode));
            }
        }
    }
    cases.push((100_000, 2, Mode::Streaming));
    for (n, d, mode) in cases {
        let x = cloud(1, n, d, 0.0);
        let y = cloud(2, n, d, 0.5);
        g.throughput(Throughput::Elements((2 * n * n) as u64));
        let p = SinkhornParams::new(1.0).with_mode(mode);
        let mut st = Stepper::from_geometry(
            Geometry::Clouds { x: &x, y: &y },
            &p,
            &vec![0.0; n],
            &vec![0.0; n],
        )
        .expect("stepper");
        for (t, pool) in &pools {
            // 1 thread only where it takes seconds, not minutes.
            if *t == 1 && n > 16000 {
                continue;
            }
            let id = BenchmarkId::new(format!("{}-d{d}-{t}t", mode.name()), n);
            g.bench_function(id, |b| {
                b.iter(|| on_threads(pool, || black_box(st.run(2, false))))
            });
        }
    }
    g.finish();
}

fn to_tolerance(c: &mut Criterion) {
    let mut g = c.benchmark_group("solve");
    g.sample_size(10);
    // Default sweep: what runs in minutes. SINKFLOW_BENCH_FULL=1 adds the slow corners
    // (each solve there takes from tens of seconds to many minutes, times 10 samples).
    let mut cases = vec![
        (1000usize, 2usize, 1.0),
        (1000, 2, 0.1),
        (1000, 2, 0.01),
        (1000, 16, 1.0),
        (1000, 16, 0.1),
        (4000, 2, 1.0),
        (4000, 2, 0.1),
        (16000, 2, 1.0),
    ];
    if full() {
        cases.extend([
            (1000, 16, 0.01),
            (4000, 2, 0.01),
            (4000, 16, 1.0),
            (4000, 16, 0.1),
            (4000, 16, 0.01),
            (16000, 2, 0.1),
            (16000, 2, 0.01),
        ]);
    }
    for (n, d, eps) in cases {
        let x = cloud(3, n, d, 0.0);
        let y = cloud(4, n, d, 0.5);
        let modes: &[Mode] = if n >= 16000 {
            &[Mode::Streaming]
        } else {
            &[Mode::Dense, Mode::Streaming]
        };
        for &mode in modes {
            let p = SinkhornParams::new(eps)
                .with_tol(1e-6)
                .with_max_iters(100_000)
                .with_mode(mode);
            let id = BenchmarkId::new(format!("{}-d{d}-eps{eps}", mode.name()), n);
            g.bench_function(id, |b| {
                b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
            });
        }
    }
    g.finish();
}

fn self_and_debiased(c: &mut Criterion) {
    let mut g = c.benchmark_group("self_and_debiased");
    g.sample_size(10);
    for (n, eps) in [(1000usize, 1.0), (1000, 0.1), (1000, 0.01), (4000, 0.1)] {
        let x = cloud(5, n, 2, 0.0);
        let y = cloud(6, n, 2, 0.5);
        let p = SinkhornParams::new(eps)
            .with_tol(1e-6)
            .with_max_iters(100_000);
        let tag = format!("d2-eps{eps}");
        g.bench_function(BenchmarkId::new(format!("ot-{tag}"), n), |b| {
            b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
        });
        g.bench_function(BenchmarkId::new(format!("symmetric-{tag}"), n), |b| {
            b.iter(|| black_box(solve_symmetric(&x, &p).expect("solve")))
        });
        g.bench_function(BenchmarkId::new(format!("divergence-{tag}"), n), |b| {
            b.iter(|| black_box(divergence(&x, &y, &p).expect("solve")))
        });
    }
    g.finish();
}

/// Default (accelerated) vs plain solve to L1 1e-6: time, and the iteration counts on stderr.
fn acceleration(c: &mut Criterion) {
    let mut g = c.benchmark_group("acceleration");
    g.sample_size(10);
    let n = 1000;
    let x = gaussian_cloud(11, n, 2, 0.0, 1.0);
    let y = gaussian_cloud(12, n, 2, 1.0, 0.5f64.sqrt());
    for eps in [1.0, 0.1, 0.01] {
        let default = SinkhornParams::new(eps)
            .with_tol(1e-6)
            .with_max_iters(100_000);
        let plain = default.plain();
        let (od, op) = (
            solve(&x, &y, &default).expect("solve"),
            solve(&x, &y, &plain).expect("solve"),
        );
        eprintln!(
            "acceleration N={n} d=2 eps={eps}: iterations default {} plain {} ({:?}); OT {} vs {}",
            od.iterations, op.iterations, od.acceleration, od.ot, op.ot
        );
        for (name, p) in [("default", default), ("plain", plain)] {
            g.bench_function(BenchmarkId::new(format!("{name}-d2-eps{eps}"), n), |b| {
                b.iter(|| black_box(solve(&x, &y, &p).expect("solve")))
            });
        }
    }
    g.finish();
}

fn particle_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("particles");
    g.sample_size(10);
    let n = 1000;
    let x = DMatrix::from_row_slice(n, 2, &points(7, n, 2, 0.0));
    let y = DMatrix::from_row_slice(n, 2, &points(8, n, 2, 1.0));
    let params = DriftParams {
        tau: 0.1,
        tol: 1e-6,
        ..DriftParams::default()
    };
    g.bench_function(BenchmarkId::new("drift-cold-d2-tau0.1", n), |b| {
        b.iter(|| black_box(velocity(&x, &y, &params, None).expect("drift")))
    });
    // Warm start from the potentials of a nearby configuration (one explicit Euler step of the
    // flow, dt = 0.01), as inside `particle_flow`.
    let (v, out) = velocity(&x, &y, &params, None).expect("drift");
    let x1 = &x + v * 0.01;
    let warm = out
        .potentials
        .expect("converged drift keeps its potentials");
    g.bench_function(BenchmarkId::new("drift-warm-d2-tau0.1", n), |b| {
        b.iter(|| black_box(velocity(&x1, &y, &params, Some(&warm)).expect("drift")))
    });
    g.finish();
}

/// The sparse (truncated-kernel) mode against streaming: the same eps-scaled solve, a fixed
/// budget of 20 iterations at the target eps (so the time is work, not convergence luck), on
/// the pair (X ~ N(0, I_2), Y ~ N(1, 0.5 I_2) up to the scale of `points`).
/// Default: N = 2000, eps in {0.01, 1e-3}; `SINKFLOW_BENCH_FULL=1` adds N = 8000 and eps = 0.1.
/// theory/sinkhorn.md §12.
fn sparse_vs_dense(c: &mut Criterion) {
    let mut g = c.benchmark_group("sparse_vs_dense");
    g.sample_size(10);
    let (sizes, epss): (&[usize], &[f64]) = if full() {
        (&[2000, 8000], &[0.1, 0.01, 1e-3])
    } else {
        (&[2000], &[0.01, 1e-3])
    };
    for &n in sizes {
        let x = cloud(1, n, 2, 0.0);
        let y = cloud(2, n, 2, 1.0);
        for &eps in epss {
            for mode in [Mode::Streaming, Mode::Sparse] {
                let p = SinkhornParams::new(eps)
                    .with_tol(1e-12)
                    .with_max_iters(20)
                    .with_mode(mode)
                    .with_eps_scaling();
                g.bench_function(
                    BenchmarkId::new(format!("{}/eps{eps}", mode.name()), n),
                    |b| b.iter(|| solve(&x, &y, &p).expect("solve")),
                );
            }
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    iteration,
    to_tolerance,
    self_and_debiased,
    particle_step,
    acceleration,
    sparse_vs_dense,
    kernel_peak
);

fn main() {
    if std::env::var_os(PEAK_WORKER).is_some() {
        peak_worker();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

// ------------------------------------------------------------------ kernel_peak

/// Set (to anything) in the environment of a worker process of `kernel_peak`.
const PEAK_WORKER: &str = "SINKFLOW_PEAK_WORKER";
/// The case of issue 13: N = M = 4000, d = 2, eps = 0.1 (points standard normal, `cloud`).
const PEAK_N: usize = 4000;
const PEAK_D: usize = 2;
const PEAK_EPS: f64 = 0.1;
const PEAK_MODES: [Mode; 2] = [Mode::Dense, Mode::Streaming];
const PEAK_THREADS: [usize; 2] = [1, 2];
/// Rounds of the interleaved series written to the JSON, and half-steps per measurement.
const PEAK_ROUNDS: usize = 7;
const PEAK_ITERS: u64 = 8;

/// The worker: a stepper per mode on the case's clouds, a rayon pool per thread count;
/// each stdin line `MODE THREADS ITERS` runs ITERS half-steps and answers the total
/// nanoseconds. The first line printed is the path the kernels run (`simd_path`).
fn peak_worker() {
    let path = match sinkflow::sinkhorn::kernel::simd_path() {
        Ok(p) => p.name().to_string(),
        Err(e) => {
            eprintln!("kernel_peak worker: {e}");
            std::process::exit(2);
        }
    };
    let x = cloud(1, PEAK_N, PEAK_D, 0.0);
    let y = cloud(2, PEAK_N, PEAK_D, 0.5);
    let zeros = vec![0.0; PEAK_N];
    let mut steppers: Vec<Stepper> = PEAK_MODES
        .iter()
        .map(|&mode| {
            let p = SinkhornParams::new(PEAK_EPS).with_mode(mode);
            Stepper::from_geometry(Geometry::Clouds { x: &x, y: &y }, &p, &zeros, &zeros)
                .expect("stepper")
        })
        .collect();
    let pools: Vec<rayon::ThreadPool> = PEAK_THREADS
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool")
        })
        .collect();
    println!("path {path}");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() != 3 {
            break;
        }
        let mi = PEAK_MODES
            .iter()
            .position(|m| m.name() == w[0])
            .expect("mode");
        let ti = PEAK_THREADS
            .iter()
            .position(|t| t.to_string() == w[1])
            .expect("threads");
        let iters: u64 = w[2].parse().expect("iters");
        let st = &mut steppers[mi];
        let start = std::time::Instant::now();
        pools[ti].install(|| {
            for _ in 0..iters {
                black_box(st.half_step());
            }
        });
        let ns = start.elapsed().as_nanos();
        println!("{ns}");
        std::io::stdout().flush().expect("stdout");
    }
}

/// A child process answering one line per request line (an engine worker or the C driver).
struct Timer {
    child: Child,
    /// Dropped (closed) before waiting for the child: end of input ends its loop.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// What the child said it is (`path avx2`, `isa 256`).
    label: String,
}

impl Timer {
    fn spawn(mut cmd: Command) -> Option<Timer> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let mut stdout = BufReader::new(child.stdout.take()?);
        let mut label = String::new();
        stdout.read_line(&mut label).ok()?;
        if label.is_empty() {
            let _ = child.wait();
            return None;
        }
        Some(Timer {
            child,
            stdin: Some(stdin),
            stdout,
            label: label.trim().to_string(),
        })
    }

    /// Total time of the request's half-steps, as the child measured it.
    fn ask(&mut self, request: &str) -> Duration {
        let stdin = self.stdin.as_mut().expect("open while the timer lives");
        writeln!(stdin, "{request}").expect("request");
        stdin.flush().expect("request");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("answer");
        let ns: f64 = line.trim().parse().expect("nanoseconds");
        Duration::from_nanos(ns as u64)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // Closing stdin (end of input) ends the child's loop.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The yardstick compiled for `march` into `dir`, with its driver; None (and a message)
/// without a working C compiler.
fn build_yardstick(dir: &std::path::Path, march: &str) -> Option<std::path::PathBuf> {
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers");
    let out = dir.join(format!("yardstick-{march}"));
    for cc in ["gcc", "cc"] {
        let status = Command::new(cc)
            .args(["-O3", &format!("-march={march}"), "-fopenmp"])
            .arg(peers.join("yardstick.c"))
            .arg(peers.join("yardstick_driver.c"))
            .arg("-lm")
            .arg("-o")
            .arg(&out)
            .status();
        if matches!(status, Ok(s) if s.success()) {
            return Some(out);
        }
    }
    eprintln!("kernel_peak: no C compiler with OpenMP (gcc/cc) built the yardstick for -march={march}; its rows are skipped");
    None
}

/// Whether the command line selects `kernel_peak` (no filter, or a filter it contains) and
/// is a real run (not `--list` / `--test`).
fn peak_selected() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return false;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| "kernel_peak".contains(f.as_str()) || f.contains("kernel_peak"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-cpu".into())
}

fn kernel_peak(c: &mut Criterion) {
    if !peak_selected() {
        return;
    }
    use sinkflow::sinkhorn::kernel::SimdPath;
    let paths: Vec<SimdPath> = [SimdPath::Avx512, SimdPath::Avx2, SimdPath::Baseline]
        .into_iter()
        .filter(|p| p.available())
        .collect();
    let exe = std::env::current_exe().expect("bench executable");
    let mut workers: Vec<(String, Timer)> = Vec::new();
    for p in &paths {
        let mut cmd = Command::new(&exe);
        cmd.env(PEAK_WORKER, "1").env("SINKFLOW_SIMD", p.name());
        match Timer::spawn(cmd) {
            Some(t) => workers.push((p.name().to_string(), t)),
            None => eprintln!("kernel_peak: the {} worker did not start", p.name()),
        }
    }
    // The yardstick: -march=native, the AVX2 + FMA target x86-64-v3 when native is AVX-512
    // (the fair peer of the avx2 path there), and the portable x86-64 target (SSE2, no
    // AVX/FMA).
    let dir = std::env::temp_dir().join(format!("sinkflow-kernel-peak-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let pts = dir.join("points.f64");
    {
        let mut bytes = Vec::new();
        for v in points(1, PEAK_N, PEAK_D, 0.0)
            .into_iter()
            .chain(points(2, PEAK_N, PEAK_D, 0.5))
        {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&pts, bytes).expect("points file");
    }
    let mut yardsticks: Vec<(String, Timer)> = Vec::new();
    let mut builds = vec![("native", "native")];
    if SimdPath::Avx512.available() && SimdPath::Avx2.available() {
        builds.push(("avx2", "x86-64-v3"));
    }
    builds.push(("scalar", "x86-64"));
    for (name, march) in builds {
        if let Some(bin) = build_yardstick(&dir, march) {
            let mut cmd = Command::new(bin);
            cmd.arg(&pts)
                .arg(PEAK_N.to_string())
                .arg(PEAK_N.to_string())
                .arg(PEAK_D.to_string())
                .arg(PEAK_EPS.to_string());
            if let Some(t) = Timer::spawn(cmd) {
                yardsticks.push((name.to_string(), t));
            }
        }
    }
    let model = cpu_model();
    let load_start = load_average();
    eprintln!(
        "kernel_peak on {model}; paths: {:?}; load {load_start}",
        workers.iter().map(|w| &w.0).collect::<Vec<_>>()
    );

    let pairs = (PEAK_N * PEAK_N) as u64;
    // SINKFLOW_PEAK_SERIES_ONLY=1: only the interleaved series (quick checks while tuning).
    let series_only = std::env::var_os("SINKFLOW_PEAK_SERIES_ONLY").is_some();
    let mut g = c.benchmark_group(format!("kernel_peak/{}", model.replace(' ', "_")));
    g.sample_size(10);
    g.throughput(Throughput::Elements(pairs));
    for (path, w) in workers.iter_mut().filter(|_| !series_only) {
        for mode in PEAK_MODES {
            for t in PEAK_THREADS {
                let id = BenchmarkId::new(format!("{path}-{}-{t}t", mode.name()), PEAK_N);
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| w.ask(&format!("{} {t} {iters}", mode.name())))
                });
            }
        }
    }
    for (name, y) in yardsticks.iter_mut().filter(|_| !series_only) {
        for t in PEAK_THREADS {
            let id = BenchmarkId::new(format!("yardstick-{name}-{t}t"), PEAK_N);
            g.bench_function(id, |b| {
                b.iter_custom(|iters| y.ask(&format!("{t} {iters}")))
            });
        }
    }
    g.finish();

    // The interleaved series: in each round, every engine case then the yardstick at the same
    // thread count, so that load drifts hit both alike; medians over the rounds.
    let per_pair = |d: Duration, iters: u64| d.as_secs_f64() * 1e9 / (iters as f64 * pairs as f64);
    let mut engine: Vec<Vec<f64>> = vec![Vec::new(); workers.len() * 4];
    let mut yard: Vec<Vec<f64>> = vec![Vec::new(); yardsticks.len() * 2];
    for _ in 0..PEAK_ROUNDS {
        for (ti, t) in PEAK_THREADS.iter().enumerate() {
            for (wi, (_, w)) in workers.iter_mut().enumerate() {
                for (mi, mode) in PEAK_MODES.iter().enumerate() {
                    let d = w.ask(&format!("{} {t} {PEAK_ITERS}", mode.name()));
                    engine[wi * 4 + mi * 2 + ti].push(per_pair(d, PEAK_ITERS));
                }
            }
            for (yi, (name, y)) in yardsticks.iter_mut().enumerate() {
                // The portable C build is ~10x slower per half-step: one is enough.
                let iters = if name == "scalar" { 1 } else { PEAK_ITERS };
                let d = y.ask(&format!("{t} {iters}"));
                yard[yi * 2 + ti].push(per_pair(d, iters));
            }
        }
    }
    let load_end = load_average();
    let yard_med: Vec<f64> = yard.iter_mut().map(|v| median(v)).collect();
    let yard_of = |name: &str, ti: usize| {
        yardsticks
            .iter()
            .position(|(n, _)| n == name)
            .map(|yi| yard_med[yi * 2 + ti])
    };
    let mut rows = Vec::new();
    eprintln!(
        "kernel_peak: ns per pair and half-step, medians of {PEAK_ROUNDS} interleaved rounds"
    );
    for (wi, (path, w)) in workers.iter().enumerate() {
        // The baseline path pairs with the portable yardstick build, the avx2 path with the
        // x86-64-v3 build when there is one, the others with native.
        let yname = match path.as_str() {
            "baseline" => "scalar",
            "avx2" if yardsticks.iter().any(|(n, _)| n == "avx2") => "avx2",
            _ => "native",
        };
        for (mi, mode) in PEAK_MODES.iter().enumerate() {
            for (ti, t) in PEAK_THREADS.iter().enumerate() {
                let e = median(&mut engine[wi * 4 + mi * 2 + ti]);
                let yv = yard_of(yname, ti);
                let yn = yard_of("native", ti);
                eprintln!(
                    "  {path:8} {:9} {t}t  engine {e:.3}  yardstick-{yname} {}  ratio {}",
                    mode.name(),
                    yv.map_or("-".into(), |v| format!("{v:.3}")),
                    yv.map_or("-".into(), |v| format!("{:.3}", e / v)),
                );
                rows.push(serde_json::json!({
                    "path": path,
                    "worker": w.label,
                    "threads": t,
                    "mode": mode.name(),
                    "engine_ns_per_pair": e,
                    "yardstick": yname,
                    "yardstick_ns_per_pair": yv,
                    "ratio": yv.map(|v| e / v),
                    "yardstick_native_ns_per_pair": yn,
                    "ratio_to_native": yn.map(|v| e / v),
                }));
            }
        }
    }
    let ys: Vec<_> = yardsticks
        .iter()
        .enumerate()
        .map(|(yi, (name, y))| {
            serde_json::json!({
                "build": name,
                "driver": y.label,
                "ns_per_pair_1t": yard_med[yi * 2],
                "ns_per_pair_2t": yard_med[yi * 2 + 1],
            })
        })
        .collect();
    let doc = serde_json::json!({
        "case": {"n": PEAK_N, "m": PEAK_N, "d": PEAK_D, "eps": PEAK_EPS,
                 "unit": "ns per pair and half-step (half-step time / (n m))"},
        "cpu": model,
        "best_path": SimdPath::best().name(),
        "rounds": PEAK_ROUNDS,
        "half_steps_per_measurement": PEAK_ITERS,
        "statistic": "median over rounds, engine and yardstick interleaved",
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "rows": rows,
        "yardsticks": ys,
    });
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/kernel_peak.json");
    match std::fs::write(
        &out,
        serde_json::to_string_pretty(&doc).expect("json") + "\n",
    ) {
        Ok(()) => eprintln!("kernel_peak: wrote benches/results/kernel_peak.json"),
        Err(e) => eprintln!("kernel_peak: could not write the JSON: {e}"),
    }
    drop(workers);
    drop(yardsticks);
    let _ = std::fs::remove_dir_all(&dir);
}
