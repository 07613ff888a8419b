//! Hostile plugins against the running service, over loopback HTTP and a
//! real Postgres: a plugin blocked in a WASI call, a flooded instance pool,
//! and replay of what they left in the evidence.

use std::time::{Duration, Instant};

use actiongate::config::Config;
use actiongate::evidence::EventKind;
use actiongate_tests::caller::Caller;
use actiongate_tests::process::ServedBinary;
use actiongate_tests::server::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn good_export() -> Value {
    json!({"kind": "db.export", "resource": "postgres://prod/warehouse",
           "params": {"rows": 500, "tables": ["orders"], "destination": "bq://corp-warehouse/daily"}})
}

fn hostile(kind: &str) -> Value {
    json!({"kind": kind, "resource": "test://r", "params": {}})
}

async fn count(server: &TestServer, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&server.database_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

/// A `std::thread::sleep(10 s)` used to hold its thread for 10 s and then be
/// recorded as a deadline; replaying it took 10 s again. The sleep is now
/// refused at once (recorded as the deadline it could never beat), and its
/// replay matches, at once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_plugin_is_refused_at_once_and_replays_the_same() {
    let server =
        TestServer::start_with(|c| actiongate_tests::bind_component(c, "test.*", "hostile_sleep"))
            .await;
    let agent = Caller::agent(&server, "sleepy-agent", "owner@example.com").await;
    let started = Instant::now();
    let (status, answer) = agent.post("/v1/actions", hostile("test.sleep")).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in {:?}, not after the guest's 10 s sleep",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["state"], "denied", "{answer}");

    let store = server.app.gate.store();
    let window = actiongate::audit::recorded::window(None, None, chrono::Utc::now()).unwrap();
    let (recorded, malformed) =
        actiongate::audit::recorded::evaluations_in(store, EventKind::Evaluated, window)
            .await
            .unwrap();
    let ours: Vec<_> = recorded
        .into_iter()
        .filter(|r| r.input.kind == "test.sleep")
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].failure.as_deref(), Some("deadline"));
    assert!(
        ours[0].output.classification.reasons[0].contains("frozen clock"),
        "the evidence says why: {:?}",
        ours[0].output.classification.reasons
    );
    let started = Instant::now();
    let report = actiongate::audit::replay::replay_from_store(
        store,
        server.config.sandbox.clone(),
        Some(server.app.gate.directory().clone()),
        ours,
        malformed,
    )
    .await
    .unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "replayed in {:?}",
        started.elapsed()
    );
}

/// One plugin may hold one slot here. Its flood waits briefly for it, then
/// gets 503 with nothing decided: no action row and no evidence event for
/// those submissions, and no failure blamed on the plugin. Another kind,
/// bound to another plugin, decides meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_share_is_503_with_nothing_decided_while_other_kinds_decide() {
    let server = TestServer::start_with(|c| {
        actiongate_tests::bind_component(c, "test.*", "hostile_infinite_loop");
        c.sandbox.plugin_share = Some(1);
        c.sandbox.slot_wait_ms = 100;
        // Unbounded in effect, and still a number evidence can hold exactly.
        c.sandbox.limits.fuel = 1 << 50;
        c.sandbox.limits.deadline_ms = 600;
    })
    .await;
    let agent = Caller::agent(&server, "flood-agent", "owner@example.com").await;
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.post("/v1/actions", hostile("test.loop")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let (status, answer) = agent.post("/v1/actions", good_export()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "another plugin's kind decides while the first is flooded: {:?}",
        started.elapsed()
    );

    let (mut decided, mut busy) = (0, 0);
    for answer in flood {
        let (status, body) = answer.await.unwrap();
        match status {
            StatusCode::FORBIDDEN => {
                assert_eq!(body["state"], "denied", "{body}");
                decided += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["type"], "urn:actiongate:problem:busy", "{body}");
                assert!(body["detail"].as_str().unwrap().contains("busy"), "{body}");
                busy += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(decided >= 1 && busy >= 1, "decided {decided}, busy {busy}");
    let rows = count(
        &server,
        "SELECT count(*) FROM actions WHERE action::jsonb->>'kind' = 'test.loop'",
    )
    .await;
    assert_eq!(rows, decided, "a busy answer leaves no action behind");
    let failures = count(
        &server,
        "SELECT count(*) FROM evidence_events WHERE kind = 'plugin-failed'",
    )
    .await;
    assert_eq!(failures, decided, "only decided actions have a failure");
    let blamed = count(
        &server,
        "SELECT count(*) FROM evidence_events WHERE canonical LIKE '%concurrent%' OR canonical LIKE '%busy%'",
    )
    .await;
    assert_eq!(blamed, 0, "host capacity is never recorded as the plugin's");
    let deadlines = count(
        &server,
        "SELECT count(*) FROM evidence_events WHERE kind = 'plugin-failed' AND canonical LIKE '%\"failure\":\"deadline\"%'",
    )
    .await;
    assert_eq!(deadlines, decided, "each decided one failed as itself");
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Good submissions for `for_how_long`, from `clients` concurrent clients;
/// their latencies.
async fn good_load(agent: &Caller, clients: usize, for_how_long: Duration) -> Vec<Duration> {
    let until = Instant::now() + for_how_long;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let agent = agent.clone();
            tokio::spawn(async move {
                let mut took = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let (status, answer) = agent.post("/v1/actions", good_export()).await;
                    assert_eq!(status, StatusCode::OK, "{answer}");
                    took.push(started.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// The load test of issue 18, in one run: good `db.export` submissions
/// alone, then while 50 clients flood `test.*` with memory bombs (each
/// allocating until its 16 MiB cap traps it). Prints both sides' p50/p99
/// and fails unless the flooded p99 is at most 3x the quiet one. Loopback
/// only, a few seconds per side. Run it alone:
/// `cargo test -p actiongate-tests --test hostile_service -- --ignored --nocapture`
/// With `BENCH_BIN=target/release/actiongate` it measures that binary.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a load test: run it alone, on a quiet machine"]
async fn flood_of_hostile_submissions_keeps_good_ones_fast() {
    const SIDE: Duration = Duration::from_secs(4);
    const GOOD_CLIENTS: usize = 2;
    const FLOOD_CLIENTS: usize = 50;
    // FLOOD_FIXTURE picks another hostile fixture for the flood.
    let fixture = std::env::var("FLOOD_FIXTURE").unwrap_or_else(|_| "hostile_memory_bomb".into());
    // BENCH_BIN measures that binary (a release build) as its own process;
    // either service lives (in `_server`) until the end of the test.
    let (_server, agent, flooder) = match std::env::var("BENCH_BIN") {
        Ok(bin) => {
            let mut config = Config::default();
            actiongate_tests::bind_component(&mut config, "test.*", &fixture);
            let b = config.bindings.last().unwrap();
            let binding = format!(
                "[[bindings]]\nkind = \"test.*\"\npath = {:?}\nsha256 = {:?}",
                b.path.as_ref().unwrap().display().to_string(),
                b.sha256.as_ref().unwrap()
            );
            let server = ServedBinary::start(std::path::Path::new(&bin), &binding, "warn").await;
            let agent = Caller::at(
                &server.url,
                server.agent("good-agent", "owner@example.com").await,
            );
            let flooder = Caller::at(
                &server.url,
                server.agent("flood-agent", "owner@example.com").await,
            );
            (Box::new(server) as Box<dyn std::any::Any>, agent, flooder)
        }
        Err(_) => {
            let server =
                TestServer::start_with(|c| actiongate_tests::bind_component(c, "test.*", &fixture))
                    .await;
            let agent = Caller::agent(&server, "good-agent", "owner@example.com").await;
            let flooder = Caller::agent(&server, "flood-agent", "owner@example.com").await;
            (Box::new(server) as Box<dyn std::any::Any>, agent, flooder)
        }
    };
    good_load(&agent, GOOD_CLIENTS, Duration::from_millis(500)).await; // warm-up

    let mut quiet = good_load(&agent, GOOD_CLIENTS, SIDE).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..FLOOD_CLIENTS)
        .map(|_| {
            let (flooder, stop) = (flooder.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut denied, mut busy) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match flooder.post("/v1/actions", hostile("test.bomb")).await.0 {
                        StatusCode::FORBIDDEN => denied += 1,
                        StatusCode::SERVICE_UNAVAILABLE => busy += 1,
                        other => panic!("flood got {other}"),
                    }
                }
                (denied, busy)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut flooded = good_load(&agent, GOOD_CLIENTS, SIDE).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut denied, mut busy) = (0, 0);
    for f in flood {
        let (d, b) = f.await.unwrap();
        denied += d;
        busy += b;
    }

    let (q50, q99) = percentiles(&mut quiet);
    let (f50, f99) = percentiles(&mut flooded);
    println!(
        "good submissions, {GOOD_CLIENTS} clients, {} s per side:\n  quiet:   n={} p50={q50:.2} ms p99={q99:.2} ms\n  flooded: n={} p50={f50:.2} ms p99={f99:.2} ms ({:.2}x quiet p99)\n  flood ({FLOOD_CLIENTS} clients of {fixture}): {denied} decided (403, failed closed), {busy} refused as busy (503)",
        SIDE.as_secs(),
        quiet.len(),
        flooded.len(),
        f99 / q99
    );
    assert!(denied > 0, "the flood was evaluated");
    assert!(
        f99 <= 3.0 * q99,
        "flooded p99 {f99:.2} ms is over 3x the quiet p99 {q99:.2} ms"
    );
}
