//! The batched appender: one task per process gathers concurrent appends into
//! multi-row append transactions. Never retries a failed batch (a lost COMMIT
//! acknowledgement must not become a duplicate); callers fail closed. Never
//! holds back a request someone waits on: only records of what already
//! happened (`Request::deferrable`) wait, for each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use super::event::{format_time, truncate_micros, CommittedEvent, PreparedEvent};
use super::merkle::leaf_hash;
use super::{EvidenceError, Recorded};
use crate::store::{ActionMove, NewAction, NewRow, Store, StoreKind};

pub(super) type Reply = oneshot::Sender<Result<Done, EvidenceError>>;

/// A committed batch: each request's reply channel and what it committed.
type Committed = Vec<(Reply, Done)>;

/// One caller's events; they commit together or not at all. Its action, if
/// any, is inserted, and its move applied, once they are durable
/// (`Store::append_events`).
pub(super) struct Request {
    pub events: Vec<PreparedEvent>,
    pub action: Option<NewAction>,
    pub action_move: Option<ActionMove>,
    /// A record of something that already happened, which nobody waits
    /// on before going on (the gateway's run outcomes): it waits up to
    /// `Writer::defer` for others like it, to share one durable commit
    /// with them, and never rides in (and lengthens) a batch that someone
    /// waits on.
    pub deferrable: bool,
    pub reply: Reply,
}

/// What one request committed.
pub(super) struct Done {
    pub events: Vec<CommittedEvent>,
    pub outcome: Recorded,
    /// Whether its move applied (false without one).
    pub moved: bool,
}

impl Done {
    fn refused() -> Done {
        Done {
            events: Vec::new(),
            outcome: Recorded::KeyRevoked,
            moved: false,
        }
    }
}

pub(super) struct Writer {
    pub store: Store,
    pub batch_max: usize,
    pub in_flight: usize,
    /// How long a deferrable request may wait for others like it.
    pub defer: Duration,
    /// Wake the integrator after this many local commits.
    pub wake_every: u64,
    pub wake: Arc<Notify>,
}

impl Writer {
    pub async fn run(self, mut rx: mpsc::Receiver<Request>) {
        // Postgres: a few batches in flight, so one batch's round trips and
        // flush overlap the next one's wait for the append lock. SQLite has one
        // write lock and gains nothing.
        let in_flight = match self.store.kind() {
            StoreKind::Postgres => self.in_flight,
            StoreKind::Sqlite => 1,
        };
        let slots = Arc::new(Semaphore::new(in_flight));
        let since_wake = Arc::new(AtomicU64::new(0));
        let this = Arc::new(self);
        // Deferrable requests waiting for each other, and until when.
        let mut held: Vec<Request> = Vec::new();
        let mut until = tokio::time::Instant::now();
        loop {
            let next = if held.is_empty() {
                rx.recv().await
            } else {
                tokio::select! {
                    r = rx.recv() => r,
                    _ = tokio::time::sleep_until(until) => None,
                }
            };
            let mut batch = match next {
                Some(r) if this.holds(&held, &r) => {
                    this.hold(&mut held, &mut until, r);
                    continue;
                }
                // Deferrable, but the held ones are a full batch: all go.
                Some(r) if r.deferrable => {
                    let mut batch = std::mem::take(&mut held);
                    batch.push(r);
                    batch
                }
                Some(r) => vec![r],
                // Their time is up (or the log is closing): they go together.
                None if !held.is_empty() => std::mem::take(&mut held),
                None => break,
            };
            // Wait for a free slot first: requests arriving meanwhile join this
            // batch, except deferrable ones joining a batch someone waits on.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let waited_on = !batch[0].deferrable;
            let mut n: usize = batch.iter().map(|r| r.events.len()).sum();
            while n < this.batch_max {
                match rx.try_recv() {
                    Ok(r) if waited_on && this.holds(&held, &r) => {
                        this.hold(&mut held, &mut until, r);
                    }
                    Ok(r) => {
                        n += r.events.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let this = this.clone();
            let since_wake = since_wake.clone();
            tokio::spawn(async move {
                let result = this.commit(batch, n).await;
                drop(slot);
                this.reply(result, n, &since_wake);
            });
        }
    }

    /// Whether `r` waits with the held requests: it is deferrable, and they
    /// are not a full batch with it (a full batch goes at once).
    fn holds(&self, held: &[Request], r: &Request) -> bool {
        let events = held.iter().map(|h| h.events.len()).sum::<usize>() + r.events.len();
        r.deferrable && !self.defer.is_zero() && events < self.batch_max
    }

    /// Holds `r` with the others; the first starts their wait.
    fn hold(&self, held: &mut Vec<Request>, until: &mut tokio::time::Instant, r: Request) {
        if held.is_empty() {
            *until = tokio::time::Instant::now() + self.defer;
        }
        held.push(r);
    }

    fn reply(
        &self,
        result: Result<Committed, (Vec<Request>, EvidenceError)>,
        n: usize,
        since_wake: &AtomicU64,
    ) {
        match result {
            Ok(committed) => {
                tracing::debug!(
                    events = n,
                    requests = committed.len(),
                    "evidence batch committed"
                );
                if since_wake.fetch_add(n as u64, Ordering::Relaxed) + n as u64 >= self.wake_every {
                    since_wake.store(0, Ordering::Relaxed);
                    self.wake.notify_one();
                }
                for (reply, done) in committed {
                    let _ = reply.send(Ok(done));
                }
            }
            Err((batch, e)) => {
                tracing::warn!(events = n, requests = batch.len(), error = %e, "evidence batch failed");
                for r in batch {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Appends the batch in one transaction; on success each request's reply
    /// channel with its committed events, in order.
    async fn commit(
        &self,
        batch: Vec<Request>,
        n: usize,
    ) -> Result<Committed, (Vec<Request>, EvidenceError)> {
        let occurred_at = truncate_micros(Utc::now());
        let at_text = format_time(&occurred_at);
        // Each request's action (if any) is `actions[i]`; its events name i.
        let mut actions: Vec<&NewAction> = Vec::new();
        let moves: Vec<&ActionMove> = batch
            .iter()
            .filter_map(|r| r.action_move.as_ref())
            .collect();
        let mut owners: Vec<Option<usize>> = Vec::with_capacity(batch.len());
        let mut rows: Vec<NewRow<'_>> = Vec::with_capacity(n);
        for r in &batch {
            let owner = r.action.as_ref().map(|a| {
                actions.push(a);
                actions.len() - 1
            });
            owners.push(owner);
            rows.extend(r.events.iter().map(|e| NewRow { owner, ..e.row() }));
        }
        let appended = self
            .store
            .append_events(occurred_at, &at_text, &rows, &actions, &moves)
            .await;
        drop(actions);
        drop(moves);
        let appended = match appended {
            Ok(a) => a,
            Err(e) => return Err((batch, e.into())),
        };
        // The events of refused actions were not written.
        let written: Vec<NewRow<'_>> = rows
            .into_iter()
            .filter(|r| r.is_written(&appended.refused))
            .collect();
        if appended.leaves.len() != written.len() {
            let e = EvidenceError::Store(format!(
                "store appended {} of {} events",
                appended.leaves.len(),
                written.len()
            ));
            return Err((batch, e));
        }
        let checked = check_leaves(&written, &appended.leaves, &at_text);
        drop(written);
        let canonicals = match checked {
            Ok(c) => c,
            Err(e) => return Err((batch, e)),
        };
        let mut stored = appended.leaves.into_iter().zip(canonicals);
        Ok(batch
            .into_iter()
            .zip(owners)
            .map(|(r, owner)| {
                let outcome = match (&r.action, owner) {
                    (Some(_), Some(i)) if appended.refused.contains(&i) => {
                        return (r.reply, Done::refused());
                    }
                    (Some(a), _) if appended.created.contains(&a.row.id) => Recorded::Created,
                    (Some(_), _) => Recorded::IdempotencyKeyTaken,
                    (None, _) => Recorded::NoAction,
                };
                let moved = r
                    .action_move
                    .as_ref()
                    .is_some_and(|m| appended.moved.contains(&m.id));
                let events = r
                    .events
                    .into_iter()
                    .zip(stored.by_ref())
                    .map(|(e, ((seq, leaf_hash), canonical))| CommittedEvent {
                        seq,
                        occurred_at,
                        leaf_hash,
                        event: e.event,
                        canonical,
                    })
                    .collect();
                (
                    r.reply,
                    Done {
                        events,
                        outcome,
                        moved,
                    },
                )
            })
            .collect())
    }
}

/// Rebuilds each stored event's canonical leaf. INVARIANT: the store built the
/// same leaf we did; if not, say so loudly rather than hand out a hash that
/// proves nothing.
fn check_leaves(
    rows: &[NewRow<'_>],
    stored: &[(u64, [u8; 32])],
    at_text: &str,
) -> Result<Vec<String>, EvidenceError> {
    rows.iter()
        .zip(stored)
        .map(|(row, (seq, stored_leaf))| {
            let canonical = row.canonical(at_text, *seq);
            if leaf_hash(&canonical) != *stored_leaf {
                return Err(EvidenceError::Corrupt(format!(
                    "seq {seq} was stored with a different leaf than the writer built"
                )));
            }
            Ok(canonical)
        })
        .collect()
}
