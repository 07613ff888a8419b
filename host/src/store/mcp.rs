//! MCP gateway bookkeeping: which held action an agent's tool call is
//! attached to. A pointer, never evidence and never a decision.

use chrono::Utc;

use super::{on_lane, on_pool, Store, StoreError};

impl Store {
    /// The action `agent_id`'s call `call_digest` was last attached to.
    pub async fn mcp_call_action(
        &self,
        agent_id: &str,
        call_digest: &str,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str =
            "SELECT action_id FROM mcp_calls WHERE agent_id = $1 AND call_digest = $2";
        // On every tool call: through a lane (the pool's ping on each
        // connection it took back cost the gateway benchmark 0.2-0.5 ms).
        Ok(on_lane!(self, c => sqlx::query_scalar(SQL)
            .bind(agent_id)
            .bind(call_digest)
            .fetch_optional(c)
            .await))
    }

    /// Attaches the call to `action_id` (replacing an older attachment).
    pub async fn attach_mcp_call(
        &self,
        agent_id: &str,
        call_digest: &str,
        action_id: &str,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO mcp_calls (agent_id, call_digest, action_id, updated_at) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (agent_id, call_digest) DO UPDATE SET action_id = excluded.action_id, updated_at = excluded.updated_at";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(agent_id)
            .bind(call_digest)
            .bind(action_id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
