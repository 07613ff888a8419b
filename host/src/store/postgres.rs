//! Postgres queries for the evidence log. Inserts and selects only; the
//! append serialization point is a transaction-scoped advisory lock.

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{
    hash32, to_i64, to_u64, ActionMove, ActionRow, Appended, CheckpointRow, EventRow, NewAction,
    NewRow, StoreError,
};

pub static PG_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Serializes appends across all replicas: held from seq assignment to COMMIT.
/// Also hard-coded in `evidence_append` (migrations/postgres/0001_evidence.sql).
pub const APPEND_LOCK: i64 = 0x6167_5f65_7669_6401; // "ag_evid" 1
/// Held for a leader's whole tenure, on its own connection.
pub const LEADER_LOCK: i64 = 0x6167_5f65_7669_6402; // "ag_evid" 2

pub(super) type RawEvent = (
    i64,
    DateTime<Utc>,
    String,
    Option<String>,
    String,
    String,
    String,
    Vec<u8>,
);

pub(super) const EVENT_COLUMNS: &str =
    "seq, occurred_at, kind, action_id::text, actor_kind, actor_id, canonical, leaf_hash";

pub(super) fn event_row(r: RawEvent) -> Result<EventRow, StoreError> {
    let (seq, occurred_at, kind, action_id, actor_kind, actor_id, canonical, leaf_hash) = r;
    Ok(EventRow {
        seq: to_u64(seq, "seq")?,
        occurred_at,
        kind,
        action_id: action_id
            .map(|s| Uuid::parse_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("action_id: {e}")))?,
        actor_kind,
        actor_id,
        canonical,
        leaf_hash: hash32(leaf_hash, "leaf_hash")?,
    })
}

pub(super) async fn append_events(
    lanes: &super::lanes::Lanes,
    occurred_at: DateTime<Utc>,
    at_text: &str,
    rows: &[NewRow<'_>],
    actions: &[&NewAction],
    moves: &[&ActionMove],
) -> Result<Appended, StoreError> {
    let col = |f: for<'r> fn(&'r NewRow<'_>) -> &'r str| rows.iter().map(f).collect::<Vec<&str>>();
    let action: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.action_id.map(|u| u.to_string()))
        .collect();
    let a = |f: for<'r> fn(&'r ActionRow) -> &'r str| {
        actions.iter().map(|n| f(&n.row)).collect::<Vec<&str>>()
    };
    let a_opt = |f: for<'r> fn(&'r ActionRow) -> Option<&'r str>| {
        actions
            .iter()
            .map(|n| f(&n.row))
            .collect::<Vec<Option<&str>>>()
    };
    let a_time = |f: fn(&ActionRow) -> Option<DateTime<Utc>>| {
        actions.iter().map(|n| f(&n.row)).collect::<Vec<_>>()
    };
    // Autocommit: the procedure confirms the submitting keys, appends
    // through evidence_append (APPEND_LOCK, seqs from MAX(seq), the rows),
    // commits without waiting for the flush (releasing the lock), then
    // inserts the actions in a transaction whose synchronous commit returns
    // once the WAL is flushed through both
    // (migrations/postgres/0008_evidence_group_flush.sql, 0009, 0010),
    // and moves the actions in `moves` in that same commit (0014).
    type Returned = (
        Option<i64>,
        Option<Vec<Vec<u8>>>,
        Option<Vec<String>>,
        Option<Vec<i32>>,
        Option<Vec<String>>,
    );
    let m = |f: fn(&ActionMove) -> &str| moves.iter().map(|m| f(m)).collect::<Vec<&str>>();
    let query = sqlx::query_as::<_, Returned>(
        "CALL evidence_append_flushed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25,
             $26, $27, $28, $29, $30)",
    )
    .bind(occurred_at)
    .bind(at_text)
    .bind(col(|r| r.head))
    .bind(col(|r| r.middle))
    .bind(col(|r| r.tail))
    .bind(col(|r| r.kind))
    .bind(action)
    .bind(col(|r| r.actor_kind))
    .bind(col(|r| r.actor_id))
    .bind(
        rows.iter()
            .map(|r| r.owner.map(|i| i as i32 + 1))
            .collect::<Vec<_>>(),
    )
    .bind(a(|r| &r.id))
    .bind(a(|r| &r.agent_id))
    .bind(a_opt(|r| r.idempotency_key.as_deref()))
    .bind(a(|r| &r.request_hash))
    .bind(a(|r| &r.action))
    .bind(a(|r| &r.digest))
    .bind(a(|r| &r.state))
    .bind(a(|r| &r.verdict))
    .bind(a_opt(|r| r.grant_token.as_deref()))
    .bind(a_time(|r| r.expires_at))
    .bind(a_time(|r| Some(r.created_at)))
    .bind(a_time(|r| Some(r.updated_at)))
    .bind(
        actions
            .iter()
            .map(|n| n.grant.as_ref().map(|g| g.0.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        actions
            .iter()
            .map(|n| n.grant.as_ref().map(|g| g.1))
            .collect::<Vec<_>>(),
    )
    .bind(
        actions
            .iter()
            .map(|n| n.claimed.then_some(n.row.created_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        actions
            .iter()
            .map(|n| n.key_hash.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(m(|m| &m.id))
    .bind(m(|m| &m.from))
    .bind(m(|m| &m.to))
    .bind(moves.iter().map(|m| m.at).collect::<Vec<_>>());
    let (first, leaves, created, refused, moved) =
        lanes.run(async |c| query.fetch_one(c).await).await?;
    let leaves = leaves.unwrap_or_default();
    let first = match leaves.is_empty() {
        true => 0,
        false => to_u64(first.unwrap_or(-1), "first seq")?,
    };
    Ok(Appended {
        leaves: leaves
            .into_iter()
            .enumerate()
            .map(|(i, h)| Ok((first + i as u64, hash32(h, "leaf_hash")?)))
            .collect::<Result<_, StoreError>>()?,
        created: created.unwrap_or_default().into_iter().collect(),
        refused: (refused.unwrap_or_default().into_iter())
            .map(|i| i as usize - 1)
            .collect(),
        moved: moved.unwrap_or_default().into_iter().collect(),
    })
}

pub(super) async fn event_count<'e>(ex: impl PgExecutor<'e>) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM evidence_events")
        .fetch_one(ex)
        .await?;
    to_u64(n, "event count")
}

pub(super) async fn events_range<'e>(
    ex: impl PgExecutor<'e>,
    start: u64,
    end: u64,
) -> Result<Vec<EventRow>, StoreError> {
    let q = format!(
        "SELECT {EVENT_COLUMNS} FROM evidence_events WHERE seq >= $1 AND seq < $2 ORDER BY seq"
    );
    sqlx::query_as::<_, RawEvent>(&q)
        .bind(to_i64(start))
        .bind(to_i64(end))
        .fetch_all(ex)
        .await?
        .into_iter()
        .map(event_row)
        .collect()
}

pub(super) async fn events_page(
    pool: &PgPool,
    from: u64,
    limit: u64,
) -> Result<Vec<EventRow>, StoreError> {
    let q = format!(
        "SELECT {EVENT_COLUMNS} FROM evidence_events WHERE seq >= $1 ORDER BY seq LIMIT $2"
    );
    sqlx::query_as::<_, RawEvent>(&q)
        .bind(to_i64(from))
        .bind(to_i64(limit))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(event_row)
        .collect()
}

pub(super) async fn events_for_action(
    pool: &PgPool,
    id: Uuid,
) -> Result<Vec<EventRow>, StoreError> {
    let q = format!(
        "SELECT {EVENT_COLUMNS} FROM evidence_events WHERE action_id = $1::text::uuid ORDER BY seq"
    );
    sqlx::query_as::<_, RawEvent>(&q)
        .bind(id.to_string())
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(event_row)
        .collect()
}

type RawCheckpoint = (i64, Vec<u8>, String, DateTime<Utc>);

fn checkpoint_row(r: RawCheckpoint) -> Result<CheckpointRow, StoreError> {
    Ok(CheckpointRow {
        size: to_u64(r.0, "checkpoint size")?,
        root_hash: hash32(r.1, "root_hash")?,
        note: r.2,
        signed_at: r.3,
    })
}

pub(super) async fn latest_checkpoint(
    conn: &mut PgConnection,
) -> Result<Option<CheckpointRow>, StoreError> {
    sqlx::query_as::<_, RawCheckpoint>(
        "SELECT size, root_hash, note, signed_at FROM evidence_checkpoints ORDER BY size DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?
    .map(checkpoint_row)
    .transpose()
}

pub(super) async fn checkpoints(pool: &PgPool) -> Result<Vec<CheckpointRow>, StoreError> {
    sqlx::query_as::<_, RawCheckpoint>(
        "SELECT size, root_hash, note, signed_at FROM evidence_checkpoints ORDER BY size",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(checkpoint_row)
    .collect()
}

pub(super) async fn tree_hashes(
    conn: &mut PgConnection,
    indexes: &[u64],
) -> Result<Vec<[u8; 32]>, StoreError> {
    let idx: Vec<i64> = indexes.iter().map(|&i| to_i64(i)).collect();
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM evidence_tree_hashes WHERE idx = ANY($1)")
            .bind(&idx)
            .fetch_all(conn)
            .await?;
    super::order_hashes(indexes, rows)
}

pub(super) async fn tree_hash_range(
    pool: &PgPool,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM evidence_tree_hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(to_i64(start))
    .bind(to_i64(end))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(i, h)| Ok((to_u64(i, "tree hash idx")?, hash32(h, "tree hash")?)))
        .collect()
}

pub(super) async fn try_lock_leader(
    mut conn: PgConnection,
) -> Result<(PgConnection, bool), StoreError> {
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(&mut conn)
        .await?;
    Ok((conn, got))
}

pub(super) async fn integrate(
    conn: &mut PgConnection,
    first_idx: u64,
    hashes: &[[u8; 32]],
    cp: &CheckpointRow,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let idx: Vec<i64> = (0..hashes.len() as u64)
        .map(|i| to_i64(first_idx + i))
        .collect();
    let h: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    sqlx::query(
        "INSERT INTO evidence_tree_hashes (idx, hash) SELECT * FROM UNNEST($1::int8[], $2::bytea[])",
    )
    .bind(idx)
    .bind(h)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO evidence_checkpoints (size, root_hash, note, signed_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(to_i64(cp.size))
    .bind(cp.root_hash.to_vec())
    .bind(&cp.note)
    .bind(cp.signed_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
