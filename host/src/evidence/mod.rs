//! evidence: the tamper-evident, append-only log of everything actiongate
//! decides. Appends rows and signs checkpoints; never updates or deletes a row.
//!
//! # Contract
//!
//! * **Append.** [`EvidenceLog::append`] returns a [`CommittedEvent`] only
//!   after the row is COMMITted, or an error and nothing in between. On any
//!   error the caller must fail closed (no decision leaves the host). An error
//!   does not always mean "not written": if the connection drops during COMMIT
//!   the event may be in the log anyway; it is then evidence of an attempt.
//!   Failed batches are never retried, so nothing is written twice.
//! * **Durable before acknowledged, visible a little earlier.** On Postgres a
//!   batch commits asynchronously under the append lock and its append then
//!   waits for the WAL flush through it (migrations 0008 and 0010; tested
//!   by crashing Postgres right after appends), so other sessions
//!   may read a batch up to one flush before it is durable. Nothing durable
//!   can depend on such a read: WAL is flushed in order, so every later
//!   synchronous commit (a checkpoint, a grant, an action's state) makes the
//!   batch durable first; a crash in that window loses the log's tail whole.
//! * **Decisions ride along.** [`EvidenceLog::append_with_action`] hands in
//!   a decided action with its events: the action row (and its grant) is
//!   inserted by the transaction that waits for the flush, so it is never
//!   visible before its evidence is durable, and the submitting key is
//!   confirmed under the append (migration 0009). A run the host performs
//!   itself rides the same way: its grant may be written consumed with the
//!   decision, and [`EvidenceLog::append_with_move`] moves the action to
//!   its new state in the commit that waits for its `executed` event's
//!   flush (migration 0014).
//! * **Order.** Seqs are dense from 0, without gaps or duplicates, across all
//!   replicas sharing a database: each batch transaction takes an advisory
//!   lock (Postgres) or the write lock (SQLite) and continues from `MAX(seq)`.
//!   [`EvidenceLog::append_all`] commits its events atomically with
//!   consecutive seqs.
//! * **Leaves.** Each event is one leaf: the RFC 8785 canonical JSON of
//!   `{action_id, actor, occurred_at, payload, seq, type, v}`; its leaf hash
//!   is SHA-256(0x00 ‖ leaf) per RFC 6962.
//! * **Pending, then integrated.** A committed event is *pending* until a
//!   signed checkpoint covers its seq; then it is *integrated* and has
//!   inclusion proofs. One replica at a time (a Postgres advisory lock held on
//!   its own connection) extends the tree and signs a C2SP tlog-checkpoint
//!   every `checkpoint_every_events` events or `checkpoint_every_seconds`.
//!   If it dies, its connection closes, the lock is freed and another takes over.
//! * **Append-only.** Triggers refuse UPDATE, DELETE and TRUNCATE on the
//!   evidence tables. The service should connect as a login role granted
//!   `actiongate_service` (created by the migration: SELECT and INSERT only),
//!   e.g. `CREATE ROLE actiongate_app LOGIN PASSWORD '…' IN ROLE actiongate_service`,
//!   while migrations run as the tables' owner. The owner can disable
//!   triggers, so keep it out of the service's hands; `audit verify` detects
//!   what it would alter.

/// RFC 8785 lives below every layer (actions digest with it too).
pub use crate::canonical;
pub mod checkpoint;
mod event;
mod integrator;
pub mod merkle;
pub mod payload;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tlog_tiles::tlog;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use uuid::Uuid;

pub use checkpoint::{CheckpointError, LogKey, VerifiedCheckpoint};
pub use event::{
    format_time, Actor, ActorKind, CommittedEvent, EventKind, NewEvent, StoredEvent,
    ENVELOPE_VERSION, MAX_EVENT_BYTES,
};
pub use merkle::{ConsistencyProof, InclusionProof};

use crate::store::{ActionMove, NewAction, Store, StoreError};
use event::PreparedEvent;
use merkle::FnReader;

/// Errors naming what failed. Every one of them means "fail closed" to a caller
/// deciding an action; `Unavailable` is the database being unreachable (503).
#[derive(Clone, Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence store unavailable: {0}")]
    Unavailable(String),
    #[error("evidence store failed: {0}")]
    Store(String),
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("event is {bytes} bytes, more than the {max} allowed")]
    TooLarge { bytes: usize, max: usize },
    #[error("log key: {0}")]
    Key(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("merkle proof: {0}")]
    Proof(String),
    #[error("stored evidence is corrupt: {0}")]
    Corrupt(String),
    #[error("timed out waiting for a checkpoint covering seq {0}")]
    NotIntegrated(u64),
}

impl EvidenceError {
    /// True when retrying later may succeed (database or writer down).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EvidenceError::Unavailable(_))
    }
}

impl From<canonical::CanonicalError> for EvidenceError {
    fn from(e: canonical::CanonicalError) -> Self {
        EvidenceError::InvalidEvent(e.0)
    }
}

impl From<StoreError> for EvidenceError {
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_unavailable() => EvidenceError::Unavailable(e.to_string()),
            StoreError::Corrupt(m) => EvidenceError::Corrupt(m),
            other => EvidenceError::Store(other.to_string()),
        }
    }
}

/// `[evidence]` configuration; every field has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Log origin, also the checkpoint key's name (C2SP: no spaces or '+').
    pub origin: String,
    /// Signed-note private key; generated on first start.
    pub key_path: PathBuf,
    pub checkpoint_every_events: u64,
    pub checkpoint_every_seconds: f64,
    /// Most events per INSERT transaction (1 = no batching, the benchmark baseline).
    pub batch_max: usize,
    /// How often a non-leader replica tries to become the integrator.
    pub leader_retry_ms: u64,
    /// Queue depth in front of the writer; callers wait beyond it.
    pub queue: usize,
    /// Postgres: append batches in flight at once (SQLite always uses 1).
    pub in_flight: usize,
    /// How long a record of something that already happened (the MCP
    /// gateway's run outcomes, which nobody waits on) waits for others like
    /// it, so that they share one durable commit instead of each costing
    /// one beside the decisions callers wait for. 0: each goes at once.
    pub defer_ms: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            origin: "actiongate.local/log".into(),
            key_path: std::env::var_os("ACTIONGATE_LOG_KEY")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("./data/log.key")),
            checkpoint_every_events: 1000,
            checkpoint_every_seconds: 5.0,
            batch_max: 512,
            leader_retry_ms: 1000,
            queue: 4096,
            in_flight: 2,
            defer_ms: 20,
        }
    }
}

/// What became of the action given to [`EvidenceLog::append_with_action`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Inserted, after its events.
    Created,
    /// Not inserted: the agent already used its idempotency key. The events
    /// stay, as evidence of the attempt.
    IdempotencyKeyTaken,
    /// Neither it nor its events were written: the key that submitted it
    /// (`NewAction::key_hash`), or its agent, was revoked before they could
    /// commit.
    KeyRevoked,
    /// The append had no action.
    NoAction,
}

/// Where a committed event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// Committed with a durable seq; no signed checkpoint covers it yet.
    Pending,
    /// Covered by the signed checkpoint of `checkpoint_size` leaves (or a later one).
    Integrated { checkpoint_size: u64 },
}

/// The latest signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root_hash: [u8; 32],
    /// The C2SP signed note, as served.
    pub note: String,
}

/// Handle to the evidence log; clones share one writer and one integrator.
#[derive(Clone)]
pub struct EvidenceLog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    key: Arc<LogKey>,
    tx: mpsc::Sender<writer::Request>,
    integrated: watch::Receiver<u64>,
    is_leader: Arc<AtomicBool>,
    integrator: tokio::task::JoinHandle<()>,
    /// Wakes the integrator; with `sign_now`, it signs whatever is pending.
    wake: Arc<Notify>,
    sign_now: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Drops the leader connection, which frees the advisory lock.
        self.integrator.abort();
    }
}

impl EvidenceLog {
    /// Loads (or generates) the log key and starts the writer and integrator tasks.
    pub async fn open(store: Store, cfg: EvidenceConfig) -> Result<Self, EvidenceError> {
        let key = LogKey::load_or_generate(&cfg.key_path, &cfg.origin)
            .map_err(|e| EvidenceError::Key(e.to_string()))?;
        let key = Arc::new(key);
        let wake = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        tokio::spawn(
            writer::Writer {
                store: store.clone(),
                batch_max: cfg.batch_max.max(1),
                in_flight: cfg.in_flight.max(1),
                defer: Duration::from_millis(cfg.defer_ms),
                wake_every: cfg.checkpoint_every_events.max(1),
                wake: wake.clone(),
            }
            .run(rx),
        );
        let (integrated_tx, integrated) = watch::channel(0);
        let is_leader = Arc::new(AtomicBool::new(false));
        let sign_now = Arc::new(AtomicBool::new(false));
        let integrator = tokio::spawn(
            integrator::Integrator {
                store: store.clone(),
                key: key.clone(),
                every_events: cfg.checkpoint_every_events.max(1),
                every: Duration::from_secs_f64(cfg.checkpoint_every_seconds.max(0.01)),
                retry: Duration::from_millis(cfg.leader_retry_ms.max(10)),
                wake: wake.clone(),
                integrated: integrated_tx,
                is_leader: is_leader.clone(),
                sign_now: sign_now.clone(),
            }
            .run(),
        );
        Ok(EvidenceLog {
            inner: Arc::new(Inner {
                store,
                key,
                tx,
                integrated,
                is_leader,
                integrator,
                wake,
                sign_now,
            }),
        })
    }

    /// Appends one event; returns after COMMIT.
    pub async fn append(&self, e: NewEvent) -> Result<CommittedEvent, EvidenceError> {
        let mut v = self.append_all(vec![e]).await?;
        v.pop()
            .ok_or_else(|| EvidenceError::Store("writer returned no event".into()))
    }

    /// Appends events atomically with consecutive seqs; returns after COMMIT.
    pub async fn append_all(
        &self,
        es: Vec<NewEvent>,
    ) -> Result<Vec<CommittedEvent>, EvidenceError> {
        if es.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.send(es, None, None, false).await?.events)
    }

    /// Appends the events of a decision, then inserts its action row (and
    /// its grant's single-use record), which commits only once the events
    /// are durable: it shares their batch instead of a transaction of its
    /// own. See [`Recorded`] for what can happen instead; an error may still
    /// leave the events committed, never the action.
    pub async fn append_with_action(
        &self,
        es: Vec<NewEvent>,
        action: NewAction,
    ) -> Result<(Vec<CommittedEvent>, Recorded), EvidenceError> {
        let done = self.send(es, Some(action), None, false).await?;
        Ok((done.events, done.outcome))
    }

    /// Appends the events that change an existing action (its `executed`
    /// event), then moves it as they say, in the commit that waits for
    /// their flush: one durable commit for both, and the new state is never
    /// visible before its evidence is durable. Returns whether the action
    /// was still in `action_move.from` (it moves only from there); an error
    /// may still leave the events committed, never the move.
    pub async fn append_with_move(
        &self,
        es: Vec<NewEvent>,
        action_move: ActionMove,
    ) -> Result<(Vec<CommittedEvent>, bool), EvidenceError> {
        let done = self.send(es, None, Some(action_move), false).await?;
        Ok((done.events, done.moved))
    }

    /// [`Self::append_with_move`] for a record of something that already
    /// happened, which nobody waits on: it waits up to `[evidence] defer_ms`
    /// for others like it and commits with them, never in a batch a caller
    /// waits on. It returns once that commit is durable.
    pub async fn append_after_the_fact(
        &self,
        es: Vec<NewEvent>,
        action_move: ActionMove,
    ) -> Result<(Vec<CommittedEvent>, bool), EvidenceError> {
        let done = self.send(es, None, Some(action_move), true).await?;
        Ok((done.events, done.moved))
    }

    async fn send(
        &self,
        es: Vec<NewEvent>,
        action: Option<NewAction>,
        action_move: Option<ActionMove>,
        deferrable: bool,
    ) -> Result<writer::Done, EvidenceError> {
        let events = es
            .into_iter()
            .map(PreparedEvent::new)
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        let stopped = || EvidenceError::Unavailable("evidence writer stopped".into());
        self.inner
            .tx
            .send(writer::Request {
                events,
                action,
                action_move,
                deferrable,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    pub async fn events_for_action(&self, id: Uuid) -> Result<Vec<StoredEvent>, EvidenceError> {
        self.inner
            .store
            .events_for_action(id)
            .await?
            .into_iter()
            .map(stored)
            .collect()
    }

    /// Committed events with `start <= seq < end` (pending ones included).
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<StoredEvent>, EvidenceError> {
        self.inner
            .store
            .events_range(start, end)
            .await?
            .into_iter()
            .map(stored)
            .collect()
    }

    /// Number of committed events (the next seq).
    pub async fn committed_size(&self) -> Result<u64, EvidenceError> {
        Ok(self.inner.store.event_count().await?)
    }

    /// The C2SP verifier key, `name+keyhash+base64`.
    pub fn verifier_key(&self) -> String {
        self.inner.key.verifier_key().to_owned()
    }

    pub fn origin(&self) -> &str {
        self.inner.key.origin()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether this process currently integrates and signs.
    pub fn is_integrator(&self) -> bool {
        self.inner.is_leader.load(Ordering::SeqCst)
    }

    pub async fn checkpoint(&self) -> Result<Option<SignedCheckpoint>, EvidenceError> {
        Ok(self
            .inner
            .store
            .latest_checkpoint()
            .await?
            .map(|c| SignedCheckpoint {
                size: c.size,
                root_hash: c.root_hash,
                note: c.note,
            }))
    }

    pub async fn state(&self, seq: u64) -> Result<EntryState, EvidenceError> {
        Ok(match self.checkpoint().await? {
            Some(c) if c.size > seq => EntryState::Integrated {
                checkpoint_size: c.size,
            },
            _ => EntryState::Pending,
        })
    }

    /// Waits until a checkpoint covers `seq`.
    pub async fn wait_integrated(
        &self,
        seq: u64,
        timeout: Duration,
    ) -> Result<SignedCheckpoint, EvidenceError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watch = self.inner.integrated.clone();
        loop {
            if let Some(c) = self.checkpoint().await? {
                if c.size > seq {
                    return Ok(c);
                }
            }
            // Another replica may be the integrator, so poll as well as watch.
            let tick = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                _ = watch.changed() => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => return Err(EvidenceError::NotIntegrated(seq)),
            }
        }
    }

    /// On a graceful stop: has every committed event integrated under a
    /// signed checkpoint now, rather than at the next timer, so the last
    /// seconds of decisions are provable after the stop. The integrator
    /// (here or on another replica) signs; this waits up to `timeout`.
    /// Returns the checkpoint that covers them (`None`: the log is empty).
    pub async fn final_checkpoint(
        &self,
        timeout: Duration,
    ) -> Result<Option<SignedCheckpoint>, EvidenceError> {
        let size = self.committed_size().await?;
        if size == 0 {
            return Ok(None);
        }
        if let Some(c) = self.checkpoint().await? {
            if c.size >= size {
                return Ok(Some(c));
            }
        }
        self.inner.sign_now.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        self.wait_integrated(size - 1, timeout).await.map(Some)
    }

    async fn integrated_size(&self) -> Result<u64, EvidenceError> {
        Ok(self.checkpoint().await?.map_or(0, |c| c.size))
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves; `size`
    /// must not exceed the latest checkpoint.
    pub async fn prove_inclusion(
        &self,
        index: u64,
        size: u64,
    ) -> Result<InclusionProof, EvidenceError> {
        let integrated = self.integrated_size().await?;
        if index >= size || size > integrated {
            return Err(EvidenceError::OutOfRange(format!(
                "need index < size <= {integrated} (the latest checkpoint), got index {index}, size {size}"
            )));
        }
        prove_inclusion_in(&self.inner.store, index, size).await
    }

    /// Consistency proof from the tree of `from` leaves to the one of `to`.
    pub async fn prove_consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, EvidenceError> {
        let integrated = self.integrated_size().await?;
        if from > to || to > integrated {
            return Err(EvidenceError::OutOfRange(format!(
                "need from <= to <= {integrated} (the latest checkpoint), got from {from}, to {to}"
            )));
        }
        let (hashes, from_root, to_root) = merkle::over_store(&self.inner.store, |read| {
            let r = FnReader(read);
            // A proof from the empty tree is empty (RFC 9162 2.1.4).
            let proof = if from == 0 {
                Vec::new()
            } else {
                tlog::prove_tree(to, from, &r)?
            };
            Ok((proof, tlog::tree_hash(from, &r)?, tlog::tree_hash(to, &r)?))
        })
        .await?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: from_root.0,
            to_root: to_root.0,
            hashes: hashes.into_iter().map(|h| h.0).collect(),
        })
    }
}

/// Inclusion proof of leaf `index` in the tree of `size` leaves, from the
/// tree hashes in `store`, for read-only tools that do not open the log.
/// The caller checks it against a signed checkpoint: nothing stored is trusted.
pub async fn prove_inclusion_in(
    store: &Store,
    index: u64,
    size: u64,
) -> Result<InclusionProof, EvidenceError> {
    if index >= size {
        return Err(EvidenceError::OutOfRange(format!(
            "need index < size, got index {index}, size {size}"
        )));
    }
    let (hashes, root, leaf) = merkle::over_store(store, |read| {
        let r = FnReader(read);
        let proof = tlog::prove_record(size, index, &r)?;
        let root = tlog::tree_hash(size, &r)?;
        let leaf = r.read_hashes_one(tlog::stored_hash_index(0, index))?;
        Ok((proof, root, leaf))
    })
    .await?;
    Ok(InclusionProof {
        index,
        tree_size: size,
        leaf_hash: leaf.0,
        root_hash: root.0,
        hashes: hashes.into_iter().map(|h| h.0).collect(),
    })
}

fn stored(row: crate::store::EventRow) -> Result<StoredEvent, EvidenceError> {
    StoredEvent::from_canonical(row.canonical, row.leaf_hash)
}

impl FnReader<'_> {
    fn read_hashes_one(&self, index: u64) -> Result<tlog::Hash, tlog::Error> {
        use tlog::HashReader;
        self.read_hashes(&[index])?
            .pop()
            .ok_or(tlog::Error::IndexesNotInTree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever makes the store unavailable (sqlx's pool, the embedded
    /// store's append thread) makes the log unavailable: callers answer
    /// 503 and fail closed.
    #[test]
    fn an_unavailable_store_is_an_unavailable_log() {
        let unavailable = [
            StoreError::AppenderGone,
            StoreError::Unavailable(sqlx::Error::PoolTimedOut),
        ];
        for e in unavailable {
            assert!(matches!(
                EvidenceError::from(e),
                EvidenceError::Unavailable(_)
            ));
        }
        assert!(matches!(
            EvidenceError::from(StoreError::Corrupt("x".into())),
            EvidenceError::Corrupt(_)
        ));
    }
}
