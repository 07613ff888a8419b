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

/// Events of kinds `$1` in the window `[$2, $3)`, in each dialect.
const PG_MATCH: &str = "kind = ANY($1)
    AND ($2::timestamptz IS NULL OR occurred_at >= $2)
    AND ($3::timestamptz IS NULL OR occurred_at < $3)";
// occurred_at is fixed-width RFC 3339 UTC text in SQLite, so text order is time order.
const SQLITE_MATCH: &str = "kind IN (SELECT value FROM json_each($1))
    AND ($2 IS NULL OR occurred_at >= $2)
    AND ($3 IS NULL OR occurred_at < $3)";

impl Store {
    /// Events of the given kinds that occurred in `window`, in seq order.
    pub async fn events_of_kinds(
        &self,
        kinds: &[&str],
        window: Window,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.select_events(|matching| matching.to_owned(), kinds, window)
            .await
    }

    /// Every event of every action submitted in `window`, in seq order.
    pub async fn events_of_actions_submitted(
        &self,
        window: Window,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.select_events(
            |matching| {
                format!("action_id IN (SELECT action_id FROM evidence_events WHERE {matching})")
            },
            &["submitted"],
            window,
        )
        .await
    }

    /// Events `WHERE filter(condition)`, the condition selecting events of
    /// `kinds` in `window`.
    async fn select_events(
        &self,
        filter: impl Fn(&str) -> String,
        kinds: &[&str],
        window: Window,
    ) -> Result<Vec<EventRow>, StoreError> {
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        match self {
            Store::Postgres(p, ..) => {
                let q = format!(
                    "SELECT {} FROM evidence_events WHERE {} ORDER BY seq",
                    postgres::EVENT_COLUMNS,
                    filter(PG_MATCH)
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
            Store::Sqlite(p, _) => {
                let q = format!(
                    "SELECT {} FROM evidence_events WHERE {} ORDER BY seq",
                    sqlite::EVENT_COLUMNS,
                    filter(SQLITE_MATCH)
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
}
