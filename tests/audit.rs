//! The auditors' commands against a real database and real components:
//! `audit verify` names altered or removed rows by seq; `audit replay`
//! re-runs a real history; `audit export` bundles verify offline and refuse
//! tampering; the change-approval CSV; `plugin backtest` and `plugin diff`.

use std::time::Duration;

use actiongate::cli::{run, Cli};
use actiongate::evidence::{Actor, EventKind, EvidenceConfig, EvidenceLog, NewEvent};
use actiongate::store::Store;
use clap_free::parse;
use serde_json::json;

mod clap_free {
    /// Parses argv the way the binary does.
    pub fn parse(args: &[&str]) -> actiongate::cli::Cli {
        <actiongate::cli::Cli as clap::Parser>::try_parse_from(args).unwrap()
    }
}

struct Fixture {
    log: EvidenceLog,
    url: String,
    _dir: tempfile::TempDir,
}

async fn fixture(pool: sqlx::PgPool, n: u64) -> Fixture {
    let store = Store::from_pool(pool.clone());
    store.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = EvidenceConfig {
        key_path: dir.path().join("log.key"),
        checkpoint_every_events: 8,
        checkpoint_every_seconds: 0.1,
        leader_retry_ms: 50,
        ..EvidenceConfig::default()
    };
    let log = EvidenceLog::open(store, cfg).await.unwrap();
    for i in 0..n {
        let e = NewEvent {
            kind: EventKind::Reviewed,
            action_id: None,
            actor: Actor {
                kind: actiongate::evidence::ActorKind::Human,
                id: format!("u{i}"),
            },
            payload: json!({"decision": "approve", "i": i}),
        };
        log.append(e).await.unwrap();
    }
    log.wait_integrated(n - 1, Duration::from_secs(20))
        .await
        .unwrap();
    let base = actiongate_tests::pg::database_url();
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    Fixture {
        log,
        url,
        _dir: dir,
    }
}

/// Runs `actiongate audit verify` as the binary would; returns (exit code, output).
async fn audit_verify(f: &Fixture) -> (u8, String) {
    let vkey = f.log.verifier_key();
    let cli: Cli = parse(&[
        "actiongate",
        "--database-url",
        &f.url,
        "audit",
        "verify",
        "--vkey",
        &vkey,
    ]);
    let mut out = Vec::new();
    let code = run(cli, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

async fn tamper(pool: &sqlx::PgPool, sql: &str) {
    // As the tables' owner, behind the append-only triggers' back.
    let mut tx = pool.begin().await.unwrap();
    for t in [
        "evidence_events",
        "evidence_tree_hashes",
        "evidence_checkpoints",
    ] {
        sqlx::query(&format!("ALTER TABLE {t} DISABLE TRIGGER USER"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
    for t in [
        "evidence_events",
        "evidence_tree_hashes",
        "evidence_checkpoints",
    ] {
        sqlx::query(&format!("ALTER TABLE {t} ENABLE TRIGGER USER"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Tampers with a fresh 20-event log by `sql` and checks that `audit
/// verify` fails naming `seq` first; returns its output.
async fn fails_at(pool: &sqlx::PgPool, sql: &str, seq: u64) -> String {
    let f = fixture(pool.clone(), 20).await;
    tamper(pool, sql).await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("FAIL: first altered or missing seq: {seq}\n")),
        "{out}"
    );
    out
}

#[sqlx::test(migrations = false)]
async fn a_clean_log_verifies(pool: sqlx::PgPool) {
    let f = fixture(pool, 20).await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK"), "{out}");
    assert!(out.contains("events: 20"), "{out}");
}

#[sqlx::test(migrations = false)]
async fn an_altered_payload_is_named(pool: sqlx::PgPool) {
    fails_at(
        &pool,
        "UPDATE evidence_events SET canonical = replace(canonical, 'approve', 'deny') WHERE seq = 13",
        13,
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn an_alteration_with_a_recomputed_leaf_hash_is_named(pool: sqlx::PgPool) {
    // A careful forger fixes up the leaf hash too; the integrated tree still knows.
    fails_at(
        &pool,
        "UPDATE evidence_events SET canonical = replace(canonical, 'approve', 'deny') WHERE seq = 5; \
         UPDATE evidence_events SET leaf_hash = sha256('\\x00'::bytea || convert_to(canonical, 'UTF8')) WHERE seq = 5",
        5,
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_deleted_row_is_named(pool: sqlx::PgPool) {
    let out = fails_at(&pool, "DELETE FROM evidence_events WHERE seq = 7", 7).await;
    assert!(out.contains("seq 7: missing"), "{out}");
}

#[sqlx::test(migrations = false)]
async fn a_truncated_tail_is_named(pool: sqlx::PgPool) {
    fails_at(&pool, "DELETE FROM evidence_events WHERE seq >= 17", 17).await;
}

#[sqlx::test(migrations = false)]
async fn a_forged_checkpoint_is_reported(pool: sqlx::PgPool) {
    let f = fixture(pool.clone(), 20).await;
    tamper(&pool, "UPDATE evidence_checkpoints SET note = replace(note, E'\\n20\\n', E'\\n21\\n') WHERE size = 20").await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("checkpoint 20: signature does not verify"),
        "{out}"
    );
    // The wrong key fails every checkpoint.
    let other = tempfile::tempdir().unwrap();
    let k = actiongate::evidence::LogKey::load_or_generate(&other.path().join("k"), f.log.origin())
        .unwrap();
    let cli = parse(&[
        "actiongate",
        "--database-url",
        &f.url,
        "audit",
        "verify",
        "--vkey",
        k.verifier_key(),
    ]);
    let mut out = Vec::new();
    assert_eq!(run(cli, &mut out).await, 1);
}

#[tokio::test]
async fn sqlite_alteration_is_named_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ag.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    let cfg = EvidenceConfig {
        key_path: dir.path().join("log.key"),
        checkpoint_every_events: 4,
        checkpoint_every_seconds: 0.1,
        ..EvidenceConfig::default()
    };
    let log = EvidenceLog::open(store.clone(), cfg).await.unwrap();
    for i in 0..9 {
        let e = NewEvent {
            kind: EventKind::Granted,
            action_id: None,
            actor: Actor::system("t"),
            payload: json!({"i": i}),
        };
        log.append(e).await.unwrap();
    }
    log.wait_integrated(8, Duration::from_secs(20))
        .await
        .unwrap();
    let Store::Sqlite(p, _) = &store else {
        unreachable!()
    };
    sqlx::query("DROP TRIGGER evidence_events_no_update")
        .execute(p)
        .await
        .unwrap();
    sqlx::query("UPDATE evidence_events SET canonical = replace(canonical, '\"i\":4', '\"i\":40') WHERE seq = 4")
        .execute(p)
        .await
        .unwrap();
    let report = actiongate::audit::verify::verify(&store, &log.verifier_key())
        .await
        .unwrap();
    assert_eq!(report.first_bad_seq(), Some(4), "{report}");
}

#[tokio::test]
async fn log_key_prints_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("actiongate.toml");
    let key = dir.path().join("keys/log.key");
    std::fs::write(
        &cfg,
        format!(
            "[evidence]\norigin = \"audit.test/log\"\nkey_path = \"{}\"\n",
            key.display()
        ),
    )
    .unwrap();
    let mut out = Vec::new();
    let code = run(
        parse(&[
            "actiongate",
            "--config",
            cfg.to_str().unwrap(),
            "log",
            "key",
        ]),
        &mut out,
    )
    .await;
    assert_eq!(code, 0);
    let printed = String::from_utf8(out).unwrap();
    let k = actiongate::evidence::LogKey::load(&key, "audit.test/log").unwrap();
    assert_eq!(printed.trim(), k.verifier_key());
    let parts: Vec<&str> = printed.trim().splitn(3, '+').collect();
    assert_eq!(parts[0], "audit.test/log");
    assert_eq!(parts[1].len(), 8);
}

// ---------------------------------------------------------------------------
// A real history through the API: the example plugins decide, people approve,
// agents report outcomes.

mod history {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use actiongate::cli::run;
    pub use actiongate_tests::caller::Caller;
    use actiongate_tests::server::TestServer;
    use reqwest::StatusCode;
    use serde_json::{json, Value};

    /// What an agent and an approver do in these histories.
    pub trait Calls {
        /// Submits an action; returns (action id, answer).
        async fn submit(&self, body: Value) -> (String, Value);
        async fn approve(&self, id: &str) -> Value;
        /// Reports success with the action's grant.
        async fn execute(&self, id: &str);
    }

    impl Calls for Caller {
        async fn submit(&self, body: Value) -> (String, Value) {
            let (_, answer) = self.post("/v1/actions", body).await;
            let id = answer["action_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer}"))
                .to_owned();
            (id, answer)
        }

        async fn approve(&self, id: &str) -> Value {
            let (status, answer) = self
                .post(
                    &format!("/v1/approvals/{id}/reviews"),
                    json!({"decision": "approve", "reason": "checked the ticket"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }

        async fn execute(&self, id: &str) {
            let status: Value = self
                .get(&format!("/v1/actions/{id}"))
                .await
                .json()
                .await
                .unwrap();
            let grant = status["grant"]
                .as_str()
                .unwrap_or_else(|| panic!("{status}"));
            let (code, answer) = self
                .post(
                    &format!("/v1/actions/{id}/outcome"),
                    json!({"grant": grant, "status": "succeeded", "summary": "exported"}),
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{answer}");
        }
    }

    pub fn export(rows: u64, table: &str, destination: &str) -> Value {
        json!({"kind": "db.export", "resource": "postgres://prod/warehouse",
               "params": {"rows": rows, "tables": [table], "destination": destination},
               "justification": "quarterly report"})
    }

    /// The actions of one small, known history.
    pub struct Actions {
        /// 500 rows, no PII, allow-listed: allowed at once, then executed.
        pub allowed: String,
        /// PII to an unlisted destination: denied by policy.
        pub denied: String,
        /// 50 000 rows: medium, one data owner approves; executed.
        pub one_approval: String,
        /// 250 000 rows of customers: critical, two data owners; executed.
        pub two_approvals: String,
        /// Bound to a plugin that panics: failed closed (denied).
        pub failed_closed: String,
    }

    pub struct History {
        pub server: TestServer,
        pub actions: Actions,
        /// A config file for the CLI: this server's log key and compile cache.
        pub config: PathBuf,
    }

    /// A panicking plugin bound to `test.*`, so failures are in the history.
    pub fn bind_panic(config: &mut actiongate::config::Config) {
        actiongate_tests::bind_component(config, "test.*", "hostile_panic");
    }

    pub async fn record() -> History {
        let server = TestServer::start_with(bind_panic).await;
        let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
        let dana = Caller::approver(&server, "dana@example.com").await;
        let erin = Caller::approver(&server, "erin@example.com").await;

        let (allowed, a) = agent
            .submit(export(500, "orders", "s3://corp-analytics/q"))
            .await;
        assert_eq!(a["state"], "allowed", "{a}");
        agent.execute(&allowed).await;
        let (denied, a) = agent
            .submit(export(10, "users", "https://paste.example.net"))
            .await;
        assert_eq!(a["state"], "denied", "{a}");
        let (one_approval, a) = agent
            .submit(export(50_000, "orders", "s3://corp-analytics/q"))
            .await;
        assert_eq!(a["state"], "pending", "{a}");
        assert_eq!(dana.approve(&one_approval).await["state"], "approved");
        agent.execute(&one_approval).await;
        let (two_approvals, a) = agent
            .submit(export(250_000, "customers", "s3://corp-analytics/q"))
            .await;
        assert_eq!(a["approval"]["quorum"], 2, "{a}");
        assert_eq!(dana.approve(&two_approvals).await["state"], "pending");
        assert_eq!(erin.approve(&two_approvals).await["state"], "approved");
        agent.execute(&two_approvals).await;
        let (failed_closed, a) = agent
            .submit(json!({"kind": "test.anything", "resource": "test://a,\"b\"", "params": {}}))
            .await;
        assert_eq!(a["state"], "denied", "{a}");

        let config = cli_config(&server);
        let history = History {
            server,
            actions: Actions {
                allowed,
                denied,
                one_approval,
                two_approvals,
                failed_closed,
            },
            config,
        };
        history.integrated().await;
        history
    }

    impl History {
        /// Waits until a checkpoint covers every event so far.
        pub async fn integrated(&self) {
            let log = &self.server.app.evidence;
            let size = log.committed_size().await.unwrap();
            log.wait_integrated(size - 1, Duration::from_secs(20))
                .await
                .unwrap();
        }

        /// Runs the CLI in-process against this history; returns (exit code, output).
        pub async fn cli(&self, args: &[&str]) -> (u8, String) {
            let mut argv = vec![
                "actiongate",
                "--config",
                self.config.to_str().unwrap(),
                "--database-url",
                &self.server.database_url,
            ];
            argv.extend_from_slice(args);
            let mut out = Vec::new();
            let code = run(super::parse(&argv), &mut out).await;
            (code, String::from_utf8(out).unwrap())
        }

        pub fn vkey(&self) -> String {
            self.server.app.evidence.verifier_key()
        }

        pub fn path(&self, name: &str) -> PathBuf {
            self.server.dir.path().join(name)
        }
    }

    /// A config for the CLI: the server's log key, origin and compile cache.
    fn cli_config(server: &TestServer) -> PathBuf {
        let path: &Path = server.dir.path();
        let file = path.join("audit.toml");
        let c = &server.config;
        std::fs::write(
            &file,
            format!(
                "[evidence]\norigin = {:?}\nkey_path = {:?}\n\n[sandbox]\ncache_dir = {:?}\n",
                c.evidence.origin,
                c.evidence.key_path,
                actiongate_tests::cache_dir(),
            ),
        )
        .unwrap();
        file
    }
}

use history::{Calls, History};

/// A recorded `evaluated` event of `action`, as stored.
async fn evaluated_payload(h: &History, action: &str) -> serde_json::Value {
    let events = h
        .server
        .app
        .evidence
        .events_for_action(action.parse().unwrap())
        .await
        .unwrap();
    events
        .into_iter()
        .find(|e| e.kind == EventKind::Evaluated)
        .unwrap()
        .payload
}

#[tokio::test]
async fn replay_matches_a_real_history() {
    let h = history::record().await;
    let (code, out) = h.cli(&["audit", "replay", "--since", "1h"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK\n"), "{out}");
    // Five actions, one evaluation each; the panicking plugin replays to the same trap.
    assert!(
        out.contains(
            "replayed: 5, match: 5, mismatch: 0, missing plugin: 0, skipped: 0, malformed: 0"
        ),
        "{out}"
    );
    // The plugin that panicked replays to the same failure.
    let panic_line = out
        .lines()
        .find(|l| l.contains(&h.actions.failed_closed))
        .unwrap();
    assert!(
        panic_line.starts_with("MATCH    seq") && panic_line.contains("(panic 0.0.1 sha256:"),
        "{out}"
    );
    let (code, out) = h.cli(&["audit", "replay", &h.actions.two_approvals]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed: 1, match: 1"), "{out}");
    // A window that ended before the history holds nothing.
    let (code, out) = h
        .cli(&["audit", "replay", "--since", "2h", "--until", "1h"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed: 0"), "{out}");
    // An action with no evaluation cannot be checked.
    let (code, _) = h
        .cli(&["audit", "replay", &uuid::Uuid::now_v7().to_string()])
        .await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn replay_names_a_mismatch_and_a_missing_plugin() {
    let h = history::record().await;
    let log = &h.server.app.evidence;
    // A record that lies: the plugin allowed this export, the record says deny.
    let mut lie = evaluated_payload(&h, &h.actions.allowed).await;
    lie["output"]["route"] = json!({"route": "deny", "reason": "forged"});
    lie["output"]["classification"]["risk"] = json!("high");
    let forged = log
        .append(NewEvent {
            kind: EventKind::Evaluated,
            action_id: Some(h.actions.allowed.parse().unwrap()),
            actor: Actor {
                kind: actiongate::evidence::ActorKind::Plugin,
                id: lie["plugin"]["sha256"].as_str().unwrap().into(),
            },
            payload: lie,
        })
        .await
        .unwrap();
    // A decision by a plugin whose bytes were never stored.
    let unknown = actiongate::sandbox::sha256_hex(&actiongate_tests::component("fixture_deny_all"));
    let mut orphan = evaluated_payload(&h, &h.actions.denied).await;
    orphan["plugin"]["sha256"] = json!(unknown);
    let orphan = log
        .append(NewEvent {
            kind: EventKind::Evaluated,
            action_id: Some(h.actions.denied.parse().unwrap()),
            actor: Actor::system("test"),
            payload: orphan,
        })
        .await
        .unwrap();

    let (code, out) = h.cli(&["audit", "replay", "--since", "1h"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL\n"), "{out}");
    assert!(
        out.contains(&format!(
            "MISMATCH seq {} action {}",
            forged.seq, h.actions.allowed
        )),
        "{out}"
    );
    assert!(
        out.contains("classification.risk: recorded high, replayed low"),
        "{out}"
    );
    assert!(
        out.contains(
            r#"route: recorded {"route":"deny","reason":"forged"}, replayed {"route":"allow"}"#
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "MISSING  seq {} action {} (db-export 1.0.0 sha256:{unknown}): no plugin bytes are stored",
            orphan.seq, h.actions.denied
        )),
        "{out}"
    );
    assert!(
        out.contains("replayed: 7, match: 5, mismatch: 1, missing plugin: 1"),
        "{out}"
    );
    // Per action: the honest record of the denied export still matches.
    let (code, out) = h.cli(&["audit", "replay", &h.actions.denied]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("replayed: 2, match: 1, mismatch: 0, missing plugin: 1"),
        "{out}"
    );
}

#[tokio::test]
async fn replay_refuses_plugin_bytes_that_are_not_their_hash() {
    let h = history::record().await;
    let pool = sqlx::PgPool::connect(&h.server.database_url).await.unwrap();
    let sha = evaluated_payload(&h, &h.actions.allowed).await["plugin"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    // As the owner, past the constraint: swap the stored bytes for another plugin's.
    sqlx::raw_sql("ALTER TABLE plugins DROP CONSTRAINT plugins_sha256_is_hash_of_bytes")
        .execute(&pool)
        .await
        .unwrap();
    let other = actiongate_tests::component("fixture_deny_all");
    sqlx::query("UPDATE plugins SET bytes = $1 WHERE sha256 = $2")
        .bind(&other)
        .bind(&sha)
        .execute(&pool)
        .await
        .unwrap();
    let (code, out) = h.cli(&["audit", "replay", &h.actions.allowed]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "the bytes stored under this sha256 hash to {}",
            actiongate::sandbox::sha256_hex(&other)
        )),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// Evidence bundles.

/// Exports `args` to a file; returns the bundle as JSON.
async fn export_bundle(h: &History, name: &str, args: &[&str]) -> serde_json::Value {
    let file = h.path(name);
    let mut argv = vec!["audit", "export", "--out", file.to_str().unwrap()];
    argv.extend_from_slice(args);
    let (code, out) = h.cli(&argv).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("wrote {}", file.display())),
        "{out}"
    );
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

/// Writes `bundle` and verifies it in-process with the log's key.
async fn verify_bundle(h: &History, bundle: &serde_json::Value) -> (u8, String) {
    let file = h.path(&format!("b-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, serde_json::to_vec(bundle).unwrap()).unwrap();
    h.cli(&[
        "audit",
        "verify-bundle",
        file.to_str().unwrap(),
        "--key",
        &h.vkey(),
    ])
    .await
}

/// (position, seq) of the bundle event of `kind`.
fn bundle_event(bundle: &serde_json::Value, kind: &str) -> (usize, u64) {
    bundle["events"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, e)| {
            e["leaf"]
                .as_str()
                .unwrap()
                .contains(&format!("\"type\":\"{kind}\""))
        })
        .map(|(i, e)| (i, e["seq"].as_u64().unwrap()))
        .unwrap_or_else(|| panic!("no {kind} event"))
}

#[tokio::test]
async fn bundles_verify_offline_and_replay_their_decisions() {
    let h = history::record().await;
    let b = export_bundle(
        &h,
        "one.json",
        &["--action", &h.actions.two_approvals, "--with-plugins"],
    )
    .await;
    assert_eq!(b["format"], "actiongate-evidence-bundle");
    assert_eq!(b["version"], 1);
    assert_eq!(b["log"]["verifier_key"], h.vkey());
    assert_eq!(b["actions"].as_array().unwrap().len(), 1);
    // submitted, evaluated, 2 reviewed, approved, granted, executed (+ notifications).
    assert!(b["events"].as_array().unwrap().len() >= 7, "{b}");
    let plugin = &b["plugins"][0];
    assert_eq!(plugin["name"], "db-export");
    assert!(plugin["bytes"].as_str().unwrap().len() > 1000);

    // The real binary, with no database at all.
    let bin = std::env::var("ACTIONGATE_BIN")
        .expect("ACTIONGATE_BIN names the built actiongate binary (tests/run sets it)");
    let output = std::process::Command::new(bin)
        .args([
            "--config",
            h.config.to_str().unwrap(),
            "audit",
            "verify-bundle",
        ])
        .arg(h.path("one.json"))
        .args(["--key", &h.vkey()])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.starts_with("OK\n"), "{out}");
    assert!(out.contains("replayed: 1, match: 1, mismatch: 0"), "{out}");

    // Every action of a window, without plugin bytes: proofs and stories only.
    let all = export_bundle(&h, "all.json", &["--since", "1h"]).await;
    assert_eq!(all["actions"].as_array().unwrap().len(), 5);
    let (code, out) = verify_bundle(&h, &all).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("events: "), "{out}");
    assert!(out.contains("actions: 5"), "{out}");
    assert!(out.contains("decisions not replayed"), "{out}");
}

#[tokio::test]
async fn tampered_bundles_are_refused_naming_what_and_where() {
    let h = history::record().await;
    let id = h.actions.two_approvals.clone();
    let b = export_bundle(&h, "b.json", &["--action", &id]).await;
    let (code, out) = verify_bundle(&h, &b).await;
    assert_eq!(code, 0, "{out}");

    // One byte changed in an event.
    let (i, seq) = bundle_event(&b, "reviewed");
    let mut t = b.clone();
    let leaf = t["events"][i]["leaf"].as_str().unwrap().replacen(
        "checked the ticket",
        "checked the tickeT",
        1,
    );
    t["events"][i]["leaf"] = json!(leaf);
    let (code, out) = verify_bundle(&h, &t).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "event seq {seq} (events[{i}], action {id}): inclusion proof does not verify against checkpoint"
        )),
        "{out}"
    );

    // A removed event.
    let (i, seq) = bundle_event(&b, "approved");
    let mut t = b.clone();
    t["events"].as_array_mut().unwrap().remove(i);
    let (code, out) = verify_bundle(&h, &t).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "action {id}: event seq {seq} is listed for this action but missing from the bundle"
        )),
        "{out}"
    );

    // A reordered event: execution moved before the approval.
    let (ia, seq_a) = bundle_event(&b, "approved");
    let (ie, seq_e) = bundle_event(&b, "executed");
    let mut t = b.clone();
    let events = t["events"].as_array_mut().unwrap();
    let executed = events.remove(ie);
    events.insert(ia, executed);
    let (code, out) = verify_bundle(&h, &t).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "event seq {seq_a} (events[{}], action {id}): out of order: it follows seq {seq_e}",
            ia + 1
        )),
        "{out}"
    );

    // A checkpoint signed by another key, over the same tree.
    let note = b["checkpoint"].as_str().unwrap();
    let lines: Vec<&str> = note.lines().collect();
    let size: u64 = lines[1].parse().unwrap();
    let root: [u8; 32] = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(lines[2])
            .unwrap()
            .try_into()
            .unwrap()
    };
    let other = actiongate::evidence::LogKey::load_or_generate(
        &h.path("other.key"),
        h.server.app.evidence.origin(),
    )
    .unwrap();
    let mut t = b.clone();
    t["checkpoint"] = json!(other.sign(size, root).unwrap());
    t["log"]["verifier_key"] = json!(other.verifier_key());
    let (code, out) = verify_bundle(&h, &t).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("checkpoint: signature does not verify against the given key"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "the bundle names the key {}",
            other.verifier_key()
        )),
        "{out}"
    );
    // ... and with the other key the signature holds: the key given is what counts.
    let file = h.path("other.json");
    std::fs::write(&file, serde_json::to_vec(&t).unwrap()).unwrap();
    let (code, out) = h
        .cli(&[
            "audit",
            "verify-bundle",
            file.to_str().unwrap(),
            "--key",
            other.verifier_key(),
        ])
        .await;
    assert_eq!(code, 0, "{out}");

    // Not a bundle of a version this build reads: could not check.
    let mut t = b.clone();
    t["version"] = json!(99);
    let (code, _) = verify_bundle(&h, &t).await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn a_story_that_breaks_the_approval_rules_is_caught() {
    let h = history::record().await;
    let log = &h.server.app.evidence;
    // A history the host would never write, but that is in the log: the
    // owner approves their own agent's critical export alone, it runs before
    // the approval, and the grant names another digest.
    let real = log
        .events_for_action(h.actions.two_approvals.parse().unwrap())
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7();
    let mut action: actiongate::action::Action =
        serde_json::from_value(real[0].payload["action"].clone()).unwrap();
    action.id = id.to_string();
    let digest = action.digest();
    let mut evaluated = real
        .iter()
        .find(|e| e.kind == EventKind::Evaluated)
        .unwrap()
        .payload
        .clone();
    evaluated["input"] = serde_json::to_value(&action).unwrap();
    let agent = Actor {
        kind: actiongate::evidence::ActorKind::Agent,
        id: "etl-agent".into(),
    };
    let owner = Actor {
        kind: actiongate::evidence::ActorKind::Human,
        id: "owner@example.com".into(),
    };
    let forged = [
        (
            EventKind::Submitted,
            agent.clone(),
            json!({"action": action, "digest": digest}),
        ),
        (EventKind::Evaluated, Actor::system("plugin"), evaluated),
        (
            EventKind::Executed,
            agent,
            json!({"jti": "j1", "digest": digest, "status": "succeeded"}),
        ),
        (
            EventKind::Reviewed,
            owner.clone(),
            json!({"approver": "owner@example.com", "decision": "approve", "digest": digest}),
        ),
        (
            EventKind::Approved,
            Actor::system("approvals"),
            json!({"approvers": ["owner@example.com"], "digest": digest}),
        ),
        (
            EventKind::Granted,
            Actor::system("grants"),
            json!({"jti": "j1", "action_digest": "0".repeat(64), "approvers": ["owner@example.com"]}),
        ),
    ];
    let mut seqs = Vec::new();
    for (kind, actor, payload) in forged {
        let e = log
            .append(NewEvent {
                kind,
                action_id: Some(id),
                actor,
                payload,
            })
            .await
            .unwrap();
        seqs.push(e.seq);
    }
    h.integrated().await;
    let b = export_bundle(&h, "forged.json", &["--action", &id.to_string()]).await;
    let (code, out) = verify_bundle(&h, &b).await;
    assert_eq!(code, 1, "{out}");
    let at = |i: usize, rest: &str| format!("action {id}: seq {} {rest}", seqs[i]);
    for want in [
        at(2, "field jti: executed without an earlier grant"),
        at(
            3,
            "field approver: owner@example.com is the requesting agent's owner: no self-approval",
        ),
        at(
            4,
            "field approvers: owner@example.com is the requesting agent's owner: no self-approval",
        ),
        at(
            4,
            "field approvers: quorum not met: 1 distinct approver(s), the route needs 2",
        ),
        at(5, "field action_digest: the grant is for 0000"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    // The proofs themselves hold: the log is intact, the story is not.
    assert!(!out.contains("inclusion proof"), "{out}");
}

// ---------------------------------------------------------------------------
// The change-approval CSV (SOC 2 CC8.1).

#[tokio::test]
async fn change_approval_csv_has_a_row_per_action() {
    let h = history::record().await;
    let file = h.path("changes.csv");
    let (code, out) = h
        .cli(&[
            "audit",
            "export",
            "--format",
            "csv",
            "--since",
            "1h",
            "--out",
            file.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 actions"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    // RFC 4180 quoting of a value with a comma and quotes.
    assert!(text.contains(r#""test://a,""b""""#), "{text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "action_id",
            "kind",
            "resource",
            "requested_by_agent",
            "requested_by_owner",
            "on_behalf_of",
            "requested_at",
            "risk",
            "route",
            "quorum",
            "approvers",
            "approved_at",
            "denied_by",
            "final_state",
            "executed_at",
            "outcome",
            "plugin_sha256",
            "plugin_name",
            "plugin_version",
            "log_index",
            "log_seqs",
        ]
    );
    let rows: Vec<std::collections::HashMap<String, String>> =
        reader.deserialize().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    let row = |id: &str| rows.iter().find(|r| r["action_id"] == id).unwrap().clone();
    let db_export_sha =
        actiongate::sandbox::sha256_hex(actiongate::examples::example("db-export").unwrap().wasm);

    let r = row(&h.actions.two_approvals);
    let events = h
        .server
        .app
        .evidence
        .events_for_action(h.actions.two_approvals.parse().unwrap())
        .await
        .unwrap();
    let at = |kind: EventKind| {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| actiongate::evidence::format_time(&e.occurred_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(r["kind"], "db.export");
    assert_eq!(r["resource"], "postgres://prod/warehouse");
    assert_eq!(r["requested_by_agent"], "etl-agent");
    assert_eq!(r["requested_by_owner"], "owner@example.com");
    assert_eq!(r["risk"], "critical");
    assert_eq!(r["route"], "require-approval");
    assert_eq!(r["quorum"], "2");
    assert_eq!(r["approvers"], "dana@example.com; erin@example.com");
    assert_eq!(r["approved_at"], at(EventKind::Reviewed).join("; "));
    assert_eq!(r["final_state"], "executed");
    assert_eq!(r["executed_at"], at(EventKind::Executed)[0]);
    assert_eq!(r["outcome"], "succeeded: exported");
    assert_eq!(r["plugin_sha256"], db_export_sha);
    assert_eq!(r["plugin_name"], "db-export");
    assert_eq!(r["plugin_version"], "1.0.0");
    assert_eq!(r["log_index"], events[0].seq.to_string());
    assert_eq!(
        r["log_seqs"],
        events
            .iter()
            .map(|e| e.seq.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );

    let cells = |id: &str, columns: &[&str]| -> Vec<String> {
        let r = row(id);
        columns.iter().map(|c| r[*c].clone()).collect()
    };
    assert_eq!(
        cells(&h.actions.one_approval, &["risk", "quorum", "approvers"]),
        ["medium", "1", "dana@example.com"]
    );
    assert_eq!(
        cells(&h.actions.allowed, &["route", "final_state", "approvers"]),
        ["allow", "executed", ""]
    );
    assert_eq!(
        cells(&h.actions.denied, &["route", "final_state", "executed_at"]),
        ["deny", "denied", ""]
    );
    assert_eq!(
        cells(
            &h.actions.failed_closed,
            &["resource", "plugin_name", "risk", "final_state"]
        ),
        [r#"test://a,"b""#, "panic", "critical", "denied"]
    );

    // One action to standard output.
    let (code, out) = h
        .cli(&[
            "audit",
            "export",
            "--format",
            "csv",
            "--action",
            &h.actions.denied,
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().nth(1).unwrap().starts_with(&h.actions.denied),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// Policy changes against history: backtest a candidate, diff a shadow.

#[tokio::test]
async fn backtest_counts_every_transition_of_a_known_history() {
    let h = history::record().await;
    // Three more small, clean exports: the example policy allows them.
    let agent = history::Caller::agent(&h.server, "bt-agent", "bt-owner@example.com").await;
    let mut small = Vec::new();
    for rows in [10, 20, 30] {
        let (id, a) = agent
            .submit(history::export(rows, "orders", "s3://corp-backups/x"))
            .await;
        assert_eq!(a["state"], "allowed", "{a}");
        small.push(id);
    }
    let candidate = h.path("deny_all.wasm");
    std::fs::write(&candidate, actiongate_tests::component("fixture_deny_all")).unwrap();
    let candidate = candidate.to_str().unwrap();

    let (code, out) = h
        .cli(&["plugin", "backtest", candidate, "--since", "1h", "--json"])
        .await;
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["candidate"]["name"], "deny-all");
    let counts = |field: &str| -> Vec<(String, String, u64)> {
        report[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["from"].as_str().unwrap().to_owned(),
                    t["to"].as_str().unwrap().to_owned(),
                    t["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let t = |a: &str, b: &str, n: u64| (a.to_owned(), b.to_owned(), n);
    // 4 allowed (low), 1 denied by policy and 1 failed closed (critical),
    // 1 medium and 1 critical held for approval: deny-all denies them all.
    assert_eq!(
        counts("route"),
        [
            t("allow", "deny", 4),
            t("deny", "deny", 2),
            t("require-approval", "deny", 2)
        ]
    );
    assert_eq!(
        counts("risk"),
        [
            t("critical", "critical", 3),
            t("low", "critical", 4),
            t("medium", "critical", 1)
        ]
    );
    assert_eq!(report["decisions"], 8);
    assert_eq!(report["changed"], 6);
    assert_eq!(report["candidate_failures"], 0);
    let allow_to_deny = &report["route"][0]["examples"];
    assert_eq!(allow_to_deny.as_array().unwrap().len(), 3);
    assert_eq!(allow_to_deny[0], h.actions.allowed.as_str());
    assert_eq!(allow_to_deny[1], small[0].as_str());

    let (code, out) = h
        .cli(&["plugin", "backtest", candidate, "--since", "1h"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("on 8 recorded decisions"), "{out}");
    assert!(
        out.contains("changed: 6, unchanged: 2, candidate failed: 0"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\n * allow -> deny: 4 (e.g. {}, {}, {})\n",
            h.actions.allowed, small[0], small[1]
        )),
        "{out}"
    );
    assert!(out.contains("\n   deny -> deny: 2 (e.g. "), "{out}");
    // The window bounds what is re-run.
    let (code, out) = h
        .cli(&[
            "plugin", "backtest", candidate, "--since", "2h", "--until", "1h", "--json",
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["decisions"],
        0
    );
}

#[tokio::test]
async fn diff_lists_the_actions_where_the_shadow_disagrees() {
    let h = history::record().await;
    let log = &h.server.app.evidence;
    let deny_all =
        actiongate::sandbox::sha256_hex(&actiongate_tests::component("fixture_deny_all"));
    // What the shadow plugin (deny-all) records beside each live decision.
    let shadow = |live: &serde_json::Value| {
        let kind = live["input"]["kind"].as_str().unwrap();
        json!({
            "plugin": {"sha256": deny_all, "name": "deny-all", "version": "0.0.1", "wit_version": "0.1.0"},
            "live_sha256": live["plugin"]["sha256"],
            "wit_version": "0.1.0",
            "host_version": "0.1.0",
            "input": live["input"],
            "output": {
                "classification": {"risk": "critical", "reasons": ["deny-all rates every action critical"], "tags": []},
                "route": {"route": "deny", "reason": format!("deny-all refuses {kind}")},
            },
            "failed_closed": false,
            "fuel_used": 1,
            "duration_us": 1,
        })
    };
    let a = &h.actions;
    for id in [
        &a.allowed,
        &a.denied,
        &a.one_approval,
        &a.two_approvals,
        &a.failed_closed,
    ] {
        let live = evaluated_payload(&h, id).await;
        log.append(NewEvent {
            kind: EventKind::ShadowEvaluated,
            action_id: Some(id.parse().unwrap()),
            actor: Actor {
                kind: actiongate::evidence::ActorKind::Plugin,
                id: deny_all.clone(),
            },
            payload: shadow(&live),
        })
        .await
        .unwrap();
    }
    // A shadow on an input the live plugin never saw.
    let mut other = shadow(&evaluated_payload(&h, &a.allowed).await);
    other["input"]["params"]["rows"] = json!(1);
    let unpaired = log
        .append(NewEvent {
            kind: EventKind::ShadowEvaluated,
            action_id: Some(a.allowed.parse().unwrap()),
            actor: Actor::system("test"),
            payload: other,
        })
        .await
        .unwrap();

    let (code, out) = h.cli(&["plugin", "diff", "--since", "1h"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("compared: 5, disagree: 3, unpaired: 1\n"),
        "{out}"
    );
    let line = |id: &str| out.lines().find(|l| l.starts_with(id)).map(str::to_owned);
    let allowed = line(&a.allowed).unwrap();
    assert!(
        allowed.starts_with(&format!("{} db.export: live low / allow (seq ", a.allowed)),
        "{out}"
    );
    assert!(
        allowed.contains("db-export 1.0.0), shadow critical / deny (seq "),
        "{out}"
    );
    assert!(
        line(&a.one_approval)
            .unwrap()
            .contains("live medium / require-approval"),
        "{out}"
    );
    assert!(
        line(&a.two_approvals)
            .unwrap()
            .contains("live critical / require-approval"),
        "{out}"
    );
    // Where both deny at the same risk, there is nothing to list.
    assert_eq!(line(&a.denied), None, "{out}");
    assert_eq!(line(&a.failed_closed), None, "{out}");
    assert!(
        out.contains(&format!(
            "unpaired: shadow seq {} (action {})",
            unpaired.seq, a.allowed
        )),
        "{out}"
    );
    let (code, out) = h.cli(&["plugin", "diff", "--since", "1h", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["disagreements"].as_array().unwrap().len(), 3);
}
