//! `actiongate audit verify` against a real database: a clean log passes;
//! rows altered or removed behind the triggers' back are named by seq.

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
    let store = Store::Postgres(pool.clone());
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
    let f = fixture(pool.clone(), 20).await;
    tamper(&pool, "UPDATE evidence_events SET canonical = replace(canonical, 'approve', 'deny') WHERE seq = 13").await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("FAIL: first altered or missing seq: 13\n"),
        "{out}"
    );
}

#[sqlx::test(migrations = false)]
async fn an_alteration_with_a_recomputed_leaf_hash_is_named(pool: sqlx::PgPool) {
    let f = fixture(pool.clone(), 20).await;
    // A careful forger fixes up the leaf hash too; the integrated tree still knows.
    tamper(
        &pool,
        "UPDATE evidence_events SET canonical = replace(canonical, 'approve', 'deny') WHERE seq = 5; \
         UPDATE evidence_events SET leaf_hash = sha256('\\x00'::bytea || convert_to(canonical, 'UTF8')) WHERE seq = 5",
    )
    .await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("FAIL: first altered or missing seq: 5\n"),
        "{out}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_deleted_row_is_named(pool: sqlx::PgPool) {
    let f = fixture(pool.clone(), 20).await;
    tamper(&pool, "DELETE FROM evidence_events WHERE seq = 7").await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("FAIL: first altered or missing seq: 7\n"),
        "{out}"
    );
    assert!(out.contains("seq 7: missing"), "{out}");
}

#[sqlx::test(migrations = false)]
async fn a_truncated_tail_is_named(pool: sqlx::PgPool) {
    let f = fixture(pool.clone(), 20).await;
    tamper(&pool, "DELETE FROM evidence_events WHERE seq >= 17").await;
    let (code, out) = audit_verify(&f).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("FAIL: first altered or missing seq: 17\n"),
        "{out}"
    );
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
    let Store::Sqlite(p) = &store else {
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
