//! Bindings (`bindings`): one row per change, only ever inserted. A
//! pattern's binding is its newest row. Changes are made under one lock
//! (an advisory lock on Postgres, across replicas), so each is decided
//! against the bindings as they stand.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, to_i64, to_u64, Store, StoreError};

/// Postgres NOTIFY channel: "the bindings changed, re-read them".
pub const BINDINGS_CHANNEL: &str = "actiongate_bindings";

/// Serializes binding changes across replicas (transaction-scoped).
const BINDINGS_LOCK: i64 = 0x6167_5f62_696e_6401; // "ag_bind" 1

/// One binding change as stored (and as the admin API lists it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BindingRow {
    pub id: i64,
    pub pattern: String,
    pub sha256: String,
    pub shadow: Option<String>,
    /// `config`, `admin` or `approval`.
    pub source: String,
    /// A person's email, or `config`.
    pub changed_by: String,
    /// The approved `actiongate.bind` action, for four-eyes changes.
    pub approval: Option<String>,
    /// The `binding-changed` event in the evidence log.
    pub evidence_seq: u64,
    pub changed_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, pattern, sha256, shadow, source, changed_by, approval, evidence_seq, changed_at";

/// The newest row of every pattern.
const CURRENT_SQL: &str =
    "SELECT id, pattern, sha256, shadow, source, changed_by, approval, evidence_seq, changed_at
     FROM bindings WHERE id IN (SELECT MAX(id) FROM bindings GROUP BY pattern) ORDER BY pattern";

/// A row of either database as a `BindingRow`.
macro_rules! binding_row {
    ($r:expr) => {{
        let r = $r;
        to_u64(r.get("evidence_seq"), "binding evidence_seq").map(|evidence_seq| BindingRow {
            id: r.get("id"),
            pattern: r.get("pattern"),
            sha256: r.get("sha256"),
            shadow: r.get("shadow"),
            source: r.get("source"),
            changed_by: r.get("changed_by"),
            approval: r.get("approval"),
            evidence_seq,
            changed_at: r.get("changed_at"),
        })
    }};
}

/// A change to insert (the id is assigned by the database).
#[derive(Debug, Clone)]
pub struct NewBinding<'a> {
    pub pattern: &'a str,
    pub sha256: &'a str,
    pub shadow: Option<&'a str>,
    pub source: &'a str,
    pub changed_by: &'a str,
    pub approval: Option<&'a str>,
    pub evidence_seq: u64,
    pub changed_at: DateTime<Utc>,
}

/// SQLite is one process: an in-process lock serializes its changes.
static SQLITE_BINDINGS: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Held while one binding change is decided and written. On Postgres the
/// insert takes effect at `commit` (dropping the guard rolls it back).
pub enum BindingsGuard {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(tokio::sync::MutexGuard<'static, ()>, sqlx::SqlitePool),
}

/// Runs `$body` with `$ex` bound to the guard's executor.
macro_rules! on_guard {
    ($guard:expr, $ex:ident => $body:expr) => {
        match $guard {
            BindingsGuard::Postgres(tx) => {
                let $ex = &mut **tx;
                $body
            }
            BindingsGuard::Sqlite(_, pool) => {
                let $ex = &*pool;
                $body
            }
        }
    };
}

impl Store {
    /// The binding in effect for every pattern.
    pub async fn current_bindings(&self) -> Result<Vec<BindingRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query(CURRENT_SQL)
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|r| binding_row!(r)).collect::<Vec<_>>()))?;
        rows.into_iter().collect()
    }

    /// Every change, oldest first.
    pub async fn binding_history(&self) -> Result<Vec<BindingRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query(&format!("SELECT {COLUMNS} FROM bindings ORDER BY id"))
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|r| binding_row!(r)).collect::<Vec<_>>()))?;
        rows.into_iter().collect()
    }

    /// The newest change's id (0 when none): replicas compare it to know
    /// whether to reload.
    pub async fn bindings_version(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM bindings")
            .fetch_one(pool)
            .await
            .map(|v| v.unwrap_or(0)))?,
        )
    }

    /// Locks binding changes against each other, on every replica.
    pub async fn lock_bindings(&self) -> Result<BindingsGuard, StoreError> {
        match self {
            Store::Postgres(pool, ..) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(BINDINGS_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(BindingsGuard::Postgres(tx))
            }
            Store::Sqlite(pool, _) => Ok(BindingsGuard::Sqlite(
                SQLITE_BINDINGS.lock().await,
                pool.clone(),
            )),
        }
    }

    /// Tells every replica to reload its bindings (Postgres; SQLite is one process).
    pub async fn notify_bindings_changed(&self) -> Result<(), StoreError> {
        if let Store::Postgres(pool, ..) = self {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(BINDINGS_CHANNEL)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Actions of `agent_id` in `state`, oldest first (the host's own
    /// agent's approved binding changes, to apply after a crash).
    pub async fn action_ids_of(
        &self,
        agent_id: &str,
        state: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM actions WHERE agent_id = $1 AND state = $2 ORDER BY created_at",
        )
        .bind(agent_id)
        .bind(state)
        .fetch_all(pool)
        .await)?)
    }
}

impl BindingsGuard {
    /// The newest row for `pattern`, and the newest written from the config file.
    pub async fn latest(
        &mut self,
        pattern: &str,
    ) -> Result<(Option<BindingRow>, Option<BindingRow>), StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM bindings WHERE pattern = $1 AND ($2 OR source = 'config') ORDER BY id DESC LIMIT 1"
        );
        let mut found = [None, None];
        for (slot, any_source) in found.iter_mut().zip([true, false]) {
            *slot = on_guard!(self, ex => sqlx::query(&sql)
                .bind(pattern)
                .bind(any_source)
                .fetch_optional(ex)
                .await
                .map(|r| r.map(|r| binding_row!(r))))?
            .transpose()?;
        }
        let [current, config] = found;
        Ok((current, config))
    }

    /// The change already applied for approval `action_id`, if any.
    pub async fn by_approval(&mut self, action_id: &str) -> Result<Option<BindingRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM bindings WHERE approval = $1");
        on_guard!(self, ex => sqlx::query(&sql)
            .bind(action_id)
            .fetch_optional(ex)
            .await
            .map(|r| r.map(|r| binding_row!(r))))?
        .transpose()
    }

    /// Inserts one change; returns its id.
    pub async fn insert(&mut self, b: &NewBinding<'_>) -> Result<i64, StoreError> {
        let id = on_guard!(self, ex => sqlx::query_scalar::<_, i64>(
            "INSERT INTO bindings (pattern, sha256, shadow, source, changed_by, approval, evidence_seq, changed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(b.pattern)
        .bind(b.sha256)
        .bind(b.shadow)
        .bind(b.source)
        .bind(b.changed_by)
        .bind(b.approval)
        .bind(to_i64(b.evidence_seq))
        .bind(b.changed_at)
        .fetch_one(ex)
        .await)?;
        Ok(id)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        if let BindingsGuard::Postgres(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Lets go without writing. Explicit, because a dropped transaction's
    /// rollback (and with it the lock) waits for its connection's next use.
    pub async fn release(self) -> Result<(), StoreError> {
        if let BindingsGuard::Postgres(tx) = self {
            tx.rollback().await?;
        }
        Ok(())
    }
}
