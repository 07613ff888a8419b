//! Real `actiongate serve` processes (the binary tests/run builds, named by
//! ACTIONGATE_BIN) on one Postgres database: an approval through one wakes
//! a long-poll on the other, and SIGTERM drains requests in flight.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actiongate::keys::{hash_api_key, new_api_key};
use actiongate::store::{KeyRole, Store};
use actiongate_tests::pg::TempDatabase;
use actiongate_tests::process::listening_url;
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Host {
    child: Child,
    url: String,
}

impl Host {
    /// Starts `actiongate serve` with `config` and waits for its address.
    fn start(config: &std::path::Path, dir: &std::path::Path) -> Host {
        Host::start_with(config, dir, &[], "warn", Stdio::inherit())
    }

    /// `start` with extra global arguments, a log filter and where its
    /// stderr (the log) goes.
    fn start_with(
        config: &std::path::Path,
        dir: &std::path::Path,
        extra: &[&str],
        log: &str,
        stderr: Stdio,
    ) -> Host {
        let mut child = Command::new(bin())
            .args(extra)
            .args([
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("ACTIONGATE_LOG_FORMAT")
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning actiongate serve");
        let url = listening_url(&mut child);
        Host { child, url }
    }

    fn terminate(&mut self) {
        unsafe { libc_kill(self.child.id() as i32, 15) };
    }
}

fn bin() -> String {
    std::env::var("ACTIONGATE_BIN")
        .expect("ACTIONGATE_BIN names the built actiongate binary (tests/run sets it)")
}

/// Runs the CLI with `config`; its exit code, stdout and stderr.
fn cli(config: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running actiongate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// A config for processes sharing `database_url`: the example bindings and
/// directory, keys shared through `dir` (replicas must share the grant key).
fn write_config(dir: &std::path::Path, database_url: &str) -> std::path::PathBuf {
    let mut text = actiongate::config::EXAMPLE_CONFIG.replace("demo = true", "demo = false");
    text = text.replace(
        "key_path = \"./data/grant.key\"",
        &format!("key_path = \"{}/grant.key\"", dir.display()),
    );
    text = text.replace(
        "key_path = \"./data/log.key\"",
        &format!("key_path = \"{}/log.key\"", dir.display()),
    );
    text = format!("database_url = \"{database_url}\"\n{text}");
    let path = dir.join("actiongate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn key(store: &Store, role: KeyRole, subject: &str) -> String {
    let key = new_api_key().unwrap();
    store
        .add_api_key(&hash_api_key(&key), role, subject)
        .await
        .unwrap();
    key
}

#[tokio::test]
async fn an_approval_through_process_b_wakes_a_long_poll_on_process_a() {
    let db = TempDatabase::create("ag_procs").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url);
    let a = Host::start(&config, dir.path());
    let b = Host::start(&config, dir.path());
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_agent("etl", "owner@example.com", &Default::default())
        .await
        .unwrap();
    let agent = key(&store, KeyRole::Agent, "etl").await;
    let dana = key(&store, KeyRole::Approver, "dana@example.com").await;
    let client = reqwest::Client::new();

    let submitted: Value = client
        .post(format!("{}/v1/actions", a.url))
        .bearer_auth(&agent)
        .json(&json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["action_id"].as_str().unwrap().to_string();
    let poll = {
        let (client, url, agent, id) = (client.clone(), a.url.clone(), agent.clone(), id.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client
                .get(format!("{url}/v1/actions/{id}"))
                .bearer_auth(agent)
                .header("Prefer", "wait=30")
                .send()
                .await
                .unwrap();
            (r.json::<Value>().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let review = client
        .post(format!("{}/v1/approvals/{id}/reviews", b.url))
        .bearer_auth(&dana)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status(), StatusCode::OK);
    let (status, waited) = poll.await.unwrap();
    assert_eq!(status["state"], "approved", "{status}");
    assert!(
        waited < Duration::from_secs(10),
        "woken through LISTEN/NOTIFY, not the timeout: {waited:?}"
    );
    // The grant from A verifies with B's JWKS: replicas share the key.
    let jwks: Value = client
        .get(format!("{}/v1/keys", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verified = actiongate_tests::run_python(
        "verify_grant.py",
        &[&jwks.to_string(), status["grant"].as_str().unwrap()],
    );
    assert!(verified.is_ok(), "{verified:?}");
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let db = TempDatabase::create("ag_drain").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url);
    let mut host = Host::start(&config, dir.path());
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_agent("etl", "owner@example.com", &Default::default())
        .await
        .unwrap();
    let agent = key(&store, KeyRole::Agent, "etl").await;
    let client = reqwest::Client::new();

    // A long-poll is in flight when SIGTERM arrives; it still gets its answer.
    let pending: Value = client
        .post(format!("{}/v1/actions", host.url))
        .bearer_auth(&agent)
        .json(&json!({"kind": "crm.merge", "resource": "crm://x", "params": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = pending["action_id"].as_str().unwrap().to_string();
    let poll = tokio::spawn({
        let (client, url, agent) = (client.clone(), host.url.clone(), agent.clone());
        async move {
            client
                .get(format!("{url}/v1/actions/{id}"))
                .bearer_auth(agent)
                .header("Prefer", "wait=3")
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.terminate();
    let answered = poll
        .await
        .unwrap()
        .expect("the request in flight is answered, not dropped");
    assert_eq!(answered.status(), StatusCode::OK);
    let status = host.child.wait().unwrap();
    assert!(status.success(), "exits cleanly after draining: {status:?}");
    // New connections are refused once it has stopped.
    assert!(client
        .get(format!("{}/healthz", host.url))
        .send()
        .await
        .is_err());
}

/// Decisions of the last seconds before a graceful stop are provable after
/// it: the stop signs a checkpoint over them. Before it, `audit export`
/// says how many events are not yet covered instead of "nothing to export".
#[tokio::test]
async fn a_graceful_stop_signs_a_final_checkpoint() {
    let db = TempDatabase::create("ag_final").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url);
    // No timer or count signs during the test: only the stop can.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "checkpoint_every_events = 1000",
            "checkpoint_every_events = 1000000",
        )
        .replace(
            "checkpoint_every_seconds = 5.0",
            "checkpoint_every_seconds = 3600.0",
        );
    std::fs::write(&config, text).unwrap();
    let mut host = Host::start(&config, dir.path());
    let store = Store::connect(&db.url).await.unwrap();
    store
        .create_agent("etl", "owner@example.com", &Default::default())
        .await
        .unwrap();
    let agent = key(&store, KeyRole::Agent, "etl").await;
    let client = reqwest::Client::new();
    // The start signs the first checkpoint (over plugin registrations and
    // bindings); wait for it, so the decisions below are the uncovered ones.
    let started = Instant::now();
    while store.latest_checkpoint().await.unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no first checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for rows in [500, 600, 700] {
        let r = client
            .post(format!("{}/v1/actions", host.url))
            .bearer_auth(&agent)
            .json(&json!({"kind": "db.export", "resource": "r", "params": {"rows": rows, "tables": ["orders"], "destination": "s3://corp-analytics/x"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let events = store.event_count().await.unwrap();
    let signed = store.latest_checkpoint().await.unwrap().unwrap().size;
    assert!(signed < events, "{signed} < {events}");

    let bundle = dir.path().join("bundle.json");
    let export = [
        "audit",
        "export",
        "--since",
        "1h",
        "--out",
        bundle.to_str().unwrap(),
    ];
    let (code, out, err) = cli(&config, dir.path(), &export);
    assert_eq!(code, 2, "{out}{err}");
    // 3 allowed exports: submitted, evaluated, granted each.
    assert!(
        err.contains("nothing to export yet: 9 event(s) of the actions submitted in that window are not yet covered by a signed checkpoint"),
        "{err}"
    );
    assert!(!err.contains("no action was submitted"), "{err}");

    host.terminate();
    let status = host.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let covered = store.latest_checkpoint().await.unwrap().unwrap().size;
    assert_eq!(
        covered,
        store.event_count().await.unwrap(),
        "the stop signed over every event"
    );
    assert!(covered >= events);

    let (code, out, err) = cli(&config, dir.path(), &export);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("9 events of 3 actions"), "{out}");
    let (code, out, err) = cli(&config, dir.path(), &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Logs written to a pipe carry no colour codes; `--log-format json` writes
/// one JSON object a line.
#[tokio::test]
async fn logs_are_plain_off_a_terminal_and_json_on_request() {
    let db = TempDatabase::create("ag_logs").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url);
    for format in ["text", "json"] {
        let extra: &[&str] = if format == "json" {
            &["--log-format", "json"]
        } else {
            &[]
        };
        let mut host = Host::start_with(&config, dir.path(), extra, "info", Stdio::piped());
        // Past the start: the signal handler is in place.
        tokio::time::sleep(Duration::from_millis(500)).await;
        host.terminate();
        assert!(host.child.wait().unwrap().success());
        let mut log = String::new();
        std::io::Read::read_to_string(&mut host.child.stderr.take().unwrap(), &mut log).unwrap();
        assert!(log.contains("serving"), "{format}: {log}");
        assert!(!log.contains('\u{1b}'), "{format}: ANSI codes in {log:?}");
        if format == "json" {
            for line in log.lines().filter(|l| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
            }
        }
    }
}
