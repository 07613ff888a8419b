//! The Teams cards posted per held action (`teams_activities`): inserted
//! once per action and conversation, read to update them; never deleted.

use chrono::Utc;
use sqlx::Row as _;

use super::{on_pool, Store, StoreError};

/// One card the bot posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsActivity {
    pub action_id: String,
    pub conversation_id: String,
    pub service_url: String,
    pub activity_id: String,
}

impl Store {
    /// Remembers a posted card. `Ok(false)` when one was already remembered
    /// for this action and conversation (the first one stays).
    pub async fn insert_teams_activity(&self, a: &TeamsActivity) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO teams_activities (action_id, conversation_id, service_url, activity_id, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (action_id, conversation_id) DO NOTHING",
        )
        .bind(&a.action_id)
        .bind(&a.conversation_id)
        .bind(&a.service_url)
        .bind(&a.activity_id)
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// The cards posted for `action_id`, oldest first.
    pub async fn teams_activities(
        &self,
        action_id: &str,
    ) -> Result<Vec<TeamsActivity>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "SELECT action_id, conversation_id, service_url, activity_id FROM teams_activities
             WHERE action_id = $1 ORDER BY created_at, conversation_id",
        )
        .bind(action_id)
        .fetch_all(pool)
        .await
        .map(|rows| rows
            .into_iter()
            .map(|r| TeamsActivity {
                action_id: r.get("action_id"),
                conversation_id: r.get("conversation_id"),
                service_url: r.get("service_url"),
                activity_id: r.get("activity_id"),
            })
            .collect::<Vec<_>>()))?)
    }
}
