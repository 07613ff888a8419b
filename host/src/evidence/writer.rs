//! The batched appender: one task per process gathers concurrent appends into
//! one multi-row INSERT transaction. Never retries a failed batch (a lost
//! COMMIT acknowledgement must not become a duplicate); callers fail closed.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, Notify};

use super::event::{truncate_micros, CommittedEvent, PreparedEvent};
use super::merkle::leaf_hash;
use super::EvidenceError;
use crate::store::{EventRow, Store};

pub(super) type Reply = oneshot::Sender<Result<Vec<CommittedEvent>, EvidenceError>>;

/// One caller's events; they commit together or not at all.
pub(super) struct Request {
    pub events: Vec<PreparedEvent>,
    pub reply: Reply,
}

pub(super) struct Writer {
    pub store: Store,
    pub batch_max: usize,
    /// Wake the integrator after this many local commits.
    pub wake_every: u64,
    pub wake: Arc<Notify>,
}

impl Writer {
    pub async fn run(self, mut rx: mpsc::Receiver<Request>) {
        let mut since_wake = 0u64;
        while let Some(first) = rx.recv().await {
            let mut n = first.events.len();
            let mut batch = vec![first];
            while n < self.batch_max {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.events.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let result = self.commit(&batch, n).await;
            match result {
                Ok(committed) => {
                    tracing::debug!(
                        events = n,
                        requests = batch.len(),
                        "evidence batch committed"
                    );
                    since_wake += n as u64;
                    if since_wake >= self.wake_every {
                        since_wake = 0;
                        self.wake.notify_one();
                    }
                    let mut committed = committed.into_iter();
                    for r in batch {
                        let mine: Vec<CommittedEvent> =
                            committed.by_ref().take(r.events.len()).collect();
                        let _ = r.reply.send(Ok(mine));
                    }
                }
                Err(e) => {
                    tracing::warn!(events = n, requests = batch.len(), error = %e, "evidence batch failed");
                    for r in batch {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    async fn commit(
        &self,
        batch: &[Request],
        n: usize,
    ) -> Result<Vec<CommittedEvent>, EvidenceError> {
        let occurred_at = truncate_micros(Utc::now());
        let rows = self
            .store
            .append_events(|first| {
                let mut rows = Vec::with_capacity(n);
                for (i, e) in batch.iter().flat_map(|r| r.events.iter()).enumerate() {
                    let seq = first + i as u64;
                    let canonical = e.canonical(seq, &occurred_at);
                    rows.push(EventRow {
                        seq,
                        occurred_at,
                        kind: e.event.kind.as_str().to_owned(),
                        action_id: e.event.action_id,
                        actor_kind: serde_json::to_value(e.event.actor.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        actor_id: e.event.actor.id.clone(),
                        leaf_hash: leaf_hash(&canonical),
                        canonical,
                    });
                }
                rows
            })
            .await?;
        Ok(rows
            .into_iter()
            .zip(batch.iter().flat_map(|r| r.events.iter()))
            .map(|(row, e)| CommittedEvent {
                seq: row.seq,
                occurred_at: row.occurred_at,
                leaf_hash: row.leaf_hash,
                event: e.event.clone(),
                canonical: row.canonical,
            })
            .collect())
    }
}
