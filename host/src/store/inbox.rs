//! The web inbox's sign-ins in flight and its sessions (`inbox_logins`,
//! `inbox_sessions`), and the review history it shows. Keys are hashes of
//! what the browser holds; a sign-in is taken out exactly once.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, ReviewRow, Store, StoreError};

/// A sign-in between the redirect to the provider and its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLogin {
    /// sha256 (hex) of the `state` sent to the provider.
    pub state_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The inbox path to land on after signing in.
    pub return_to: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A signed-in person's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxSession {
    /// sha256 (hex) of the cookie's value.
    pub id_hash: String,
    /// The directory email the provider's verified email matched.
    pub email: String,
    /// The provider's group claim (JSON array text), when one is configured.
    pub idp_groups: Option<String>,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a sign-in in flight; sign-ins past their expiry go at the same time.
    pub async fn insert_inbox_login(&self, l: &InboxLogin) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM inbox_logins WHERE expires_at < $1")
            .bind(l.created_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO inbox_logins (state_hash, nonce, pkce_verifier, return_to, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&l.state_hash)
        .bind(&l.nonce)
        .bind(&l.pkce_verifier)
        .bind(&l.return_to)
        .bind(l.created_at)
        .bind(l.expires_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Takes out the sign-in for `state_hash`: a second callback with the
    /// same state finds nothing.
    pub async fn take_inbox_login(
        &self,
        state_hash: &str,
    ) -> Result<Option<InboxLogin>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "DELETE FROM inbox_logins WHERE state_hash = $1
             RETURNING state_hash, nonce, pkce_verifier, return_to, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(pool)
        .await
        .map(|row| row.map(|r| InboxLogin {
            state_hash: r.get("state_hash"),
            nonce: r.get("nonce"),
            pkce_verifier: r.get("pkce_verifier"),
            return_to: r.get("return_to"),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
        })))?)
    }

    pub async fn insert_inbox_session(&self, s: &InboxSession) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO inbox_sessions (id_hash, email, idp_groups, csrf_token, created_at, expires_at, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id_hash)
        .bind(&s.email)
        .bind(&s.idp_groups)
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.ended_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The session whose cookie hashes to `id_hash`, ended or not: the
    /// caller decides what an ended or expired one means.
    pub async fn inbox_session(&self, id_hash: &str) -> Result<Option<InboxSession>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "SELECT id_hash, email, idp_groups, csrf_token, created_at, expires_at, ended_at
             FROM inbox_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(pool)
        .await
        .map(|row| row.map(|r| InboxSession {
            id_hash: r.get("id_hash"),
            email: r.get("email"),
            idp_groups: r.get("idp_groups"),
            csrf_token: r.get("csrf_token"),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
            ended_at: r.get("ended_at"),
        })))?)
    }

    /// Ends a session (logout); `Ok(false)` if it had already ended.
    pub async fn end_inbox_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => sqlx::query(
            "UPDATE inbox_sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(id_hash)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// The newest `limit` reviews by `approver` (an email), newest first.
    pub async fn reviews_by(
        &self,
        approver: &str,
        limit: u32,
    ) -> Result<Vec<ReviewRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "SELECT action_id, approver, decision, reason, digest, channel, at FROM reviews
             WHERE approver = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(approver)
        .bind(i64::from(limit))
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
}
