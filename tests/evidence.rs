//! Evidence log over real stores: one conformance suite for Postgres and
//! SQLite, then Postgres-only surfaces (roles, HTTP proofs checked by an
//! independent verifier, outages, two replica processes).

use std::collections::BTreeSet;
use std::time::Duration;

use actiongate::audit::verify::verify;
use actiongate::evidence::merkle::{check_consistency, check_inclusion, leaf_hash};
use actiongate::evidence::{
    checkpoint, Actor, ActorKind, EventKind, EvidenceConfig, EvidenceError, EvidenceLog, NewEvent,
    Recorded,
};
use actiongate::store::{ActionMove, ActionRow, KeyRole, NewAction, Store, StoreOptions};
use serde_json::json;
use uuid::Uuid;

fn config(dir: &tempfile::TempDir) -> EvidenceConfig {
    EvidenceConfig {
        key_path: dir.path().join("log.key"),
        checkpoint_every_events: 10,
        checkpoint_every_seconds: 0.1,
        leader_retry_ms: 50,
        ..EvidenceConfig::default()
    }
}

fn event(action: Option<Uuid>, i: u64) -> NewEvent {
    NewEvent {
        kind: EventKind::Evaluated,
        action_id: action,
        actor: Actor {
            kind: ActorKind::Plugin,
            id: "sha256:abc".into(),
        },
        payload: json!({"i": i, "output": {"route": "allow"}, "fuel_used": 1234}),
    }
}

async fn open(store: Store) -> (EvidenceLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = EvidenceLog::open(store, config(&dir)).await.unwrap();
    (log, dir)
}

// ---- conformance suite: each runs against Postgres and SQLite ----

async fn appends_are_dense_committed_and_readable(store: Store) {
    let (log, _dir) = open(store).await;
    let action = Uuid::now_v7();
    let mut seqs = Vec::new();
    for i in 0..5 {
        let c = log.append(event(Some(action), i)).await.unwrap();
        assert_eq!(c.leaf_hash, leaf_hash(c.canonical()));
        assert!(c.canonical().contains(&format!("\"seq\":{}", c.seq)));
        seqs.push(c.seq);
    }
    let all = log
        .append_all((5..8).map(|i| event(Some(action), i)).collect())
        .await
        .unwrap();
    seqs.extend(all.iter().map(|c| c.seq));
    log.append(event(None, 99)).await.unwrap();
    assert_eq!(seqs, (0..8).collect::<Vec<_>>());

    let stored = log.events_for_action(action).await.unwrap();
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(stored[6].payload["i"], 6);
    assert_eq!(stored[0].kind, EventKind::Evaluated);
    assert_eq!(stored[0].actor.kind, ActorKind::Plugin);
    assert_eq!(stored[7].canonical, all[2].canonical());
    assert_eq!(log.committed_size().await.unwrap(), 9);
}

async fn concurrent_appends_are_gap_free_and_atomic(store: Store) {
    let (log, _dir) = open(store).await;
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..10 {
                if i % 5 == 0 {
                    let group = log.append_all((0..3).map(|j| event(None, t * 100 + j)).collect());
                    let seqs: Vec<u64> = group.await.unwrap().iter().map(|c| c.seq).collect();
                    assert_eq!(
                        seqs,
                        vec![seqs[0], seqs[0] + 1, seqs[0] + 2],
                        "append_all is consecutive"
                    );
                    out.extend(seqs);
                } else {
                    out.push(log.append(event(None, t * 100 + i)).await.unwrap().seq);
                }
            }
            out
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    let n = seqs.len() as u64;
    let set: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set.len() as u64, n, "no duplicate seq");
    assert_eq!(set, (0..n).collect(), "no gap");
    let rows = log.entries(0, n + 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
}

async fn checkpoints_are_signed_and_proofs_verify(store: Store) {
    let (log, _dir) = open(store.clone()).await;
    let mut leaves = Vec::new();
    for i in 0..37 {
        leaves.push(log.append(event(None, i)).await.unwrap().leaf_hash);
    }
    let cp = log
        .wait_integrated(36, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(cp.size, 37);
    let v = checkpoint::verify(&cp.note, &log.verifier_key()).unwrap();
    assert_eq!(
        (v.size, v.root, v.origin.as_str()),
        (37, cp.root_hash, "actiongate.local/log")
    );

    for size in [1u64, 2, 3, 10, 16, 17, 37] {
        for index in 0..size {
            let p = log.prove_inclusion(index, size).await.unwrap();
            assert_eq!(p.leaf_hash, leaves[index as usize]);
            assert!(check_inclusion(&p), "inclusion {index} in {size}");
        }
        for from in 0..=size {
            let p = log.prove_consistency(from, size).await.unwrap();
            assert!(
                from == 0 || check_consistency(&p),
                "consistency {from} -> {size}"
            );
        }
    }
    let p = log.prove_inclusion(3, 37).await.unwrap();
    assert_eq!(p.root_hash, cp.root_hash);
    assert!(matches!(
        log.prove_inclusion(37, 37).await,
        Err(EvidenceError::OutOfRange(_))
    ));
    assert!(matches!(
        log.prove_inclusion(0, 38).await,
        Err(EvidenceError::OutOfRange(_))
    ));
    assert!(matches!(
        log.prove_consistency(5, 4).await,
        Err(EvidenceError::OutOfRange(_))
    ));

    let report = verify(&store, &log.verifier_key()).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.integrated, 37);
    assert!(report.checkpoints >= 2, "{report}");
}

async fn evidence_tables_refuse_update_and_delete(store: Store) {
    let (log, _dir) = open(store.clone()).await;
    log.append(event(None, 1)).await.unwrap();
    log.wait_integrated(0, Duration::from_secs(20))
        .await
        .unwrap();
    let statements = [
        "UPDATE evidence_events SET kind = 'approved'",
        "DELETE FROM evidence_events",
        "UPDATE evidence_tree_hashes SET idx = idx + 100",
        "DELETE FROM evidence_tree_hashes",
        "UPDATE evidence_checkpoints SET note = ''",
        "DELETE FROM evidence_checkpoints",
    ];
    let pg_only = [
        "TRUNCATE evidence_events",
        "TRUNCATE evidence_tree_hashes",
        "TRUNCATE evidence_checkpoints",
    ];
    for sql in statements
        .iter()
        .chain(if matches!(store, Store::Postgres(..)) {
            &pg_only[..]
        } else {
            &[]
        })
    {
        let err = match &store {
            Store::Postgres(p, ..) => sqlx::query(sql).execute(p).await.err(),
            Store::Sqlite(p, _) => sqlx::query(sql).execute(p).await.err(),
        };
        let err = err.unwrap_or_else(|| panic!("{sql} was allowed"));
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(log.entries(0, 10).await.unwrap().len(), 1);
}

async fn a_bad_event_fails_alone(store: Store) {
    let (log, _dir) = open(store).await;
    let mut bad = event(None, 0);
    bad.payload = json!({"fuel": u64::MAX});
    let (b, g) = tokio::join!(log.append(bad), log.append(event(None, 1)));
    assert!(matches!(b, Err(EvidenceError::InvalidEvent(_))), "{b:?}");
    assert_eq!(g.unwrap().seq, 0);
}

/// An allowed action's row, as a decision inserts it (with a grant token).
fn allowed_row(id: Uuid, agent: &str, now: chrono::DateTime<chrono::Utc>) -> ActionRow {
    ActionRow {
        id: id.to_string(),
        agent_id: agent.into(),
        idempotency_key: None,
        request_hash: "h".into(),
        action: "{}".into(),
        digest: "d".into(),
        state: "allowed".into(),
        verdict: "{}".into(),
        grant_token: Some("t".into()),
        expires_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// The move of action `id` from `from` to `executed`, now.
fn moved(id: Uuid, from: &str) -> ActionMove {
    ActionMove {
        id: id.to_string(),
        from: from.into(),
        to: "executed".into(),
        at: chrono::Utc::now(),
    }
}

/// A decision's action row commits after its events; one submitted with a
/// key revoked in the meantime is refused together with its events, and the
/// seqs of the rest stay dense.
async fn decisions_commit_after_their_events_unless_their_key_is_revoked(store: Store) {
    let attrs = std::collections::BTreeMap::new();
    for (agent, key) in [("live", "live-key"), ("gone", "gone-key")] {
        assert!(store.create_agent(agent, "o@x", &attrs).await.unwrap());
        store.add_api_key(key, KeyRole::Agent, agent).await.unwrap();
    }
    assert!(store.revoke_agent("gone").await.unwrap());
    let (log, _dir) = open(store.clone()).await;
    let decision = |agent: &str, key: &str| {
        let id = Uuid::now_v7();
        let now = chrono::Utc::now();
        let row = allowed_row(id, agent, now);
        let grant = Some((format!("jti-{id}"), now));
        let events = (0..3).map(|i| event(Some(id), i)).collect::<Vec<_>>();
        let key_hash = Some(key.to_string());
        (
            id,
            events,
            NewAction {
                row,
                grant,
                key_hash,
                claimed: false,
            },
        )
    };
    let (live, live_events, live_action) = decision("live", "live-key");
    let (gone, gone_events, gone_action) = decision("gone", "gone-key");
    let (a, b, c) = tokio::join!(
        log.append_with_action(gone_events, gone_action),
        log.append_with_action(live_events, live_action),
        log.append(event(None, 9)),
    );
    let (refused, refused_as) = a.unwrap();
    assert_eq!(refused_as, Recorded::KeyRevoked);
    assert!(refused.is_empty());
    let (written, written_as) = b.unwrap();
    assert_eq!(written_as, Recorded::Created);
    let mut seqs: Vec<u64> = written.iter().map(|e| e.seq).collect();
    seqs.push(c.unwrap().seq);
    seqs.sort();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert_eq!(log.committed_size().await.unwrap(), 4);
    assert!(log.events_for_action(gone).await.unwrap().is_empty());
    assert_eq!(log.events_for_action(live).await.unwrap().len(), 3);
    assert!(store.action(&gone.to_string()).await.unwrap().is_none());
    let row = store.action(&live.to_string()).await.unwrap().unwrap();
    assert_eq!(row.grant_token.as_deref(), Some("t"));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[sqlx::test(migrations = false)]
                async fn $name(pool: sqlx::PgPool) {
                    let store = actiongate::store::Store::from_pool(pool);
                    store.migrate().await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}/actiongate.db", dir.path().display());
                    let store = actiongate::store::Store::connect(&url).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
    };
}

/// A run the host performs itself: its grant can be written consumed with
/// the decision (no claim of its own, nobody else's claim succeeds), and
/// its `executed` event moves the action in the same commit, only from the
/// state the move names.
async fn a_claimed_decision_and_its_run_commit_with_their_events(store: Store) {
    let attrs = std::collections::BTreeMap::new();
    assert!(store.create_agent("gw", "o@x", &attrs).await.unwrap());
    store
        .add_api_key("gw-key", KeyRole::Agent, "gw")
        .await
        .unwrap();
    let (log, _dir) = open(store.clone()).await;
    let new = |claimed: bool| {
        let id = Uuid::now_v7();
        let now = chrono::Utc::now();
        let row = allowed_row(id, "gw", now);
        let action = NewAction {
            row,
            grant: Some((format!("jti-{id}"), now + chrono::Duration::seconds(60))),
            key_hash: Some("gw-key".into()),
            claimed,
        };
        (id, action)
    };
    let (claimed, claimed_action) = new(true);
    let (open_, open_action) = new(false);
    let (a, b) = tokio::join!(
        log.append_with_action(vec![event(Some(claimed), 0)], claimed_action),
        log.append_with_action(vec![event(Some(open_), 1)], open_action),
    );
    assert_eq!(a.unwrap().1, Recorded::Created);
    assert_eq!(b.unwrap().1, Recorded::Created);
    let now = chrono::Utc::now();
    assert!(
        !store
            .consume_grant(&format!("jti-{claimed}"), now)
            .await
            .unwrap(),
        "a claimed decision's grant is consumed as it is written"
    );
    assert!(
        store
            .consume_grant(&format!("jti-{open_}"), now)
            .await
            .unwrap(),
        "any other grant stays open for one claim"
    );
    // Both are spent and neither has an outcome: the sweeper's question
    // finds them, oldest first, once they were spent long enough ago.
    let spent = |before: chrono::DateTime<chrono::Utc>| {
        let store = store.clone();
        async move {
            let found = store.unrecorded_spent_grants(before, 10).await.unwrap();
            found.into_iter().map(|s| s.jti).collect::<Vec<_>>()
        }
    };
    let second = chrono::Duration::seconds(1);
    assert_eq!(
        spent(now + second).await,
        [format!("jti-{claimed}"), format!("jti-{open_}")]
    );
    assert_eq!(spent(now - second).await, Vec::<String>::new());

    let (events, did) = log
        .append_with_move(vec![event(Some(claimed), 2)], moved(claimed, "allowed"))
        .await
        .unwrap();
    assert!(did);
    assert_eq!(events.len(), 1);
    let row = store.action(&claimed.to_string()).await.unwrap().unwrap();
    assert_eq!(row.state, "executed");
    // Its outcome is recorded: only the other one is still unrecorded.
    assert_eq!(spent(now + second).await, [format!("jti-{open_}")]);
    // Only from the state it names: a second move finds it moved; its
    // event is still evidence of the attempt.
    let (events, did) = log
        .append_with_move(vec![event(Some(claimed), 3)], moved(claimed, "allowed"))
        .await
        .unwrap();
    assert!(!did);
    assert_eq!(events[0].seq, 3);
    assert_eq!(log.events_for_action(claimed).await.unwrap().len(), 3);
    let row = store.action(&open_.to_string()).await.unwrap().unwrap();
    assert_eq!(row.state, "allowed", "moves touch only their own action");
}

/// The sweeper's question reads only the grants whose run's outcome is
/// awaited (spent, and their action still allowed or approved), never every
/// action still allowed: an agent that never spends its grants leaves its
/// actions allowed for ever, and the question must not grow with them.
async fn the_sweepers_question_reads_only_grants_awaiting_an_outcome(store: Store) {
    let attrs = std::collections::BTreeMap::new();
    assert!(store.create_agent("gw", "o@x", &attrs).await.unwrap());
    let (log, _dir) = open(store.clone()).await;
    let decide = |claimed: bool| {
        let log = &log;
        async move {
            let id = Uuid::now_v7();
            let now = chrono::Utc::now();
            let action = NewAction {
                row: allowed_row(id, "gw", now),
                grant: Some((format!("jti-{id}"), now + chrono::Duration::seconds(60))),
                key_hash: None,
                claimed,
            };
            let (_, recorded) = log
                .append_with_action(vec![event(Some(id), 0)], action)
                .await
                .unwrap();
            assert_eq!(recorded, Recorded::Created);
            id
        }
    };
    let ran = decide(true).await; // spent with its decision; its outcome follows
    let running = decide(false).await; // spent later, no outcome yet
    let _unspent = decide(false).await; // never spent: stays allowed
    let released = decide(false).await; // spent, then given back
    let now = chrono::Utc::now();
    for id in [running, released] {
        assert!(store
            .consume_grant(&format!("jti-{id}"), now)
            .await
            .unwrap());
    }
    store
        .release_grant(&format!("jti-{released}"))
        .await
        .unwrap();
    let (_, did) = log
        .append_with_move(vec![event(Some(ran), 1)], moved(ran, "allowed"))
        .await
        .unwrap();
    assert!(did);

    // What the sweeper's index holds: the one run whose outcome is awaited.
    // A grant is settled when its action leaves allowed and approved, by
    // whichever writer moves it.
    let awaited = "SELECT jti FROM grants WHERE consumed_at IS NOT NULL AND NOT settled";
    let awaited: Vec<String> = match &store {
        Store::Postgres(pool, ..) => sqlx::query_scalar(awaited).fetch_all(pool).await,
        Store::Sqlite(pool, _) => sqlx::query_scalar(awaited).fetch_all(pool).await,
    }
    .unwrap();
    assert_eq!(awaited, [format!("jti-{running}")]);
    let second = chrono::Duration::seconds(1);
    let found = store
        .unrecorded_spent_grants(now + second, 10)
        .await
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|s| s.action_id.clone())
            .collect::<Vec<_>>(),
        [running.to_string()]
    );

    // And the question uses that index (so its terms match the index's own).
    let sql = actiongate::store::UNRECORDED_SPENT_GRANTS_SQL;
    let plan = match &store {
        Store::Postgres(pool, ..) => {
            let mut c = pool.acquire().await.unwrap();
            // Small tables: make a scan of the whole table unattractive, so
            // the plan shows which index can answer.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *c)
                .await
                .unwrap();
            let rows: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
                .bind(now)
                .bind(10i64)
                .fetch_all(&mut *c)
                .await
                .unwrap();
            rows.join("\n")
        }
        Store::Sqlite(pool, _) => {
            use sqlx::Row;
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(now)
                .bind(10i64)
                .fetch_all(pool)
                .await
                .unwrap();
            let details: Vec<String> = rows.iter().map(|r| r.get("detail")).collect();
            details.join("\n")
        }
    };
    assert!(plan.contains("grants_awaiting_outcome"), "{plan}");
}

/// Records of what already happened (runs' outcomes) wait for each other
/// and share one commit, never riding in (and lengthening) a batch someone
/// waits on; with nothing else to wait for they go after `defer_ms`.
async fn after_the_fact_records_share_a_commit_of_their_own(store: Store) {
    let attrs = std::collections::BTreeMap::new();
    assert!(store.create_agent("gw", "o@x", &attrs).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let log = EvidenceLog::open(
        store.clone(),
        EvidenceConfig {
            defer_ms: 2_000,
            ..config(&dir)
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = Uuid::now_v7();
        let action = NewAction {
            row: allowed_row(id, "gw", chrono::Utc::now()),
            grant: None,
            key_hash: None,
            claimed: false,
        };
        let (_, recorded) = log
            .append_with_action(vec![event(Some(id), 0)], action)
            .await
            .unwrap();
        assert_eq!(recorded, Recorded::Created);
        ids.push(id);
    }
    let held: Vec<_> = ids
        .iter()
        .map(|&id| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append_after_the_fact(vec![event(Some(id), 1)], moved(id, "allowed"))
                    .await
            })
        })
        .collect();
    let state = |id: Uuid| {
        let store = store.clone();
        async move { store.action(&id.to_string()).await.unwrap().unwrap().state }
    };

    tokio::time::sleep(Duration::from_millis(100)).await;
    let waited_on = log.append(event(None, 2)).await.unwrap();
    assert_eq!(
        waited_on.seq, 2,
        "an append someone waits on goes alone, at once"
    );
    assert!(
        held.iter().all(|h| !h.is_finished()),
        "they wait for each other"
    );
    assert_eq!(
        state(ids[0]).await,
        "allowed",
        "nothing of them is visible yet"
    );
    let mut recorded = Vec::new();
    for h in held {
        let (events, moved) = h.await.unwrap().unwrap();
        assert!(moved);
        recorded.push(events[0].clone());
    }
    recorded.sort_by_key(|e| e.seq);
    assert_eq!((recorded[0].seq, recorded[1].seq), (3, 4));
    assert_eq!(
        recorded[0].occurred_at, recorded[1].occurred_at,
        "one batch, one commit"
    );
    assert_eq!(state(ids[1]).await, "executed");

    // Alone, one goes after `defer_ms`, and moves only from its state: a
    // second move finds it moved; its event is still evidence.
    let (events, moved) = log
        .append_after_the_fact(vec![event(Some(ids[0]), 3)], moved(ids[0], "allowed"))
        .await
        .unwrap();
    assert!(!moved);
    assert_eq!(events[0].seq, 5);
}

conformance!(
    appends_are_dense_committed_and_readable,
    concurrent_appends_are_gap_free_and_atomic,
    checkpoints_are_signed_and_proofs_verify,
    evidence_tables_refuse_update_and_delete,
    a_bad_event_fails_alone,
    decisions_commit_after_their_events_unless_their_key_is_revoked,
    a_claimed_decision_and_its_run_commit_with_their_events,
    after_the_fact_records_share_a_commit_of_their_own,
    the_sweepers_question_reads_only_grants_awaiting_an_outcome,
);

// ---- Postgres only ----

#[sqlx::test(migrations = false)]
async fn service_role_may_insert_and_select_only(pool: sqlx::PgPool) {
    let store = Store::from_pool(pool.clone());
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // idempotent, role already there
    let mut c = pool.acquire().await.unwrap();
    sqlx::query("GRANT actiongate_service TO CURRENT_USER")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("SET ROLE actiongate_service")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO evidence_events VALUES (0, now(), 'submitted', NULL, 'agent', 'a', '{}', \
         decode(repeat('00', 32), 'hex'))",
    )
    .execute(&mut *c)
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM evidence_events")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    assert_eq!(n, 1);
    for sql in [
        "UPDATE evidence_events SET kind = 'x'",
        "DELETE FROM evidence_events",
        "TRUNCATE evidence_events",
    ] {
        let err = sqlx::query(sql)
            .execute(&mut *c)
            .await
            .expect_err(sql)
            .to_string();
        assert!(
            err.contains("permission denied") || err.contains("append-only"),
            "{sql}: {err}"
        );
    }
    let err = sqlx::query("ALTER TABLE evidence_events DISABLE TRIGGER ALL")
        .execute(&mut *c)
        .await;
    assert!(err.is_err(), "the service role must not disable triggers");
    sqlx::query("RESET ROLE").execute(&mut *c).await.unwrap();
}

async fn serve(log: EvidenceLog) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, actiongate::api::log::router(log)).await });
    format!("http://{addr}")
}

/// Proofs served over HTTP verify with `tests/python/rfc9162_verify.py`, an
/// RFC 9162 verifier written from the RFC's pseudo-code (no shared code).
#[sqlx::test(migrations = false)]
async fn http_proofs_verify_with_an_independent_rfc9162_verifier(pool: sqlx::PgPool) {
    let store = Store::from_pool(pool);
    store.migrate().await.unwrap();
    let (log, _dir) = open(store).await;
    for i in 0..29 {
        log.append(event(Some(Uuid::now_v7()), i)).await.unwrap();
    }
    log.wait_integrated(28, Duration::from_secs(20))
        .await
        .unwrap();
    let base = serve(log.clone()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/rfc9162_verify.py");
    let vkey = log.verifier_key();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(&base)
            .arg(&vkey)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("OK size=29"), "{stdout}");

    // The same verifier rejects a checkpoint signed by another key.
    let other = tempfile::tempdir().unwrap();
    let other_key =
        checkpoint::LogKey::load_or_generate(&other.path().join("k"), log.origin()).unwrap();
    let base = serve(log.clone()).await;
    let vkey = other_key.verifier_key().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(&base)
            .arg(&vkey)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "a foreign key must not verify");
}

#[sqlx::test(migrations = false)]
async fn http_errors_are_problem_json(pool: sqlx::PgPool) {
    use tower::ServiceExt;
    let store = Store::from_pool(pool);
    store.migrate().await.unwrap();
    let (log, _dir) = open(store).await;
    log.append(event(None, 0)).await.unwrap();
    log.wait_integrated(0, Duration::from_secs(20))
        .await
        .unwrap();
    for (uri, status) in [
        ("/v1/log/proof/inclusion?index=5&size=1", 400),
        ("/v1/log/proof/inclusion?index=x", 400),
        ("/v1/log/proof/consistency?from=2&to=1", 400),
        ("/v1/log/entries?start=0&end=5000", 400),
    ] {
        let req = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = actiongate::api::log::router(log.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{uri}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{uri}"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], status, "{uri}");
        assert!(v["type"].is_string() && v["title"].is_string() && v["detail"].is_string());
    }
    let req = axum::http::Request::get("/v1/log/checkpoint")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = actiongate::api::log::router(log.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// An acknowledged append is durable: appended events survive a crash of
/// Postgres right after, with no action in the batch (the case where the
/// flushing transaction writes nothing and must still wait for the flush).
/// This Postgres writes asynchronous commits out only every 10 s, so an
/// append acknowledged before its WAL was written would be lost by the crash.
/// (It was: before migration 0010 the flushing transaction of a plain append
/// wrote no WAL, so its commit did not wait, and this test failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_postgres_crash() {
    let pg = actiongate_tests::pg::PrivatePostgres::start_with(&["wal_writer_delay=10s"]);
    let store = Store::connect(&pg.url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint during the test: its synchronous commit would flush the
    // appends before it.
    let quiet = EvidenceConfig {
        checkpoint_every_events: 1_000_000,
        checkpoint_every_seconds: 3600.0,
        ..config(&dir)
    };
    let log = EvidenceLog::open(store, quiet).await.unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        acknowledged.push(log.append(event(None, i)).await.unwrap());
    }
    acknowledged.extend(
        log.append_all((5..10).map(|i| event(None, i)).collect())
            .await
            .unwrap(),
    );

    tokio::task::block_in_place(|| {
        pg.crash();
        pg.start_server();
    });
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    for c in &acknowledged {
        let canonical: Option<String> =
            sqlx::query_scalar("SELECT canonical FROM evidence_events WHERE seq = $1")
                .bind(c.seq as i64)
                .fetch_optional(&db)
                .await
                .unwrap();
        assert_eq!(
            canonical.as_deref(),
            Some(c.canonical()),
            "seq {} after the crash",
            c.seq
        );
    }
}

/// With Postgres stopped, appends fail (the caller fails closed) and the host
/// keeps running; once it is back, appends resume with no gap or duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_closed_during_an_outage_and_resume_without_gaps() {
    let pg = actiongate_tests::pg::PrivatePostgres::start();
    let opts = StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&pg.url(), &opts).await.unwrap();
    let (log, _dir) = open(store.clone()).await;
    let mut ok = Vec::new();
    for i in 0..10 {
        ok.push(log.append(event(None, i)).await.unwrap().seq);
    }

    tokio::task::block_in_place(|| pg.stop());
    let started = std::time::Instant::now();
    let attempts: Vec<_> = (0..5)
        .map(|i| {
            let log = log.clone();
            async move { log.append(event(None, 100 + i)).await }
        })
        .collect();
    for r in futures_join(attempts).await {
        let e = r.expect_err("append must fail while Postgres is down");
        assert!(e.is_unavailable(), "{e}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "fails within the acquire timeout"
    );

    tokio::task::block_in_place(|| pg.start_server());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match log.append(event(None, 200)).await {
            Ok(c) => {
                ok.push(c.seq);
                break;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.is_unavailable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("appends did not resume: {e}"),
        }
    }
    for i in 0..10 {
        ok.push(log.append(event(None, 300 + i)).await.unwrap().seq);
    }
    assert_eq!(
        ok,
        (0..21).collect::<Vec<_>>(),
        "no gap, no duplicate, nothing half-written"
    );
    let rows = log.entries(0, 100).await.unwrap();
    assert_eq!(rows.iter().map(|e| e.seq).collect::<Vec<_>>(), ok);
    // The integrator recovered too.
    log.wait_integrated(20, Duration::from_secs(30))
        .await
        .unwrap();
    let report = verify(&store, &log.verifier_key()).await.unwrap();
    assert!(report.is_ok(), "{report}");
}

async fn futures_join<F>(fs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Two replica processes append to one Postgres at once: one order, no gap,
/// one tree; one integrator at a time; the other takes over when it dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replica_processes_share_one_log_and_fail_over() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let db = actiongate_tests::pg::TempDatabase::create("evidence_replicas").await;
    let store = Store::connect(&db.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.key");
    const PER: u64 = 1600; // 16 tasks x 100

    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut children = Vec::new();
    for r in 0..2 {
        // The replica is this test binary re-run into `replica_process` (a
        // separate bin target would be shared, by path, with other worktrees).
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "replica_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(
                REPLICA_ENV,
                format!("{}|{}|{PER}|16", db.url, key.display()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send((r, line));
            }
        });
        children.push(Reaper(child));
    }
    let wait_for = |pred: &dyn Fn(&(usize, String)) -> bool, seen: &mut Vec<(usize, String)>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(x) = seen.iter().find(|x| pred(x)) {
                return x.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let msg = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out; saw {seen:?}"));
            seen.push(msg);
        }
    };
    let mut seen = Vec::new();
    tokio::task::block_in_place(|| {
        wait_for(&|x| x.0 == 0 && x.1.contains("APPENDED"), &mut seen);
        wait_for(&|x| x.0 == 1 && x.1.contains("APPENDED"), &mut seen);
        wait_for(&|x| x.1.ends_with("LEADER"), &mut seen);
    });
    let leaders: Vec<usize> = seen
        .iter()
        .filter(|x| x.1.ends_with("LEADER"))
        .map(|x| x.0)
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one integrator: {seen:?}");
    let leader = leaders[0];

    let total = 2 * PER;
    let rows = store.events_range(0, total + 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    let writers: BTreeSet<&str> = rows.iter().map(|r| r.actor_id.as_str()).collect();
    assert_eq!(writers.len(), 2, "both replicas wrote");
    if let Store::Postgres(p, ..) = &store {
        let holders: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND ((classid::bigint << 32) | objid::bigint) = $1",
        )
        .bind(actiongate::store::PG_LEADER_LOCK)
        .fetch_one(p)
        .await
        .unwrap();
        assert_eq!(holders, 1, "one leader lock holder");
    }

    children[leader].0.kill().unwrap();
    children[leader].0.wait().unwrap();
    let survivor = 1 - leader;
    tokio::task::block_in_place(|| {
        wait_for(&|x| x.0 == survivor && x.1.ends_with("LEADER"), &mut seen);
    });

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let size = store
            .latest_checkpoint()
            .await
            .unwrap()
            .map_or(0, |c| c.size);
        if size == total {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "survivor did not integrate ({size})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let vkey = checkpoint::LogKey::load(&key, "actiongate.local/log")
        .unwrap()
        .verifier_key()
        .to_owned();
    let report = verify(&store, &vkey).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.integrated, total);
    drop(children);
}

/// Kills a child process when the test ends, passed or not.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const REPLICA_ENV: &str = "ACTIONGATE_TEST_EVIDENCE_REPLICA";

/// One replica for `two_replica_processes_share_one_log_and_fail_over`; does
/// nothing unless that test runs it as a child process. It appends, reports
/// on stdout when it becomes the integrator, then runs until killed.
#[test]
fn replica_process() {
    let Ok(spec) = std::env::var(REPLICA_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, key, count, tasks] = parts.as_slice() else {
        panic!("bad {REPLICA_ENV}")
    };
    let (count, tasks): (u64, u64) = (count.parse().unwrap(), tasks.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let opts = StoreOptions {
            migrate: false,
            ..StoreOptions::default()
        };
        let store = Store::connect_with(url, &opts).await.expect("connect");
        let cfg = EvidenceConfig {
            key_path: key.into(),
            checkpoint_every_events: 100,
            checkpoint_every_seconds: 0.2,
            leader_retry_ms: 100,
            ..EvidenceConfig::default()
        };
        let log = EvidenceLog::open(store, cfg).await.expect("open log");
        let watcher = log.clone();
        tokio::spawn(async move {
            while !watcher.is_integrator() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            say("LEADER");
        });
        let mut handles = Vec::new();
        for t in 0..tasks {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..count / tasks {
                    let e = NewEvent {
                        kind: EventKind::Submitted,
                        action_id: Some(Uuid::now_v7()),
                        actor: Actor::system(format!("replica-{}", std::process::id())),
                        payload: json!({"task": t, "i": i}),
                    };
                    log.append(e).await.expect("append");
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        say(&format!("APPENDED {count}"));
        std::future::pending::<()>().await;
    });
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
