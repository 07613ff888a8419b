//! Agents and API keys. Keys are stored as sha256 only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_lane, on_pool, Store, StoreError};

macro_rules! agent_row {
    ($r:expr) => {{
        let r = $r;
        let attributes: String = r.get("attributes");
        serde_json::from_str(&attributes)
            .map_err(|e| StoreError::Corrupt(format!("agent attributes: {e}")))
            .map(|attributes| AgentRow {
                id: r.get("id"),
                owner: r.get("owner"),
                attributes,
                created_at: r.get("created_at"),
                revoked_at: r.get("revoked_at"),
            })
    }};
}

/// (role, subject, the agent when the key is an agent's) from a key_agent row.
macro_rules! key_agent_row {
    ($r:expr) => {{
        let r = $r;
        // No agent row: not an agent key (or its agent is gone).
        let agent = r.get::<Option<String>, _>("id").map(|_| agent_row!(&r));
        (
            r.get::<String, _>("role"),
            r.get::<String, _>("subject"),
            agent,
        )
    }};
}

/// Who a bearer key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Agent,
    Approver,
    Auditor,
    Admin,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Agent => "agent",
            KeyRole::Approver => "approver",
            KeyRole::Auditor => "auditor",
            KeyRole::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "agent" => KeyRole::Agent,
            "approver" => KeyRole::Approver,
            "auditor" => KeyRole::Auditor,
            "admin" => KeyRole::Admin,
            other => return Err(StoreError::Corrupt(format!("unknown key role {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: String,
    pub owner: String,
    pub attributes: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Creates an agent; `Ok(false)` if one with this id exists already.
    pub async fn create_agent(
        &self,
        id: &str,
        owner: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let attributes = serde_json::to_string(attributes).expect("a string map serializes");
        let now = Utc::now();
        let result = on_pool!(self, pool => sqlx::query(
            "INSERT INTO agents (id, owner, attributes, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(owner)
        .bind(attributes)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(result == 1)
    }

    pub async fn agent(&self, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query(
            "SELECT id, owner, attributes, created_at, revoked_at FROM agents WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
        .map(|row| row.map(|r| agent_row!(r))))?;
        row.transpose()
    }

    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows = on_pool!(self, pool => sqlx::query(
            "SELECT id, owner, attributes, created_at, revoked_at FROM agents ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .map(|rows| rows.into_iter().map(|r| agent_row!(r)).collect::<Vec<_>>()))?;
        rows.into_iter().collect()
    }

    /// Revokes an agent and every key it holds. `Ok(false)` if no such live agent.
    pub async fn revoke_agent(&self, id: &str) -> Result<bool, StoreError> {
        let now = Utc::now();
        let changed = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query("UPDATE agents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE role = 'agent' AND subject = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(changed)
        }.await)?;
        Ok(changed == 1)
    }

    pub async fn add_api_key(
        &self,
        key_hash: &str,
        role: KeyRole,
        subject: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO api_keys (key_hash, role, subject, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_hash)
        .bind(role.as_str())
        .bind(subject)
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The role and subject of a live (unrevoked) key and, for an agent key, the agent
    /// (in one query: it is on every agent request).
    pub async fn key_agent(
        &self,
        key_hash: &str,
    ) -> Result<Option<(KeyRole, String, Option<AgentRow>)>, StoreError> {
        const SQL: &str =
            "SELECT k.role, k.subject, a.id, a.owner, a.attributes, a.created_at, a.revoked_at
             FROM api_keys k LEFT JOIN agents a ON k.role = 'agent' AND a.id = k.subject
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL";
        // Every request authenticates: through a lane.
        let row = on_lane!(self, c => sqlx::query(SQL)
            .bind(key_hash)
            .fetch_optional(c)
            .await
            .map(|r| r.map(|r| key_agent_row!(r))));
        let Some((role, subject, agent)) = row else {
            return Ok(None);
        };
        Ok(Some((KeyRole::parse(&role)?, subject, agent.transpose()?)))
    }

    pub async fn key_principal(
        &self,
        key_hash: &str,
    ) -> Result<Option<(KeyRole, String)>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query(
            "SELECT role, subject FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(pool)
        .await
        .map(|row| row.map(|r| (r.get::<String, _>("role"), r.get::<String, _>("subject")))))?;
        row.map(|(role, subject)| Ok((KeyRole::parse(&role)?, subject)))
            .transpose()
    }
}
