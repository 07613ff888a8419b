//! Slack's bookkeeping: card locations per action and handled request
//! signatures. Not evidence; never holds a review or a decision.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, Store, StoreError};

/// Where one card of an action lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackMessageRow {
    pub action_id: String,
    pub channel: String,
    pub ts: String,
    pub rendered_at: DateTime<Utc>,
    pub is_final: bool,
}

impl Store {
    /// Records a posted card. False when the action already has a card in
    /// `channel` (the first one stays).
    pub async fn insert_slack_message(&self, row: &SlackMessageRow) -> Result<bool, StoreError> {
        let sql = "INSERT INTO slack_messages (action_id, channel, ts, rendered_at, is_final) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (action_id, channel) DO NOTHING";
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(&row.action_id)
            .bind(&row.channel)
            .bind(&row.ts)
            .bind(row.rendered_at)
            .bind(row.is_final)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Every card of `action_id`.
    pub async fn slack_messages(
        &self,
        action_id: &str,
    ) -> Result<Vec<SlackMessageRow>, StoreError> {
        let sql = "SELECT action_id, channel, ts, rendered_at, is_final FROM slack_messages WHERE action_id = $1 ORDER BY channel";
        Ok(on_pool!(self, pool => sqlx::query(sql)
            .bind(action_id)
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|r| SlackMessageRow {
                action_id: r.get("action_id"),
                channel: r.get("channel"),
                ts: r.get("ts"),
                rendered_at: r.get("rendered_at"),
                is_final: r.get("is_final"),
            }).collect()))?)
    }

    /// Claims the right to redraw a card for a notification of `at`: true
    /// unless the card is final or already shows a newer notification.
    pub async fn advance_slack_message(
        &self,
        action_id: &str,
        channel: &str,
        at: DateTime<Utc>,
        is_final: bool,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE slack_messages SET rendered_at = $3, is_final = $4 WHERE action_id = $1 AND channel = $2 AND NOT is_final AND rendered_at <= $3";
        let affected = on_pool!(self, pool => sqlx::query(sql)
            .bind(action_id)
            .bind(channel)
            .bind(at)
            .bind(is_final)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Remembers a verified request's signature. False when it was seen
    /// before: a replay. Forgets signatures older than `forget_before`
    /// (their timestamps are refused anyway).
    pub async fn first_slack_request(
        &self,
        signature: &str,
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM slack_requests WHERE seen_at < $1")
            .bind(forget_before)
            .execute(pool)
            .await
            .map(|_| ()))?;
        let affected = on_pool!(self, pool => sqlx::query(
            "INSERT INTO slack_requests (signature, seen_at) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING",
        )
            .bind(signature)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn cards_advance_in_order_and_stop_when_final() {
        let (_dir, store) = sqlite().await;
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let row = SlackMessageRow {
            action_id: "a1".into(),
            channel: "C1".into(),
            ts: "1.000100".into(),
            rendered_at: t0,
            is_final: false,
        };
        assert!(store.insert_slack_message(&row).await.unwrap());
        assert!(!store
            .insert_slack_message(&SlackMessageRow {
                ts: "2.0".into(),
                ..row.clone()
            })
            .await
            .unwrap());
        let later = t0 + chrono::Duration::seconds(5);
        assert!(store
            .advance_slack_message("a1", "C1", later, false)
            .await
            .unwrap());
        // A notification older than what the card shows is not drawn.
        assert!(!store
            .advance_slack_message("a1", "C1", t0, false)
            .await
            .unwrap());
        assert!(store
            .advance_slack_message("a1", "C1", later, true)
            .await
            .unwrap());
        let newest = later + chrono::Duration::seconds(5);
        assert!(!store
            .advance_slack_message("a1", "C1", newest, false)
            .await
            .unwrap());
        let rows = store.slack_messages("a1").await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].ts, "1.000100");
        assert!(rows[0].is_final);
    }

    #[tokio::test]
    async fn a_request_signature_counts_once() {
        let (_dir, store) = sqlite().await;
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let forget = now - chrono::Duration::minutes(10);
        assert!(store
            .first_slack_request("v0=ab", now, forget)
            .await
            .unwrap());
        assert!(!store
            .first_slack_request("v0=ab", now, forget)
            .await
            .unwrap());
        assert!(store
            .first_slack_request("v0=cd", now, forget)
            .await
            .unwrap());
        // Long after, the old signature is forgotten (its timestamp is stale by then).
        let much_later = now + chrono::Duration::hours(1);
        assert!(store
            .first_slack_request(
                "v0=ab",
                much_later,
                much_later - chrono::Duration::minutes(10)
            )
            .await
            .unwrap());
    }
}
