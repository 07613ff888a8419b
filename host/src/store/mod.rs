//! store: the only code that writes SQL. Owns the Postgres and SQLite pools,
//! their migrations and every query; evidence rows are only ever inserted.

mod actions;
mod agents;
mod appender;
mod audit;
mod bindings;
mod inbox;
mod lanes;
mod mcp;
mod passkeys;
mod plugins;
mod postgres;
mod reviews;
mod slack;
mod sqlite;
mod teams;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use appender::Appender;
use lanes::Lanes;

pub use actions::{
    ActionChange, ActionMove, ActionRow, NewAction, SpentGrant, ACTION_CHANNEL,
    UNRECORDED_SPENT_GRANTS_SQL,
};
pub use agents::{AgentRow, KeyRole};
pub use audit::Window;
pub use bindings::{BindingRow, BindingsGuard, NewBinding, BINDINGS_CHANNEL};
pub use inbox::{InboxLogin, InboxSession};
pub use passkeys::{CeremonyRow, PasskeyRow};
pub use plugins::PluginRow;
pub use postgres::{APPEND_LOCK as PG_APPEND_LOCK, LEADER_LOCK as PG_LEADER_LOCK, PG_MIGRATOR};
pub use reviews::{ActionGuard, ReviewRow};
pub use slack::SlackMessageRow;
pub use sqlite::SQLITE_MIGRATOR;
pub use teams::TeamsActivity;

/// Runs `$body` with `$pool` bound to whichever pool the store has. For
/// queries written once in the SQL both databases speak (`$1` placeholders
/// work in both).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Postgres($pool, ..) => $body,
            Store::Sqlite($pool, _) => $body,
        }
    };
}
pub(crate) use on_pool;

/// `on_pool!` for the queries on the request path: on Postgres through a
/// lane (`lanes.rs`), which skips the ping sqlx's pool sends on every
/// connection it takes back. `$body` is a query's result; evaluates to its
/// value, returning early with the error.
macro_rules! on_lane {
    ($store:expr, $conn:ident => $body:expr) => {
        match $store {
            Store::Postgres(_, lanes) => lanes.run(async |$conn| $body).await?,
            Store::Sqlite($conn, _) => $body?,
        }
    };
}
pub(crate) use on_lane;

/// Where the state lives: Postgres in production, SQLite embedded.
#[derive(Clone, Debug)]
pub enum Store {
    /// The pool, and lanes for the queries on the decision path (`lanes.rs`).
    Postgres(PgPool, Arc<Lanes>),
    /// The pool, and the evidence append's own connection (`appender.rs`).
    Sqlite(SqlitePool, Arc<Appender>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Sqlite,
}

/// Errors naming what failed. `Unavailable` means the database could not be
/// reached (callers fail closed, typically with 503).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database query failed: {0}")]
    Query(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url {0:?} (want postgres:// or sqlite:)")]
    UnsupportedUrl(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    /// The embedded store's append connection (`appender.rs`).
    #[error("database query failed: {0}")]
    Embedded(#[source] rusqlite::Error),
    #[error("database unavailable: {0}")]
    EmbeddedUnavailable(#[source] rusqlite::Error),
    #[error("database unavailable: the append thread is gone")]
    AppenderGone,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure | DiskFull) => {
                StoreError::EmbeddedUnavailable(e)
            }
            _ => StoreError::Embedded(e),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Query(e)
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::EmbeddedUnavailable(_)
                | StoreError::AppenderGone
        )
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now;
            // SQLite 5/6: busy/locked beyond busy_timeout.
            c.starts_with("08") || c.starts_with("57P") || c == "5" || c == "6"
        }),
        _ => false,
    }
}

/// Connection knobs; the defaults suit `serve`.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a caller waits for a connection before `Unavailable`.
    /// Short, because callers fail closed rather than queue behind an outage.
    pub acquire_timeout: Duration,
    /// Run migrations on connect. Off for read-only tools such as `audit verify`.
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            migrate: true,
        }
    }
}

/// One evidence row as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub action_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: String,
    pub canonical: String,
    pub leaf_hash: [u8; 32],
}

/// An event to append, its canonical leaf split around occurred_at and seq.
#[derive(Clone, Copy, Debug)]
pub struct NewRow<'a> {
    pub head: &'a str,
    pub middle: &'a str,
    pub tail: &'a str,
    pub kind: &'static str,
    pub action_id: Option<Uuid>,
    pub actor_kind: &'static str,
    pub actor_id: &'a str,
    /// The index in `actions` of the action this event belongs to: if that
    /// action is refused, the event is not written either.
    pub owner: Option<usize>,
}

impl NewRow<'_> {
    pub fn canonical(&self, at_text: &str, seq: u64) -> String {
        format!("{}{at_text}{}{seq}{}", self.head, self.middle, self.tail)
    }

    /// Whether the append writes this event, given the indexes of the
    /// actions it refused (`Appended::refused`).
    pub fn is_written(&self, refused: &HashSet<usize>) -> bool {
        self.owner.is_none_or(|i| !refused.contains(&i))
    }
}

/// What an append committed.
#[derive(Debug, Default)]
pub struct Appended {
    /// Each written event's seq and leaf hash, in order (the events of
    /// refused actions are skipped).
    pub leaves: Vec<(u64, [u8; 32])>,
    /// The ids of the actions inserted.
    pub created: HashSet<String>,
    /// Indexes in `actions` of those refused: their key is no longer live.
    pub refused: HashSet<usize>,
    /// The ids of the actions moved (those still in the move's `from`).
    pub moved: HashSet<String>,
}

/// One signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRow {
    pub size: u64,
    pub root_hash: [u8; 32],
    pub note: String,
    pub signed_at: DateTime<Utc>,
}

impl Store {
    /// Connects and runs migrations. `postgres://…` or `sqlite:…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    pub async fn connect_with(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(StoreError::Query)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect)
                .await?;
            Store::from_pool(pool)
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Query)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit survives power loss, which `append` promises.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(appender::BUSY_TIMEOUT);
            let file = connect.get_filename().to_owned();
            // sqlx names an in-memory database `file:…`; the append's own
            // connection could not share it, and the log would not outlive
            // the process anyway.
            if file.to_string_lossy().starts_with("file:") {
                return Err(StoreError::UnsupportedUrl(format!(
                    "{url}: an in-memory database cannot hold the evidence log; name a file"
                )));
            }
            if let Some(dir) = file.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Query(e.into()))?;
                }
            }
            let pool = SqlitePoolOptions::new()
                // A file in this process has no far end to hang up: the
                // ping before each acquire only cost the request path a
                // round trip to the connection's thread.
                .test_before_acquire(false)
                .max_connections(opts.max_connections.min(8))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect)
                .await?;
            Store::Sqlite(pool, Arc::new(Appender::open(&file)?))
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        if opts.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// A Postgres store over `pool`, with as many lanes as the pool has connections.
    pub fn from_pool(pool: PgPool) -> Store {
        let opts = pool.options();
        let lanes = Lanes::new(
            (*pool.connect_options()).clone(),
            opts.get_max_connections() as usize,
            opts.get_acquire_timeout(),
        );
        Store::Postgres(pool, Arc::new(lanes))
    }

    pub fn kind(&self) -> StoreKind {
        match self {
            Store::Postgres(..) => StoreKind::Postgres,
            Store::Sqlite(..) => StoreKind::Sqlite,
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(p, ..) => PG_MIGRATOR.run(p).await?,
            Store::Sqlite(p, _) => SQLITE_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// Appends events atomically with consecutive seqs, each leaf being
    /// `head ‖ at_text ‖ middle ‖ seq ‖ tail`; returns each one's seq and leaf
    /// hash. The seqs continue from `MAX(seq)` under the store's append lock.
    /// `actions` are inserted after the events, never before they are
    /// durable; one whose agent already used its idempotency key is skipped
    /// (absent from `Appended::created`). One whose submitting key or agent
    /// is no longer live is refused with its events (`Appended::refused`).
    /// `moves` change existing actions' states in the same commit as the
    /// actions, likewise never before the events are durable.
    pub async fn append_events(
        &self,
        occurred_at: DateTime<Utc>,
        at_text: &str,
        rows: &[NewRow<'_>],
        actions: &[&NewAction],
        moves: &[&ActionMove],
    ) -> Result<Appended, StoreError> {
        match self {
            Store::Postgres(_, lanes) => {
                postgres::append_events(lanes, occurred_at, at_text, rows, actions, moves).await
            }
            Store::Sqlite(_, appender) => {
                appender
                    .append(occurred_at, at_text, rows, actions, moves)
                    .await
            }
        }
    }

    /// Number of committed events, which is also the next seq.
    pub async fn event_count(&self) -> Result<u64, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::event_count(p).await,
            Store::Sqlite(p, _) => sqlite::event_count(p).await,
        }
    }

    /// Events with `start <= seq < end`, ordered by seq.
    pub async fn events_range(&self, start: u64, end: u64) -> Result<Vec<EventRow>, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::events_range(p, start, end).await,
            Store::Sqlite(p, _) => sqlite::events_range(p, start, end).await,
        }
    }

    /// Rows in seq order starting at the first seq `>= after`, at most `limit`.
    /// Unlike `events_range` it does not assume seqs are dense (for auditing).
    pub async fn events_page(&self, from: u64, limit: u64) -> Result<Vec<EventRow>, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::events_page(p, from, limit).await,
            Store::Sqlite(p, _) => sqlite::events_page(p, from, limit).await,
        }
    }

    pub async fn events_for_action(&self, id: Uuid) -> Result<Vec<EventRow>, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::events_for_action(p, id).await,
            Store::Sqlite(p, _) => sqlite::events_for_action(p, id).await,
        }
    }

    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::latest_checkpoint(&mut *p.acquire().await?).await,
            Store::Sqlite(p, _) => sqlite::latest_checkpoint(p).await,
        }
    }

    /// Every checkpoint, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::checkpoints(p).await,
            Store::Sqlite(p, _) => sqlite::checkpoints(p).await,
        }
    }

    /// Stored tree hashes by index, in the order asked; a missing one is `Corrupt`.
    pub async fn tree_hashes(&self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        match self {
            Store::Postgres(p, ..) => {
                postgres::tree_hashes(&mut *p.acquire().await?, indexes).await
            }
            Store::Sqlite(p, _) => sqlite::tree_hashes(p, indexes).await,
        }
    }

    /// Stored tree hashes with `start <= idx < end`, by idx (may have holes).
    pub async fn tree_hash_range(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        match self {
            Store::Postgres(p, ..) => postgres::tree_hash_range(p, start, end).await,
            Store::Sqlite(p, _) => sqlite::tree_hash_range(p, start, end).await,
        }
    }

    /// A contender for the integrator role (see [`Contender::try_lead`]).
    pub fn contender(&self) -> Contender {
        Contender {
            store: self.clone(),
            conn: None,
        }
    }
}

/// Competes to become the one integrator, keeping its connection between
/// attempts (connecting costs far more than asking for a lock).
pub struct Contender {
    store: Store,
    conn: Option<sqlx::PgConnection>,
}

impl Contender {
    /// On Postgres this takes a session advisory lock on a dedicated
    /// connection: the lock lives exactly as long as that connection, so a
    /// dead leader's lock is freed by Postgres itself.
    pub async fn try_lead(&mut self) -> Result<Option<Leader>, StoreError> {
        match &self.store {
            Store::Postgres(p, ..) => {
                let conn = match self.conn.take() {
                    Some(c) => c,
                    // Detached: a pooled connection would keep the session lock after we let go.
                    None => p.acquire().await?.detach(),
                };
                let (conn, got) = postgres::try_lock_leader(conn).await?;
                if got {
                    Ok(Some(Leader::Postgres(conn)))
                } else {
                    self.conn = Some(conn);
                    Ok(None)
                }
            }
            // Embedded: one process owns the file; PRIMARY KEYs catch a second writer.
            Store::Sqlite(p, _) => Ok(Some(Leader::Sqlite(p.clone()))),
        }
    }
}

/// The right to integrate the tree and sign checkpoints. Dropping it gives
/// the right up (the Postgres connection closes and its lock with it).
pub enum Leader {
    Postgres(sqlx::PgConnection),
    Sqlite(SqlitePool),
}

impl Leader {
    pub async fn event_count(&mut self) -> Result<u64, StoreError> {
        match self {
            Leader::Postgres(c) => postgres::event_count(&mut *c).await,
            Leader::Sqlite(p) => sqlite::event_count(p).await,
        }
    }

    pub async fn latest_checkpoint(&mut self) -> Result<Option<CheckpointRow>, StoreError> {
        match self {
            Leader::Postgres(c) => postgres::latest_checkpoint(c).await,
            Leader::Sqlite(p) => sqlite::latest_checkpoint(p).await,
        }
    }

    pub async fn leaves(&mut self, start: u64, end: u64) -> Result<Vec<EventRow>, StoreError> {
        match self {
            Leader::Postgres(c) => postgres::events_range(&mut *c, start, end).await,
            Leader::Sqlite(p) => sqlite::events_range(p, start, end).await,
        }
    }

    pub async fn tree_hashes(&mut self, indexes: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
        match self {
            Leader::Postgres(c) => postgres::tree_hashes(c, indexes).await,
            Leader::Sqlite(p) => sqlite::tree_hashes(p, indexes).await,
        }
    }

    /// Inserts the tree hashes `first_idx..` and the checkpoint covering them,
    /// in one transaction.
    pub async fn integrate(
        &mut self,
        first_idx: u64,
        hashes: &[[u8; 32]],
        checkpoint: &CheckpointRow,
    ) -> Result<(), StoreError> {
        match self {
            Leader::Postgres(c) => postgres::integrate(c, first_idx, hashes, checkpoint).await,
            Leader::Sqlite(p) => sqlite::integrate(p, first_idx, hashes, checkpoint).await,
        }
    }
}

fn hash32(v: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    v.try_into()
        .map_err(|v: Vec<u8>| StoreError::Corrupt(format!("{what}: {} bytes, want 32", v.len())))
}

fn to_i64(v: u64) -> i64 {
    // INVARIANT: seqs, sizes and indexes stay far below 2^63.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {v}")))
}

fn order_hashes(indexes: &[u64], rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for (i, h) in rows {
        found.insert(to_u64(i, "tree hash idx")?, hash32(h, "tree hash")?);
    }
    indexes
        .iter()
        .map(|i| {
            found
                .get(i)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("tree hash {i} is missing")))
        })
        .collect()
}

/// RFC 6962 leaf hash, SHA-256(0x00 ‖ leaf).
fn leaf_hash(canonical: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(canonical.as_bytes());
    h.finalize().into()
}
