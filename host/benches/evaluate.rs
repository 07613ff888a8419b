//! Per-evaluation cost of a policy plugin (fresh instance, classify + route)
//! against a native Rust function with the same rules and the same input
//! (params as JSON text, parsed as the plugin parses them), so the ratio
//! measures the sandbox, not the parsing.
//!
//! Run: `cargo bench -p actiongate --bench evaluate`. Criterion measures the
//! medians; a second pass times single evaluations for p50/p99 and counts
//! evaluations/s on 1 and 2 threads. All in one run, so the ratios compare
//! like with like on a noisy machine. Last, the same rules in Python
//! (plugins/examples/db-export-py, built with plugins/python/build, or
//! `BENCH_PYTHON_WASM`) beside the Rust plugin: component size, first load,
//! and fresh-instance evaluations alternating with Rust ones (Python's on
//! instances prepared ahead, then made for the action, in alternating
//! blocks with the CPU of each; then both back to back); the floor any
//! Python plugin pays (a plugin that allows at once, `BENCH_PYTHON_FLOOR_WASM`
//! or built from plugins/python/fixtures/hostile); and instantiation alone
//! with the interpreter's memory image mapped copy-on-write against copied.
//! `BENCH_PYTHON=only` skips everything before that part;
//! `BENCH_PYTHON_BASE_WASM` adds a baseline Python db-export (built from
//! another revision) to the same alternating rounds, for a before/after.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actiongate::action::{Action, Principal};
use actiongate::sandbox::{Limits, Plugin, Sandbox, SandboxConfig};
use criterion::Criterion;

fn action(i: u64) -> Action {
    Action {
        id: format!("bench-{i}"),
        kind: "db.export".into(),
        agent: Principal {
            id: "etl-agent".into(),
            attributes: BTreeMap::from([("owner".into(), "o@x".into())]),
        },
        on_behalf_of: None,
        resource: "postgres://prod-analytics/warehouse".into(),
        params: serde_json::json!({"rows": 250000, "tables": ["orders", "customers"], "destination": "s3://corp-analytics/churn"}),
        justification: Some("quarterly churn model".into()),
        context: BTreeMap::new(),
        requested_at: "2026-11-25T10:00:00Z".parse().unwrap(),
    }
}

/// db-export's rules, natively. Input is what the plugin receives.
mod native {
    const PII: &[&str] = &["customers", "users", "employees", "payments", "addresses"];
    const ALLOWED: &[&str] = &[
        "s3://corp-analytics/",
        "s3://corp-backups/",
        "bq://corp-warehouse/",
    ];

    use actiongate::action::{ApprovalRoute, Classification, Risk, Route};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    struct Params {
        rows: u64,
        tables: Vec<String>,
        destination: String,
    }

    /// As the SDK does it: the params object first, then each field typed.
    fn parse(params_json: &str) -> Result<Params, String> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(params_json).map_err(|e| e.to_string())?;
        fn field<T: serde::de::DeserializeOwned>(
            map: &serde_json::Map<String, serde_json::Value>,
            key: &str,
        ) -> Result<T, String> {
            let v = map
                .get(key)
                .ok_or_else(|| format!("params.{key} is required"))?;
            T::deserialize(v).map_err(|e| format!("params.{key}: {e}"))
        }
        Ok(Params {
            rows: field(&map, "rows")?,
            tables: field(&map, "tables")?,
            destination: field(&map, "destination")?,
        })
    }

    /// classify then route, building what the sandbox hands the host.
    pub fn evaluate(params_json: &str) -> Result<(Classification, Route), String> {
        let p = parse(params_json)?;
        let mut c = Classification {
            risk: Risk::Low,
            reasons: Vec::new(),
            tags: Vec::new(),
        };
        let mut raise = |r: Risk, tag: &str, reason: String| {
            c.risk = c.risk.max(r);
            c.tags.push(tag.to_string());
            c.reasons.push(reason);
        };
        if p.rows > 1_000_000 {
            raise(
                Risk::High,
                "rows:huge",
                format!("{} rows is over 1000000", p.rows),
            );
        } else if p.rows > 10_000 {
            raise(
                Risk::Medium,
                "rows:large",
                format!("{} rows is over 10000", p.rows),
            );
        }
        let pii: Vec<&str> = p
            .tables
            .iter()
            .map(|t| t.rsplit('.').next().unwrap_or(t))
            .filter(|t| PII.contains(t))
            .collect();
        if !pii.is_empty() {
            raise(
                if p.rows > 100_000 {
                    Risk::Critical
                } else {
                    Risk::High
                },
                "pii",
                format!("tables with personal data: {}", pii.join(", ")),
            );
        }
        if !ALLOWED.iter().any(|d| p.destination.starts_with(d)) {
            raise(
                Risk::Critical,
                "destination:unlisted",
                format!("destination {} is not on the allow-list", p.destination),
            );
        }
        let has = |tag: &str| c.tags.iter().any(|t| t == tag);
        if has("pii") && has("destination:unlisted") {
            let reason = "personal data may only be exported to allow-listed destinations";
            return Ok((
                c,
                Route::Deny {
                    reason: reason.into(),
                },
            ));
        }
        let approval = |quorum, ttl_seconds, escalate: &[&str]| {
            Route::RequireApproval(ApprovalRoute {
                groups: strings(&["data-owners"]),
                quorum,
                ttl_seconds,
                modifiable_params: strings(&["rows", "tables", "destination"]),
                escalate_to: strings(escalate),
            })
        };
        let route = match c.risk {
            Risk::Low => Route::Allow,
            Risk::Medium => approval(1, 3600, &[]),
            Risk::High => approval(1, 3600, &["security"]),
            Risk::Critical => approval(2, 4 * 3600, &["security"]),
        };
        Ok((c, route))
    }
}

fn sandbox() -> Arc<Sandbox> {
    Arc::new(
        Sandbox::new(SandboxConfig {
            limits: Limits::default(),
            // The throughput rounds run one plugin on several threads; the
            // service's per-plugin share (half the CPUs) would serialize them.
            plugin_share: Some(64),
            ..SandboxConfig::default()
        })
        .unwrap(),
    )
}

fn criterion_benches(c: &mut Criterion, sandbox: &Sandbox, plugin: &Plugin) {
    let input = action(0);
    let params = input.params.to_string();
    let mut group = c.benchmark_group("db-export");
    group.bench_function("sandbox (fresh instance, classify + route)", |b| {
        b.iter(|| {
            black_box(
                sandbox
                    .evaluate(plugin, black_box(&input))
                    .expect("a free slot")
                    .outcome
                    .unwrap(),
            )
        })
    });
    group.bench_function("native (same rules, same JSON input)", |b| {
        b.iter(|| black_box(native::evaluate(black_box(&params)).unwrap()))
    });
    group.finish();
}

/// The baseline is only fair if it decides as the plugin does: compare the
/// two on inputs that reach every route before timing anything.
fn check_same_rules(sandbox: &Sandbox, plugin: &Plugin) {
    let cases = [
        serde_json::json!({"rows": 500, "tables": ["orders"], "destination": "s3://corp-analytics/x"}),
        serde_json::json!({"rows": 50_000, "tables": ["orders"], "destination": "s3://corp-backups/x"}),
        serde_json::json!({"rows": 2_000_000, "tables": ["orders"], "destination": "bq://corp-warehouse/x"}),
        serde_json::json!({"rows": 500, "tables": ["crm.customers"], "destination": "s3://corp-analytics/x"}),
        serde_json::json!({"rows": 500, "tables": ["orders"], "destination": "s3://elsewhere/x"}),
        serde_json::json!({"rows": 500, "tables": ["users"], "destination": "s3://elsewhere/x"}),
        action(0).params,
    ];
    for params in cases {
        let mut input = action(0);
        input.params = params;
        let decision = sandbox
            .evaluate(plugin, &input)
            .expect("a free slot")
            .outcome
            .unwrap();
        let native = native::evaluate(&input.params.to_string()).unwrap();
        assert_eq!(
            (decision.classification, decision.route),
            native,
            "the native baseline decides {} differently from the plugin",
            input.params
        );
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn time_each(n: usize, mut f: impl FnMut(u64)) -> (Duration, Duration) {
    let samples = (0..n as u64)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    percentiles(samples)
}

/// Calls `f(i)` for fresh `i` on `threads` threads for `run_for`: calls/s in all.
fn throughput(f: Arc<dyn Fn(u64) + Send + Sync>, threads: usize, run_for: Duration) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < run_for {
                    f(t * 1_000_000_000 + n);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if std::env::var("BENCH_PYTHON").as_deref() == Ok("only") {
        return python::compare();
    }
    let sandbox = sandbox();
    let plugin = sandbox
        .load(
            actiongate::examples::example("db-export").unwrap().wasm,
            None,
        )
        .unwrap();
    check_same_rules(&sandbox, &plugin);
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &sandbox, &plugin);
    c.final_summary();

    let params = action(0).params.to_string();
    const N: usize = 50_000;
    // Inputs are built before timing: only the evaluation is measured.
    let actions: Vec<Action> = (0..N as u64).map(action).collect();
    let (s50, s99) = time_each(N, |i| {
        black_box(
            sandbox
                .evaluate(&plugin, &actions[i as usize])
                .expect("a free slot")
                .outcome
                .unwrap(),
        );
    });
    let (n50, n99) = time_each(N, |_| {
        black_box(native::evaluate(&params).unwrap());
    });
    if let Ok(list) = std::env::var("BENCH_KEEP_RESIDENT") {
        // Tuning aid: p50/p99 for other keep-resident sizes, in this run.
        for kb in list
            .split(',')
            .filter_map(|v| v.trim().parse::<usize>().ok())
        {
            let tuned = Sandbox::new(SandboxConfig {
                keep_resident_bytes: kb << 10,
                ..SandboxConfig::default()
            })
            .unwrap();
            let p = tuned
                .load(
                    actiongate::examples::example("db-export").unwrap().wasm,
                    None,
                )
                .unwrap();
            let (t50, t99) = time_each(N / 2, |i| {
                black_box(
                    tuned
                        .evaluate(&p, &actions[i as usize])
                        .expect("a free slot")
                        .outcome
                        .unwrap(),
                );
            });
            println!(
                "  keep_resident {kb:>5} KiB: p50 {:>8.2} us   p99 {:>8.2} us",
                t50.as_secs_f64() * 1e6,
                t99.as_secs_f64() * 1e6
            );
        }
    }
    // Each call builds its input, as a service would. The native function
    // on the same threads is the control: how far this machine's two cores
    // scale work that shares nothing.
    let evaluate: Arc<dyn Fn(u64) + Send + Sync> = {
        let (sandbox, plugin) = (sandbox.clone(), plugin.clone());
        Arc::new(move |i| {
            black_box(
                sandbox
                    .evaluate(&plugin, &action(i))
                    .expect("a free slot")
                    .outcome
                    .unwrap(),
            );
        })
    };
    let native: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|i| {
        black_box(native::evaluate(&action(i).params.to_string()).unwrap());
    });
    // 1 and 2 threads alternate, three rounds, so that a noisy neighbour
    // on this shared machine weighs on both sides of the ratio alike; the
    // medians are reported.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        rounds.push([
            throughput(evaluate.clone(), 1, Duration::from_secs(2)),
            throughput(evaluate.clone(), 2, Duration::from_secs(2)),
            throughput(native.clone(), 1, Duration::from_secs(1)),
            throughput(native.clone(), 2, Duration::from_secs(1)),
        ]);
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, two, native_one, native_two) = (median(0), median(1), median(2), median(3));
    println!("\nper-evaluation latency over {N} single evaluations (db-export):");
    println!(
        "  sandbox  p50 {:>8.2} us   p99 {:>8.2} us",
        s50.as_secs_f64() * 1e6,
        s99.as_secs_f64() * 1e6
    );
    println!(
        "  native   p50 {:>8.2} us   p99 {:>8.2} us",
        n50.as_secs_f64() * 1e6,
        n99.as_secs_f64() * 1e6
    );
    println!(
        "  ratio    p50 {:>8.1} x",
        s50.as_secs_f64() / n50.as_secs_f64()
    );
    println!("throughput, median of 3 alternating rounds:");
    println!(
        "  sandbox:  1 thread {one:.0} evals/s, 2 threads {two:.0} evals/s ({:.2}x; rounds {})",
        two / one,
        rounds
            .iter()
            .map(|r| format!("{:.2}x", r[1] / r[0]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  native:   1 thread {native_one:.0} calls/s, 2 threads {native_two:.0} calls/s ({:.2}x)",
        native_two / native_one
    );
    python::compare();
}

mod python {
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// The bytes of a Python plugin: `env` names a built component, or the
    /// folder `dir` is built now (into a temporary file, removed after).
    fn component(env: &str, dir: &str) -> Option<Vec<u8>> {
        if let Ok(path) = std::env::var(env) {
            return Some(std::fs::read(path).unwrap());
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
        let status = Command::new(root.join("plugins/python/build"))
            .arg(root.join(dir))
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(std::fs::read(out.path()).unwrap()),
            _ => {
                println!("\n(python: plugins/python/build {dir} failed; set {env} to compare)");
                None
            }
        }
    }

    pub fn compare() {
        let Some(bytes) = component("BENCH_PYTHON_WASM", "plugins/examples/db-export-py") else {
            return;
        };
        let rust_bytes = actiongate::examples::example("db-export").unwrap().wasm;
        let cache = tempfile::tempdir().unwrap();
        // `BENCH_PYTHON_PAGEMAP=BYTES`: slots reset by the kernel's page
        // scan instead of the default copy, for a comparison.
        let reset = |c: SandboxConfig| match std::env::var("BENCH_PYTHON_PAGEMAP") {
            Ok(bytes) => SandboxConfig {
                pagemap_keep_resident_bytes: bytes.parse().unwrap(),
                ..c
            },
            Err(_) => c,
        };
        let fresh = || {
            Sandbox::new(reset(SandboxConfig {
                cache_dir: Some(cache.path().to_path_buf()),
                ..SandboxConfig::default()
            }))
            .unwrap()
        };
        // First load: compile (and write the disk cache), link, describe.
        // Then a new sandbox, as a restarted service: from the disk cache.
        let timed = |bytes: &[u8]| {
            let sandbox = fresh();
            let t = Instant::now();
            sandbox.load(bytes, None).unwrap();
            t.elapsed()
        };
        let (py_compile, rust_compile) = (timed(&bytes), timed(rust_bytes));
        let (py_cached, rust_cached) = (timed(&bytes), timed(rust_bytes));

        let sandbox = fresh();
        let py = sandbox.load(&bytes, None).unwrap();
        let rust = sandbox.load(rust_bytes, None).unwrap();
        for i in 0..50 {
            let (a, b) = (
                sandbox.evaluate(&py, &action(i)).unwrap().outcome.unwrap(),
                sandbox
                    .evaluate(&rust, &action(i))
                    .unwrap()
                    .outcome
                    .unwrap(),
            );
            assert_eq!(a, b, "the Python and Rust db-export decide alike");
        }
        let n: usize = std::env::var("BENCH_PYTHON_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        // A baseline Python component (built from another revision), for a
        // before/after in one run: evaluated in the same alternation.
        let base = std::env::var("BENCH_PYTHON_BASE_WASM")
            .ok()
            .map(|path| sandbox.load(&std::fs::read(path).unwrap(), None).unwrap());
        let actions: Vec<Action> = (0..n as u64).map(action).collect();
        // The same plugin with no instance prepared: every instance made for its
        // action, as before `prepared.rs`.
        let cold = Sandbox::new(reset(SandboxConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            prepared_plugins: 0,
            ..SandboxConfig::default()
        }))
        .unwrap();
        let py_cold = cold.load(&bytes, None).unwrap();
        let (mut py_samples, mut rust_samples, mut base_samples, mut cold_samples) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut fuel, mut base_fuel) = ((0, 0), 0);
        let (mut py_faults, mut base_faults) = (0, 0);
        let (mut ahead_cpu, mut cold_cpu) = (Duration::ZERO, Duration::ZERO);
        let ahead_before = sandbox.prepared_counts();
        // Alternating blocks, so both sides see the same machine: Python on
        // instances made ahead (each waited for, untimed, as an action that
        // arrives after the last one is done finds it), then Python on
        // instances made for the action; Rust beside both. The process's
        // CPU per block (the prepare thread's included) is what each costs.
        for block in actions.chunks(50) {
            let cpu = process_cpu();
            let mut block_fuel = Vec::new();
            for a in block {
                sandbox.wait_prepared(&py, Duration::from_secs(5));
                let (t, f) = (Instant::now(), minor_faults());
                let e = sandbox.evaluate(&py, a).unwrap();
                py_samples.push(t.elapsed());
                py_faults += minor_faults() - f;
                fuel.0 = e.fuel_used;
                block_fuel.push(e.fuel_used);
                let t = Instant::now();
                let e = sandbox.evaluate(&rust, a).unwrap();
                rust_samples.push(t.elapsed());
                fuel.1 = e.fuel_used;
                if let Some(base) = &base {
                    sandbox.wait_prepared(base, Duration::from_secs(5));
                    let (t, f) = (Instant::now(), minor_faults());
                    let e = sandbox.evaluate(base, a).unwrap();
                    base_samples.push(t.elapsed());
                    base_faults += minor_faults() - f;
                    base_fuel = e.fuel_used;
                    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
                }
            }
            ahead_cpu += process_cpu() - cpu;
            let cpu = process_cpu();
            for (a, fuel) in block.iter().zip(block_fuel) {
                let t = Instant::now();
                let e = cold.evaluate(&py_cold, a).unwrap();
                cold_samples.push(t.elapsed());
                assert_eq!(e.fuel_used, fuel, "the same work either way");
                let t = Instant::now();
                sandbox.evaluate(&rust, a).unwrap();
                rust_samples.push(t.elapsed());
            }
            cold_cpu += process_cpu() - cpu;
        }
        let ahead_after = sandbox.prepared_counts();
        // Back to back: each action arrives as the last one ends, before
        // the next instance can be made ahead; against the same with none
        // prepared, in alternating blocks, with the process's CPU for each.
        let (mut back, mut back_cold) = (Vec::new(), Vec::new());
        let (mut back_cpu, mut back_cold_cpu) = (Duration::ZERO, Duration::ZERO);
        for block in actions[..n.min(500)].chunks(50) {
            for (on, plugin, samples, cpu) in [
                (&sandbox, &py, &mut back, &mut back_cpu),
                (&cold, &py_cold, &mut back_cold, &mut back_cold_cpu),
            ] {
                let started = process_cpu();
                for a in block {
                    let t = Instant::now();
                    on.evaluate(plugin, a).unwrap();
                    samples.push(t.elapsed());
                }
                *cpu += process_cpu() - started;
            }
        }
        let back_counts = sandbox.prepared_counts();
        let (p50, p99) = percentiles(py_samples);
        let (r50, r99) = percentiles(rust_samples);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "\ndb-export in Python ({}) beside Rust, {n} alternating fresh-instance evaluations (python's on instances made ahead):",
            py.interpreter.as_deref().unwrap_or("?")
        );
        println!(
            "  component      python {:>10} bytes   rust {:>8} bytes",
            bytes.len(),
            rust_bytes.len()
        );
        println!(
            "  first load     python {:>10.1} ms      rust {:>8.1} ms   (compile, link, describe)",
            ms(py_compile),
            ms(rust_compile)
        );
        println!(
            "  cached load    python {:>10.1} ms      rust {:>8.1} ms   (precompiled, from disk)",
            ms(py_cached),
            ms(rust_cached)
        );
        println!(
            "  evaluation p50 python {:>10.3} ms      rust {:>8.3} ms",
            ms(p50),
            ms(r50)
        );
        println!(
            "  evaluation p99 python {:>10.3} ms      rust {:>8.3} ms",
            ms(p99),
            ms(r99)
        );
        let (c50, c99) = percentiles(cold_samples);
        println!(
            "  made for the action (none prepared), same rounds: python p50 {:.3} ms, p99 {:.3} ms",
            ms(c50),
            ms(c99)
        );
        println!(
            "  prepared instances taken {} of {} (missed {}); CPU per action, python + rust: made ahead {:.3} ms, made for the action {:.3} ms",
            ahead_after.taken - ahead_before.taken,
            n,
            ahead_after.missed - ahead_before.missed,
            ms(ahead_cpu) / n as f64,
            ms(cold_cpu) / n as f64
        );
        let count = back.len();
        let ((b50, b99), (bc50, bc99)) = (percentiles(back), percentiles(back_cold));
        println!(
            "  back to back, {count} alternating: python p50 {:.3} ms, p99 {:.3} ms, CPU {:.3} ms each, {} on a prepared instance; none prepared p50 {:.3} ms, p99 {:.3} ms, CPU {:.3} ms each",
            ms(b50),
            ms(b99),
            ms(back_cpu) / count as f64,
            back_counts.taken - ahead_after.taken,
            ms(bc50),
            ms(bc99),
            ms(back_cold_cpu) / count as f64
        );
        println!(
            "  fuel           python {:>10}         rust {:>8}",
            fuel.0, fuel.1
        );
        println!(
            "  page faults    python {:>10.1} per evaluation (this thread's minor faults)",
            py_faults as f64 / n as f64
        );
        if !base_samples.is_empty() {
            let (b50, b99) = percentiles(base_samples);
            println!(
                "  baseline (BENCH_PYTHON_BASE_WASM), same rounds: p50 {:.3} ms, p99 {:.3} ms, fuel {base_fuel}, page faults {:.1} per evaluation",
                ms(b50),
                ms(b99),
                base_faults as f64 / n as f64
            );
        }
        floor(&cold, n);
        copy_on_write(&bytes, n.min(500));
    }

    /// CPU time of this process so far (every thread's), user and system.
    fn process_cpu() -> Duration {
        let usage = rusage(libc::RUSAGE_SELF);
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        time(usage.ru_utime) + time(usage.ru_stime)
    }

    /// Minor page faults of this thread so far (an evaluation runs on the
    /// calling thread).
    fn minor_faults() -> i64 {
        rusage(libc::RUSAGE_THREAD).ru_minflt
    }

    fn rusage(who: libc::c_int) -> libc::rusage {
        // SAFETY: rusage is plain integers (all zeroes is valid), and
        // getrusage only writes the struct it is given.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut usage);
            usage
        }
    }

    /// What any Python plugin pays before its rules: the hostile fixture
    /// asked a kind it has no behaviour for classifies LOW and allows, so
    /// its cost is the fresh interpreter, the SDK and the bindings.
    fn floor(sandbox: &Sandbox, n: usize) {
        let Some(bytes) = component("BENCH_PYTHON_FLOOR_WASM", "plugins/python/fixtures/hostile")
        else {
            return;
        };
        let plugin = sandbox.load(&bytes, None).unwrap();
        let mut noop = action(0);
        noop.kind = "test.noop".into();
        let mut fuel = 0;
        let (p50, p99) = time_each(n, |i| {
            noop.id = format!("floor-{i}");
            let e = sandbox.evaluate(&plugin, &noop).unwrap();
            assert!(e.outcome.is_ok(), "{:?}", e.outcome);
            fuel = e.fuel_used;
        });
        println!(
            "  floor (a Python plugin that allows at once): p50 {:.3} ms, p99 {:.3} ms, fuel {fuel}",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        );
    }

    /// Instantiation alone (create, instantiate, drop; nothing called), in
    /// pooling engines like the sandbox's, with the linear memory's initial
    /// image mapped copy-on-write (wasmtime's default, which the sandbox
    /// states) against copied in at every instantiation. Alternating rounds.
    fn copy_on_write(bytes: &[u8], n: usize) {
        use wasmtime::component::{Component, Linker};
        use wasmtime::{
            Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
        };

        let engine = |cow: bool| {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(2)
                .total_core_instances(2 * 64)
                .max_core_instances_per_component(64)
                .total_memories(2 * 4)
                .max_memories_per_component(4)
                .total_tables(2 * 8)
                .max_tables_per_component(8)
                .max_memory_size(64 << 20)
                .linear_memory_keep_resident(2 << 20);
            let mut config = Config::new();
            config
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
                .memory_init_cow(cow);
            Engine::new(&config).unwrap()
        };
        // One compile: the other engine takes the artifact if it accepts it.
        let artifact = engine(true).precompile_component(bytes).unwrap();
        let setup = |cow: bool| {
            let engine = engine(cow);
            // SAFETY: `artifact` was produced by an engine of this process.
            let component = unsafe { Component::deserialize(&engine, &artifact) }
                .or_else(|_| Component::new(&engine, bytes))
                .unwrap();
            let mut linker = Linker::<()>::new(&engine);
            linker.define_unknown_imports_as_traps(&component).unwrap();
            let pre = linker.instantiate_pre(&component).unwrap();
            (engine, pre)
        };
        let sides = [setup(true), setup(false)];
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..n {
            for (side, (engine, pre)) in sides.iter().enumerate() {
                let t = Instant::now();
                let mut store = Store::new(engine, ());
                black_box(pre.instantiate(&mut store).unwrap());
                drop(store);
                samples[side].push(t.elapsed());
            }
        }
        let [cow, copied] = samples.map(percentiles);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "  instantiate+drop only, {n} rounds: memory image copy-on-write p50 {:.0} us p99 {:.0} us; copied p50 {:.0} us p99 {:.0} us",
            us(cow.0),
            us(cow.1),
            us(copied.0),
            us(copied.1)
        );
    }
}
