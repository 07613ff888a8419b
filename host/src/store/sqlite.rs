//! SQLite queries for the evidence log (the embedded store): reads, and the
//! integrator's tree hashes and checkpoints. The append is `appender.rs`.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::{hash32, to_i64, to_u64, CheckpointRow, EventRow, StoreError};

pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite allows 32766 bound parameters per statement; 8 per row.
const INSERT_CHUNK: usize = 1000;

pub(super) type RawEvent = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Vec<u8>,
);

pub(super) const EVENT_COLUMNS: &str =
    "seq, occurred_at, kind, action_id, actor_kind, actor_id, canonical, leaf_hash";

pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

pub(super) fn event_row(r: RawEvent) -> Result<EventRow, StoreError> {
    let (seq, occurred_at, kind, action_id, actor_kind, actor_id, canonical, leaf_hash) = r;
    Ok(EventRow {
        seq: to_u64(seq, "seq")?,
        occurred_at: parse_ts(&occurred_at)?,
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

pub(super) async fn event_count(pool: &SqlitePool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM evidence_events")
        .fetch_one(pool)
        .await?;
    to_u64(n, "event count")
}

pub(super) async fn events_range(
    pool: &SqlitePool,
    start: u64,
    end: u64,
) -> Result<Vec<EventRow>, StoreError> {
    let q = format!(
        "SELECT {EVENT_COLUMNS} FROM evidence_events WHERE seq >= ? AND seq < ? ORDER BY seq"
    );
    sqlx::query_as::<_, RawEvent>(&q)
        .bind(to_i64(start))
        .bind(to_i64(end))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(event_row)
        .collect()
}

pub(super) async fn events_page(
    pool: &SqlitePool,
    from: u64,
    limit: u64,
) -> Result<Vec<EventRow>, StoreError> {
    let q =
        format!("SELECT {EVENT_COLUMNS} FROM evidence_events WHERE seq >= ? ORDER BY seq LIMIT ?");
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
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Vec<EventRow>, StoreError> {
    let q = format!("SELECT {EVENT_COLUMNS} FROM evidence_events WHERE action_id = ? ORDER BY seq");
    sqlx::query_as::<_, RawEvent>(&q)
        .bind(id.to_string())
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(event_row)
        .collect()
}

type RawCheckpoint = (i64, Vec<u8>, String, String);

fn checkpoint_row(r: RawCheckpoint) -> Result<CheckpointRow, StoreError> {
    Ok(CheckpointRow {
        size: to_u64(r.0, "checkpoint size")?,
        root_hash: hash32(r.1, "root_hash")?,
        note: r.2,
        signed_at: parse_ts(&r.3)?,
    })
}

pub(super) async fn latest_checkpoint(
    pool: &SqlitePool,
) -> Result<Option<CheckpointRow>, StoreError> {
    sqlx::query_as::<_, RawCheckpoint>(
        "SELECT size, root_hash, note, signed_at FROM evidence_checkpoints ORDER BY size DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .map(checkpoint_row)
    .transpose()
}

pub(super) async fn checkpoints(pool: &SqlitePool) -> Result<Vec<CheckpointRow>, StoreError> {
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
    pool: &SqlitePool,
    indexes: &[u64],
) -> Result<Vec<[u8; 32]>, StoreError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT idx, hash FROM evidence_tree_hashes WHERE idx IN (");
    let mut list = q.separated(", ");
    for &i in indexes {
        list.push_bind(to_i64(i));
    }
    q.push(")");
    let rows: Vec<(i64, Vec<u8>)> = q.build_query_as().fetch_all(pool).await?;
    super::order_hashes(indexes, rows)
}

pub(super) async fn tree_hash_range(
    pool: &SqlitePool,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT idx, hash FROM evidence_tree_hashes WHERE idx >= ? AND idx < ? ORDER BY idx",
    )
    .bind(to_i64(start))
    .bind(to_i64(end))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(i, h)| Ok((to_u64(i, "tree hash idx")?, hash32(h, "tree hash")?)))
        .collect()
}

pub(super) async fn integrate(
    pool: &SqlitePool,
    first_idx: u64,
    hashes: &[[u8; 32]],
    cp: &CheckpointRow,
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let numbered: Vec<(i64, &[u8; 32])> = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| (to_i64(first_idx + i as u64), h))
        .collect();
    for chunk in numbered.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO evidence_tree_hashes (idx, hash) ");
        q.push_values(chunk, |mut b, (i, h)| {
            b.push_bind(*i).push_bind(h.to_vec());
        });
        q.build().execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO evidence_checkpoints (size, root_hash, note, signed_at) VALUES (?, ?, ?, ?)",
    )
    .bind(to_i64(cp.size))
    .bind(cp.root_hash.to_vec())
    .bind(&cp.note)
    .bind(ts(&cp.signed_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
