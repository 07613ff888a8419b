//! The embedded store's evidence append: one transaction on a connection
//! and a thread of its own, so an append is one hop there and one back.
//!
//! sqlx runs every SQLite statement as a round trip to its connection's
//! thread. The append is seven statements (BEGIN, the next seq, the key
//! check, the events, the action, its grant, COMMIT), and on a busy
//! two-core machine each round trip's wake-ups cost more than its
//! statement: the transaction took 0.8–0.9 ms at the MCP gateway, 0.45 of
//! it before the COMMIT; here the whole append takes about 0.48 ms.
//! Everything else stays on sqlx's pool; SQLite serializes the writers
//! (`BEGIN IMMEDIATE`, the same busy timeout).

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::actions::{COLUMNS, TRANSITION_SQL};
use super::{leaf_hash, to_i64, to_u64, ActionMove, Appended, NewAction, NewRow, StoreError};

/// How long a statement waits for another writer's lock (sqlx's pool
/// waits as long).
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends appends to the append thread; the thread ends with the last
/// sender, closing its connection.
#[derive(Debug)]
pub struct Appender {
    jobs: mpsc::Sender<Job>,
}

/// One append, owned: it crosses to the append thread.
struct Job {
    occurred_at: String,
    at_text: String,
    rows: Vec<Row>,
    actions: Vec<NewAction>,
    moves: Vec<ActionMove>,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// An owned `NewRow`.
struct Row {
    head: String,
    middle: String,
    tail: String,
    kind: &'static str,
    action_id: Option<Uuid>,
    actor_kind: &'static str,
    actor_id: String,
    owner: Option<usize>,
}

impl Row {
    fn of(r: &NewRow<'_>) -> Row {
        Row {
            head: r.head.into(),
            middle: r.middle.into(),
            tail: r.tail.into(),
            kind: r.kind,
            action_id: r.action_id,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id.into(),
            owner: r.owner,
        }
    }

    fn new_row(&self) -> NewRow<'_> {
        NewRow {
            head: &self.head,
            middle: &self.middle,
            tail: &self.tail,
            kind: self.kind,
            action_id: self.action_id,
            actor_kind: self.actor_kind,
            actor_id: &self.actor_id,
            owner: self.owner,
        }
    }
}

impl Appender {
    /// Opens the database file (created and migrated by the pool) and
    /// starts the append thread.
    pub fn open(path: &Path) -> Result<Appender, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // As the pool's connections: a commit survives power loss, which
        // `append` promises; foreign keys hold. (WAL is the file's own.)
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let (jobs, received) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-append".into())
            .spawn(move || {
                let mut conn = conn;
                for job in received {
                    let appended = append(&mut conn, &job);
                    let _ = job.reply.send(appended);
                }
            })
            .map_err(|e| StoreError::Query(e.into()))?;
        Ok(Appender { jobs })
    }

    /// `Store::append_events` on the embedded store.
    pub async fn append(
        &self,
        occurred_at: DateTime<Utc>,
        at_text: &str,
        rows: &[NewRow<'_>],
        actions: &[&NewAction],
        moves: &[&ActionMove],
    ) -> Result<Appended, StoreError> {
        let (reply, appended) = oneshot::channel();
        let job = Job {
            occurred_at: super::sqlite::ts(&occurred_at),
            at_text: at_text.into(),
            rows: rows.iter().map(Row::of).collect(),
            actions: actions.iter().map(|a| (*a).clone()).collect(),
            moves: moves.iter().map(|m| (*m).clone()).collect(),
            reply,
        };
        self.jobs.send(job).map_err(|_| StoreError::AppenderGone)?;
        appended.await.map_err(|_| StoreError::AppenderGone)?
    }
}

/// A time as sqlx binds a `DateTime<Utc>` on SQLite, so that rows written
/// here compare and decode as the pool's do.
fn sqlx_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The append, in one `BEGIN IMMEDIATE` transaction: the write lock comes
/// before the read of the next seq, so no other writer slips in between.
fn append(conn: &mut Connection, job: &Job) -> Result<Appended, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let next: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM evidence_events")?
        .query_row([], |r| r.get(0))?;
    let first = to_u64(next, "next seq")?;
    // The Postgres procedure asks the same (migration 0009).
    let mut refused = HashSet::new();
    let mut live = tx.prepare_cached(
        "SELECT 1 FROM api_keys ak JOIN agents ag ON ag.id = ak.subject
         WHERE ak.key_hash = $1 AND ak.role = 'agent'
           AND ak.revoked_at IS NULL AND ag.revoked_at IS NULL",
    )?;
    for (i, new) in job.actions.iter().enumerate() {
        if let Some(key_hash) = &new.key_hash {
            if !live.exists([key_hash])? {
                refused.insert(i);
            }
        }
    }
    drop(live);
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO evidence_events ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        super::sqlite::EVENT_COLUMNS
    ))?;
    let mut leaves = Vec::with_capacity(job.rows.len());
    for row in job.rows.iter().map(Row::new_row) {
        if !row.is_written(&refused) {
            continue;
        }
        let seq = first + leaves.len() as u64;
        let canonical = row.canonical(&job.at_text, seq);
        let leaf = leaf_hash(&canonical);
        insert.execute(params![
            to_i64(seq),
            job.occurred_at,
            row.kind,
            row.action_id.map(|u| u.to_string()),
            row.actor_kind,
            row.actor_id,
            canonical,
            &leaf[..],
        ])?;
        leaves.push((seq, leaf));
    }
    drop(insert);
    // In the same transaction: the actions commit with their events.
    let mut created = HashSet::new();
    let mut insert_action = tx.prepare_cached(&format!(
        "INSERT INTO actions ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (agent_id, idempotency_key) DO NOTHING"
    ))?;
    let mut insert_grant = tx.prepare_cached(
        "INSERT INTO grants (jti, action_id, expires_at, consumed_at) VALUES ($1, $2, $3, $4)",
    )?;
    for (i, new) in job.actions.iter().enumerate() {
        if refused.contains(&i) {
            continue;
        }
        let row = &new.row;
        let inserted = insert_action.execute(params![
            row.id,
            row.agent_id,
            row.idempotency_key,
            row.request_hash,
            row.action,
            row.digest,
            row.state,
            row.verdict,
            row.grant_token,
            row.expires_at.as_ref().map(sqlx_time),
            sqlx_time(&row.created_at),
            sqlx_time(&row.updated_at),
        ])? == 1;
        if !inserted {
            continue;
        }
        created.insert(row.id.clone());
        if let Some((jti, expires_at)) = &new.grant {
            let consumed_at = new.claimed.then(|| sqlx_time(&row.created_at));
            insert_grant.execute(params![jti, row.id, sqlx_time(expires_at), consumed_at])?;
        }
    }
    drop((insert_action, insert_grant));
    let mut moved = HashSet::new();
    let mut transition = tx.prepare_cached(TRANSITION_SQL)?;
    for m in &job.moves {
        let none: Option<String> = None;
        let changed = transition.execute(params![
            m.to,
            sqlx_time(&m.at),
            none,
            none,
            none,
            none,
            none,
            m.id,
            m.from,
        ])?;
        if changed == 1 {
            moved.insert(m.id.clone());
        }
    }
    drop(transition);
    tx.commit()?;
    Ok(Appended {
        leaves,
        created,
        refused,
        moved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ActionRow, Store};

    /// Its rows are the pool's own: times bound as sqlx binds them (so SQL
    /// comparisons with the pool's binds hold, as the sweepers' do), and
    /// they decode back unchanged.
    #[tokio::test]
    async fn what_it_writes_compares_and_decodes_as_the_pools_own() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        let attrs = std::collections::BTreeMap::new();
        assert!(store.create_agent("etl", "o@x", &attrs).await.unwrap());
        let Store::Sqlite(pool, appender) = &store else {
            unreachable!("a sqlite url")
        };
        let created: DateTime<Utc> = "2026-12-07T20:11:54.123456789Z".parse().unwrap();
        let expires = created + chrono::Duration::minutes(5);
        let id = Uuid::now_v7();
        let new = NewAction {
            row: ActionRow {
                id: id.to_string(),
                agent_id: "etl".into(),
                idempotency_key: None,
                request_hash: "h".into(),
                action: "{}".into(),
                digest: "d".into(),
                state: "pending".into(),
                verdict: "{}".into(),
                grant_token: Some("t".into()),
                expires_at: Some(expires),
                created_at: created,
                updated_at: created,
            },
            grant: Some(("jti".into(), expires)),
            key_hash: None,
            claimed: true,
        };
        let event = NewRow {
            head: "{\"at\":\"",
            middle: "\",\"seq\":",
            tail: "}",
            kind: "action.submitted",
            action_id: Some(id),
            actor_kind: "agent",
            actor_id: "etl",
            owner: Some(0),
        };
        let appended = appender
            .append(created, "t", &[event], &[&new], &[])
            .await
            .unwrap();
        assert!(appended.created.contains(&id.to_string()));
        assert_eq!(appended.leaves[0].0, 0);
        let matching: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM actions a JOIN grants g ON g.action_id = a.id
             WHERE a.created_at = $1 AND a.updated_at = $1 AND a.expires_at = $2
               AND g.expires_at = $2 AND g.consumed_at = $1",
        )
        .bind(created)
        .bind(expires)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(matching, 1);
        let row = store.action(&id.to_string()).await.unwrap().unwrap();
        assert_eq!((row.created_at, row.expires_at), (created, Some(expires)));
        let stored = store.events_for_action(id).await.unwrap();
        assert_eq!(stored[0].canonical, "{\"at\":\"t\",\"seq\":0}");
        assert_eq!(stored[0].leaf_hash, appended.leaves[0].1);
    }

    /// Two appenders on one file (two processes on one embedded store, or
    /// the CLI beside the service) take turns: every seq is used once,
    /// none is skipped, none fails for the other's lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_appenders_on_one_file_take_turns_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.db");
        let store = Store::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let appenders = [
            Appender::open(&file).unwrap(),
            Appender::open(&file).unwrap(),
        ];
        let row = NewRow {
            head: "{\"at\":\"",
            middle: "\",\"seq\":",
            tail: "}",
            kind: "note",
            action_id: None,
            actor_kind: "system",
            actor_id: "test",
            owner: None,
        };
        let rows = [row, row];
        let appends = appenders.iter().flat_map(|a| {
            let rows = &rows;
            (0..40).map(move |_| a.append(Utc::now(), "t", rows, &[], &[]))
        });
        let mut seqs: Vec<u64> = futures_util::future::join_all(appends)
            .await
            .into_iter()
            .flat_map(|a| a.unwrap().leaves.into_iter().map(|(seq, _)| seq))
            .collect();
        seqs.sort();
        assert_eq!(seqs, (0..160).collect::<Vec<u64>>());
        assert_eq!(store.event_count().await.unwrap(), 160);
    }

    /// A busy or failing database, or a gone append thread, is the
    /// store being unavailable (callers answer 503 and fail closed); a bad
    /// statement is not.
    #[test]
    fn busy_io_and_a_gone_thread_are_unavailable_a_constraint_is_not() {
        use rusqlite::ffi;
        let failure =
            |code| StoreError::from(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_FULL,
        ] {
            assert!(failure(code).is_unavailable(), "{code}");
        }
        assert!(!failure(ffi::SQLITE_CONSTRAINT).is_unavailable());
        assert!(StoreError::AppenderGone.is_unavailable());
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_the_reason() {
        let refused = Store::connect("sqlite::memory:").await.unwrap_err();
        assert!(
            refused.to_string().contains("cannot hold the evidence log"),
            "{refused}"
        );
    }
}
