//! Evidence append throughput: events/s at 1, 8 and 64 concurrent writers,
//! batched (one multi-row INSERT per group of concurrent appends) against a
//! one-row-per-transaction baseline (batch_max = 1) in the same run.
//!
//! Postgres: `DATABASE_URL=$(tests/pg-up) cargo bench -p actiongate --bench evidence`
//! (a throwaway database is created and dropped). Without DATABASE_URL, SQLite.
//! BENCH_SECS sets the seconds per measurement (default 3); BENCH_WRITERS the
//! writer counts (default `1,8,64`). Beside the rates it prints the CPU time
//! spent per event by this process and by the local Postgres server processes
//! (read from /proc), which the machine's noise disturbs far less than rates.

use std::time::{Duration, Instant};

use actiongate::evidence::{Actor, ActorKind, EventKind, EvidenceConfig, EvidenceLog, NewEvent};
use actiongate::store::{Store, StoreOptions};
use serde_json::json;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

struct Sample {
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU seconds of (this process, local postgres processes) during the run.
    cpu: (f64, f64),
}

impl Sample {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU microseconds per event: (client, server).
    fn cpu_per_event(&self) -> (f64, f64) {
        let n = self.events.max(1) as f64;
        (self.cpu.0 * 1e6 / n, self.cpu.1 * 1e6 / n)
    }

    fn pct(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

async fn run() {
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir().unwrap();
    let (url, cleanup) = match std::env::var("DATABASE_URL") {
        Ok(admin) => {
            let name = format!("bench_evidence_{}", std::process::id());
            sql_admin(&admin, &format!("CREATE DATABASE {name}")).await;
            let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
            (url, Some((admin, name)))
        }
        Err(_) => (format!("sqlite://{}/bench.db", dir.path().display()), None),
    };
    let opts = StoreOptions {
        max_connections: 80,
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&url, &opts).await.unwrap();
    println!(
        "store: {:?}, {secs}s per measurement, 2 tokio workers on {} cpus",
        store.kind(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>8} {:>10} {:>12} {:>11} {:>11} {:>8} {:>14}",
        "writers", "mode", "events/s", "median", "p99", "speedup", "cpu/ev cli+pg"
    );
    let writer_counts: Vec<usize> = std::env::var("BENCH_WRITERS")
        .unwrap_or_else(|_| "1,8,64".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("BENCH_WRITERS: comma-separated counts")
        })
        .collect();
    for writers in writer_counts {
        let mut base = measure(&store, &dir, 1, writers, secs).await;
        let mut batched = measure(&store, &dir, 512, writers, secs).await;
        let speedup = batched.rate() / base.rate();
        for (mode, s, x) in [
            ("baseline", &mut base, 1.0),
            ("batched", &mut batched, speedup),
        ] {
            let (median, p99) = (s.pct(0.5), s.pct(0.99));
            let (cli, pg) = s.cpu_per_event();
            println!(
                "{writers:>8} {mode:>10} {:>12.0} {:>9.2}ms {:>9.2}ms {x:>7.1}x {cli:>6.1}+{pg:<5.1}us",
                s.rate(),
                median.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
            );
        }
    }
    drop(store);
    if let Some((admin, name)) = cleanup {
        drop_database(&admin, &name).await;
    }
}

/// Drops the bench database. Autovacuum often works on it right after the
/// run, and a non-superuser may not terminate an autovacuum worker (42501),
/// so try again for a while, and at worst leave the database and say so.
async fn drop_database(admin: &str, name: &str) {
    use sqlx::Connection;
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    let mut last = None;
    for _ in 0..50 {
        match sqlx::query(&sql).execute(&mut c).await {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("could not drop bench database {name}: {}", last.unwrap());
}

async fn measure(
    store: &Store,
    dir: &tempfile::TempDir,
    batch_max: usize,
    writers: usize,
    secs: f64,
) -> Sample {
    let cfg = EvidenceConfig {
        key_path: dir.path().join("log.key"),
        batch_max,
        in_flight: std::env::var("BENCH_IN_FLIGHT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2),
        ..EvidenceConfig::default()
    };
    let log = EvidenceLog::open(store.clone(), cfg).await.unwrap();
    // Warm up the pool and the writer.
    for _ in 0..50 {
        log.append(event(0)).await.unwrap();
    }
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let cpu_before = (own_cpu(), postgres_cpu());
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < stop {
                let t = Instant::now();
                log.append(event(w as u64)).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = (own_cpu() - cpu_before.0, postgres_cpu() - cpu_before.1);
    Sample {
        events: latencies.len() as u64,
        elapsed,
        latencies,
        cpu,
    }
}

/// CPU seconds (user + system) of this process.
fn own_cpu() -> f64 {
    cpu_of(|pid, _| pid == std::process::id())
}

/// CPU seconds of every process named `postgres` (0 when none is local).
fn postgres_cpu() -> f64 {
    cpu_of(|_, comm| comm == "postgres")
}

/// CPU seconds of the processes `pick` selects by pid and name, from /proc.
fn cpu_of(pick: impl Fn(u32, &str) -> bool) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0u64;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ... utime stime: fields 14 and 15, counted after ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !pick(pid, &stat[open + 1..close]) {
            continue;
        }
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        let field = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        total += field(11) + field(12);
    }
    total as f64 / ticks
}

fn event(w: u64) -> NewEvent {
    NewEvent {
        kind: EventKind::Evaluated,
        action_id: Some(uuid::Uuid::now_v7()),
        actor: Actor {
            kind: ActorKind::Plugin,
            id: "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        },
        payload: json!({
            "plugin": {"sha256": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
                       "name": "db-export", "version": "1.2.0", "wit": "0.1.0"},
            "host_version": "0.1.0",
            "input": {"kind": "db.export", "agent": format!("agent-{w}"), "params": {"table": "customers", "rows": 1000}},
            "output": {"risk": "high", "route": {"require-approval": {"groups": ["dba"], "quorum": 1}}},
            "fuel_used": 123456, "duration_us": 11, "limits": {"fuel": 10000000, "memory": 16777216}
        }),
    }
}

async fn sql_admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut c).await.unwrap();
}
