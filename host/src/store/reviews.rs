//! Reviews, and the per-action lock under which a review, an expiry or a
//! reminder is decided. Reviews are only ever inserted.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, ActionChange, Store, StoreError};

/// One stored review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    pub action_id: String,
    pub approver: String,
    pub decision: String,
    pub reason: Option<String>,
    pub digest: String,
    pub channel: String,
    pub at: DateTime<Utc>,
}

/// SQLite is one process (the embedded default), so one in-process lock
/// serializes its decisions; Postgres uses a row lock, which also holds
/// across replicas.
static SQLITE_DECISIONS: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Held while one decision about one action is made. On Postgres a state
/// change made through it takes effect at `commit` (dropping it rolls the
/// change back); on SQLite it takes effect at once.
pub enum ActionGuard {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>, String),
    Sqlite(
        tokio::sync::MutexGuard<'static, ()>,
        sqlx::SqlitePool,
        String,
    ),
}

impl Store {
    /// Locks `id` against concurrent decisions, on every replica.
    pub async fn lock_action(&self, id: &str) -> Result<ActionGuard, StoreError> {
        match self {
            Store::Postgres(pool, ..) => {
                let mut tx = pool.begin().await?;
                // NO KEY UPDATE: blocks other deciders, but not the inserts
                // of reviews whose foreign key points at this row.
                sqlx::query("SELECT id FROM actions WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Ok(ActionGuard::Postgres(tx, id.to_string()))
            }
            Store::Sqlite(pool, _) => Ok(ActionGuard::Sqlite(
                SQLITE_DECISIONS.lock().await,
                pool.clone(),
                id.to_string(),
            )),
        }
    }

    pub async fn insert_review(&self, r: &ReviewRow) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO reviews (action_id, approver, decision, reason, digest, channel, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.action_id)
        .bind(&r.approver)
        .bind(&r.decision)
        .bind(&r.reason)
        .bind(&r.digest)
        .bind(&r.channel)
        .bind(r.at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Reviews of `action_id`, in the order they were recorded.
    pub async fn reviews(&self, action_id: &str) -> Result<Vec<ReviewRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "SELECT action_id, approver, decision, reason, digest, channel, at FROM reviews WHERE action_id = $1 ORDER BY id",
        )
        .bind(action_id)
        .fetch_all(pool)
        .await
        .map(|rows| rows.into_iter().map(|r| ReviewRow {
            action_id: r.get("action_id"),
            approver: r.get("approver"),
            decision: r.get("decision"),
            reason: r.get("reason"),
            digest: r.get("digest"),
            channel: r.get("channel"),
            at: r.get("at"),
        }).collect::<Vec<_>>()))?)
    }

    /// Pending actions past half their TTL that have not been reminded.
    pub async fn due_reminders(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query(
            "SELECT id, created_at, expires_at FROM actions WHERE state = 'pending' AND reminded_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map(|rows| rows.into_iter().map(|r| (r.get::<String, _>("id"), r.get::<DateTime<Utc>, _>("created_at"), r.get::<DateTime<Utc>, _>("expires_at"))).collect::<Vec<_>>()))?;
        Ok(rows
            .into_iter()
            .filter(|(_, created, expires)| *created + (*expires - *created) / 2 <= now)
            .collect())
    }

    /// Marks the reminder (and escalation) done; `Ok(false)` if another
    /// replica did it first.
    pub async fn mark_reminded(
        &self,
        id: &str,
        escalated: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let escalated_at = escalated.then_some(now);
        let changed = on_pool!(self, pool => sqlx::query(
            "UPDATE actions SET reminded_at = $1, escalated_at = COALESCE($2, escalated_at) WHERE id = $3 AND reminded_at IS NULL AND state = 'pending'",
        )
        .bind(now)
        .bind(escalated_at)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    pub async fn is_escalated(&self, id: &str) -> Result<bool, StoreError> {
        let at: Option<Option<DateTime<Utc>>> = on_pool!(self, pool => sqlx::query_scalar("SELECT escalated_at FROM actions WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(at.flatten().is_some())
    }
}

impl ActionGuard {
    /// Moves the locked action from `from` to `to`; `Ok(false)` if it was
    /// not in `from`. Takes effect at `commit`.
    pub async fn transition(
        &mut self,
        from: &str,
        to: &str,
        change: &ActionChange,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        macro_rules! run {
            ($executor:expr, $id:expr) => {
                sqlx::query(super::actions::TRANSITION_SQL)
                    .bind(to)
                    .bind(now)
                    .bind(&change.action)
                    .bind(&change.digest)
                    .bind(&change.verdict)
                    .bind(&change.grant_token)
                    .bind(change.expires_at)
                    .bind($id.as_str())
                    .bind(from)
                    .execute($executor)
                    .await?
                    .rows_affected()
            };
        }
        let changed = match self {
            ActionGuard::Postgres(tx, id) => run!(&mut **tx, id),
            ActionGuard::Sqlite(_, pool, id) => run!(&*pool, id),
        };
        Ok(changed == 1)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        if let ActionGuard::Postgres(tx, _) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}
