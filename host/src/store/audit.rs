//! Read-only evidence queries for auditors' tools (replay, export,
//! backtest, diff): events selected by kind, time or action. Selects only.

use chrono::{DateTime, Utc};

use super::{postgres, sqlite, EventRow, Store, StoreError};

/// A half-open window `since <= occurred_at < until`; an open end is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Store {
    /// Events of the given kinds that occurred in `window`, in seq order.
    pub async fn events_of_kinds(
        &self,
        kinds: &[&str],
        window: Window,
    ) -> Result<Vec<EventRow>, StoreError> {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        match self {
            Store::Postgres(p) => {
                let q = format!(
                    "SELECT {} FROM evidence_events
                     WHERE kind = ANY($1)
                       AND ($2::timestamptz IS NULL OR occurred_at >= $2)
                       AND ($3::timestamptz IS NULL OR occurred_at < $3)
                     ORDER BY seq",
                    postgres::EVENT_COLUMNS
                );
                sqlx::query_as::<_, postgres::RawEvent>(&q)
                    .bind(kinds)
                    .bind(window.since)
                    .bind(window.until)
                    .fetch_all(p)
                    .await?
                    .into_iter()
                    .map(postgres::event_row)
                    .collect()
            }
            Store::Sqlite(p) => {
                // occurred_at is fixed-width RFC 3339 UTC text, so text order is time order.
                let q = format!(
                    "SELECT {} FROM evidence_events
                     WHERE kind IN (SELECT value FROM json_each($1))
                       AND ($2 IS NULL OR occurred_at >= $2)
                       AND ($3 IS NULL OR occurred_at < $3)
                     ORDER BY seq",
                    sqlite::EVENT_COLUMNS
                );
                sqlx::query_as::<_, sqlite::RawEvent>(&q)
                    .bind(serde_json::to_string(&kinds).expect("strings serialize"))
                    .bind(window.since.as_ref().map(sqlite::ts))
                    .bind(window.until.as_ref().map(sqlite::ts))
                    .fetch_all(p)
                    .await?
                    .into_iter()
                    .map(sqlite::event_row)
                    .collect()
            }
        }
    }

    /// Every event of every action submitted in `window`, in seq order.
    pub async fn events_of_actions_submitted(
        &self,
        window: Window,
    ) -> Result<Vec<EventRow>, StoreError> {
        match self {
            Store::Postgres(p) => {
                let q = format!(
                    "SELECT {} FROM evidence_events WHERE action_id IN (
                         SELECT action_id FROM evidence_events
                         WHERE kind = 'submitted'
                           AND ($1::timestamptz IS NULL OR occurred_at >= $1)
                           AND ($2::timestamptz IS NULL OR occurred_at < $2))
                     ORDER BY seq",
                    postgres::EVENT_COLUMNS
                );
                sqlx::query_as::<_, postgres::RawEvent>(&q)
                    .bind(window.since)
                    .bind(window.until)
                    .fetch_all(p)
                    .await?
                    .into_iter()
                    .map(postgres::event_row)
                    .collect()
            }
            Store::Sqlite(p) => {
                let q = format!(
                    "SELECT {} FROM evidence_events WHERE action_id IN (
                         SELECT action_id FROM evidence_events
                         WHERE kind = 'submitted'
                           AND ($1 IS NULL OR occurred_at >= $1)
                           AND ($2 IS NULL OR occurred_at < $2))
                     ORDER BY seq",
                    sqlite::EVENT_COLUMNS
                );
                sqlx::query_as::<_, sqlite::RawEvent>(&q)
                    .bind(window.since.as_ref().map(sqlite::ts))
                    .bind(window.until.as_ref().map(sqlite::ts))
                    .fetch_all(p)
                    .await?
                    .into_iter()
                    .map(sqlite::event_row)
                    .collect()
            }
        }
    }
}
