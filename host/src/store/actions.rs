//! Actions and their grants: the one mutable record per action. State
//! changes are conditional updates (`WHERE state = 'pending'`), so two
//! replicas racing on one action change it once.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, Store, StoreError};

/// One action as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub id: String,
    pub agent_id: String,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    /// JSON of `crate::action::Action`.
    pub action: String,
    pub digest: String,
    pub state: String,
    /// JSON of the governing verdict.
    pub verdict: String,
    pub grant_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A decided action to insert once its evidence is committed, with its
/// grant's single-use record (jti, expiry) when it has one. It rides in the
/// evidence append (`Store::append_events`): inserted after the events, in a
/// transaction that commits only once they are durable.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub row: ActionRow,
    pub grant: Option<(String, DateTime<Utc>)>,
    /// The sha256 of the agent API key that submitted it (none for the
    /// host's own policy-change actions): the action and its events are
    /// written only if that key and its agent are still live as they commit,
    /// which lets submissions authenticate from a cache.
    pub key_hash: Option<String>,
    /// The host runs it itself at once (the MCP gateway's allowed call):
    /// its grant is written already consumed, in the decision's commit, so
    /// the run needs no claim of its own and nobody else can claim it.
    pub claimed: bool,
}

/// A consumed grant (`Store::unrecorded_spent_grants`).
#[derive(Debug, Clone)]
pub struct SpentGrant {
    pub action_id: String,
    pub jti: String,
    pub spent_at: DateTime<Utc>,
}

/// A state move of an existing action that rides in an evidence append
/// (`Store::append_events`), written once the append's events are durable,
/// in the same commit: the `executed` event and the state it leads to.
/// Conditional like `transition_action`: it moves only from `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionMove {
    pub id: String,
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
}

pub(super) const COLUMNS: &str = "id, agent_id, idempotency_key, request_hash, action, digest, state, verdict, grant_token, expires_at, created_at, updated_at";

macro_rules! action_row {
    ($r:expr) => {{
        let r = $r;
        ActionRow {
            id: r.get("id"),
            agent_id: r.get("agent_id"),
            idempotency_key: r.get("idempotency_key"),
            request_hash: r.get("request_hash"),
            action: r.get("action"),
            digest: r.get("digest"),
            state: r.get("state"),
            verdict: r.get("verdict"),
            grant_token: r.get("grant_token"),
            expires_at: r.get("expires_at"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        }
    }};
}

impl Store {
    pub async fn action(&self, id: &str) -> Result<Option<ActionRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM actions WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map(|row| row.map(|r| action_row!(r))))?)
    }

    pub async fn action_by_idempotency_key(
        &self,
        agent_id: &str,
        key: &str,
    ) -> Result<Option<ActionRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM actions WHERE agent_id = $1 AND idempotency_key = $2");
        Ok(on_pool!(self, pool => sqlx::query(&sql)
            .bind(agent_id)
            .bind(key)
            .fetch_optional(pool)
            .await
            .map(|row| row.map(|r| action_row!(r))))?)
    }

    /// Moves an action from `from` to `to`, with optional new fields.
    /// `Ok(false)` when it was no longer in `from` (someone else moved it).
    pub async fn transition_action(
        &self,
        id: &str,
        from: &str,
        to: &str,
        change: &ActionChange,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let changed = on_pool!(self, pool => sqlx::query(TRANSITION_SQL)
        .bind(to)
        .bind(now)
        .bind(&change.action)
        .bind(&change.digest)
        .bind(&change.verdict)
        .bind(&change.grant_token)
        .bind(change.expires_at)
        .bind(id)
        .bind(from)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Pending actions, oldest first (for approvers' lists).
    pub async fn pending_actions(&self, limit: i64) -> Result<Vec<ActionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM actions WHERE state = 'pending' ORDER BY created_at LIMIT $1"
        );
        Ok(on_pool!(self, pool => sqlx::query(&sql)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|r| action_row!(r)).collect::<Vec<_>>()))?)
    }

    /// Pending actions whose expiry has passed.
    pub async fn expired_pending(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ActionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM actions WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
        );
        Ok(on_pool!(self, pool => sqlx::query(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|r| action_row!(r)).collect::<Vec<_>>()))?)
    }

    pub async fn insert_grant(
        &self,
        jti: &str,
        action_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO grants (jti, action_id, expires_at) VALUES ($1, $2, $3)")
            .bind(jti)
            .bind(action_id)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Marks a grant used. `Ok(false)` if it was used already (or unknown).
    pub async fn consume_grant(&self, jti: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => sqlx::query(
            "UPDATE grants SET consumed_at = $1 WHERE jti = $2 AND consumed_at IS NULL",
        )
        .bind(now)
        .bind(jti)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Grants spent at or before `before` whose action is still allowed or
    /// approved: no outcome was recorded for them. Oldest first.
    pub async fn unrecorded_spent_grants(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<SpentGrant>, StoreError> {
        type Spent = (String, String, DateTime<Utc>);
        let rows: Vec<Spent> = on_pool!(self, pool => sqlx::query_as(UNRECORDED_SPENT_GRANTS_SQL)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(action_id, jti, spent_at)| SpentGrant {
                action_id,
                jti,
                spent_at,
            })
            .collect())
    }

    /// Undoes `consume_grant` when the outcome's evidence could not be
    /// committed, so the agent can report again.
    pub async fn release_grant(&self, jti: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE grants SET consumed_at = NULL WHERE jti = $1")
            .bind(jti)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Wakes waiters on every replica (Postgres NOTIFY); SQLite is one
    /// process, whose waiters the caller wakes directly.
    pub async fn notify_action_changed(&self, id: &str) -> Result<(), StoreError> {
        if let Store::Postgres(pool, ..) = self {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(ACTION_CHANNEL)
                .bind(id)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

/// `unrecorded_spent_grants`' question. It reads only the index of grants
/// spent and not settled (`grants_awaiting_outcome`, migration 0016), never
/// every action still allowed: its terms repeat the index's own, as SQLite
/// needs to use a partial index, and `CROSS JOIN` keeps SQLite's planner
/// (which has no statistics) from starting at the actions still allowed
/// (Postgres reads it as an inner join). Public so that tests can check its
/// plan.
pub const UNRECORDED_SPENT_GRANTS_SQL: &str =
    "SELECT g.action_id, g.jti, g.consumed_at FROM grants g CROSS JOIN actions a
     WHERE a.id = g.action_id AND g.consumed_at IS NOT NULL AND NOT g.settled AND g.consumed_at <= $1
       AND a.state IN ('allowed', 'approved')
     ORDER BY g.consumed_at LIMIT $2";

/// Moves one action between states, changing the given fields
/// (`COALESCE`: NULL keeps the old value). Binds: to, now, action, digest,
/// verdict, grant_token, expires_at, id, from.
pub(super) const TRANSITION_SQL: &str = "UPDATE actions SET state = $1, updated_at = $2,
         action = COALESCE($3, action), digest = COALESCE($4, digest),
         verdict = COALESCE($5, verdict), grant_token = COALESCE($6, grant_token),
         expires_at = COALESCE($7, expires_at)
     WHERE id = $8 AND state = $9";

/// The Postgres NOTIFY channel that carries ids of changed actions (also
/// hard-coded in `evidence_append_flushed`, migrations/postgres/0014).
pub const ACTION_CHANNEL: &str = "actiongate_actions";

/// Fields to change with a state transition; `None` keeps the old value.
#[derive(Debug, Clone, Default)]
pub struct ActionChange {
    pub action: Option<String>,
    pub digest: Option<String>,
    pub verdict: Option<String>,
    pub grant_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    /// How many actions wait for approval (for /metrics).
    pub async fn count_pending(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM actions WHERE state = 'pending'")
            .fetch_one(pool)
            .await)?,
        )
    }

    /// Readiness: one round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
