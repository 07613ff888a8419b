//! Passkeys per person and their single-use ceremonies (`passkeys`,
//! `passkey_ceremonies`). Passkeys are marked removed, never deleted; a
//! ceremony is taken at most once.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, Store, StoreError};

/// One registered passkey as stored; `passkey` is the WebAuthn library's
/// serialized credential (public key and counter), opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    pub id: String,
    pub person: String,
    /// base64url, as the authenticator names it.
    pub credential_id: String,
    pub label: String,
    pub passkey: String,
    pub sign_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A registration or step-up in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyRow {
    pub id: String,
    pub person: String,
    pub purpose: String,
    pub action_id: Option<String>,
    pub digest: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    pub async fn insert_ceremony(&self, c: &CeremonyRow) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO passkey_ceremonies (id, person, purpose, action_id, digest, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.person)
        .bind(&c.purpose)
        .bind(&c.action_id)
        .bind(&c.digest)
        .bind(&c.state)
        .bind(c.created_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Marks the ceremony used and returns it, once: a second take, another
    /// person's id or another purpose gets `None`.
    pub async fn take_ceremony(
        &self,
        id: &str,
        person: &str,
        purpose: &str,
    ) -> Result<Option<CeremonyRow>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query(
            "UPDATE passkey_ceremonies SET used_at = $1
             WHERE id = $2 AND person = $3 AND purpose = $4 AND used_at IS NULL
             RETURNING id, person, purpose, action_id, digest, state, created_at",
        )
        .bind(Utc::now())
        .bind(id)
        .bind(person)
        .bind(purpose)
        .fetch_optional(pool)
        .await
        .map(|r| r.map(|r| CeremonyRow {
            id: r.get("id"),
            person: r.get("person"),
            purpose: r.get("purpose"),
            action_id: r.get("action_id"),
            digest: r.get("digest"),
            state: r.get("state"),
            created_at: r.get("created_at"),
        })))?;
        Ok(row)
    }

    /// `Ok(false)` when the credential id is already registered (to anyone).
    pub async fn insert_passkey(&self, p: &PasskeyRow) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO passkeys (id, person, credential_id, label, passkey, sign_count, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.person)
        .bind(&p.credential_id)
        .bind(&p.label)
        .bind(&p.passkey)
        .bind(p.sign_count)
        .bind(p.created_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// The person's passkeys in use, oldest first.
    pub async fn passkeys_of(&self, person: &str) -> Result<Vec<PasskeyRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "SELECT id, person, credential_id, label, passkey, sign_count, created_at, last_used_at
             FROM passkeys WHERE person = $1 AND removed_at IS NULL ORDER BY created_at, id",
        )
        .bind(person)
        .fetch_all(pool)
        .await
        .map(|rows| rows
            .into_iter()
            .map(|r| PasskeyRow {
                id: r.get("id"),
                person: r.get("person"),
                credential_id: r.get("credential_id"),
                label: r.get("label"),
                passkey: r.get("passkey"),
                sign_count: r.get("sign_count"),
                created_at: r.get("created_at"),
                last_used_at: r.get("last_used_at"),
            })
            .collect::<Vec<_>>()))?)
    }

    /// Records a use: the new counter and credential state.
    pub async fn passkey_used(
        &self,
        id: &str,
        passkey: &str,
        sign_count: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE passkeys SET passkey = $1, sign_count = $2, last_used_at = $3
             WHERE id = $4 AND removed_at IS NULL",
        )
        .bind(passkey)
        .bind(sign_count)
        .bind(Utc::now())
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// `Ok(false)` when the person has no such passkey in use.
    pub async fn remove_passkey(&self, person: &str, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE passkeys SET removed_at = $1 WHERE id = $2 AND person = $3 AND removed_at IS NULL",
        )
        .bind(Utc::now())
        .bind(id)
        .bind(person)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
