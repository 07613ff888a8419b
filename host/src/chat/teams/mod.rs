//! Teams: approvals in Microsoft Teams through a Bot Framework bot. Posts
//! Adaptive Cards with `Action.Execute` buttons, verifies every request the
//! Bot Connector sends, and relays clicks to `gate.review`. It announces and
//! relays; the approval rules alone decide.

pub mod auth;
pub mod cards;
pub mod config;
pub mod connector;
pub mod invoke;
pub mod notifier;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{AuthError, BotAuthenticator, BotClaims};
pub use config::{AppSecret, ConversationConfig, TeamsConfig, TeamsConfigError};
pub use connector::{Connector, ConnectorError, Conversation, RetryPolicy};
pub use notifier::TeamsNotifier;
pub use token::{AccessToken, TokenClient, TokenError};

use crate::store::{Store, StoreError};

/// The bot: its clients, key cache and conversations, shared by the
/// notifier and the `/teams/messages` route.
pub struct Teams {
    pub auth: BotAuthenticator,
    pub connector: Connector,
    /// Group → where its cards go.
    conversations: BTreeMap<String, Conversation>,
    store: Store,
}

impl Teams {
    pub fn new(config: &TeamsConfig, store: Store) -> Result<Teams, TeamsConfigError> {
        if config.app_id.trim().is_empty() {
            return Err(TeamsConfigError::EmptyAppId);
        }
        if config.max_attempts == 0 {
            return Err(TeamsConfigError::NoAttempts);
        }
        let secret = config.secret()?;
        let token_url = config::secure_url("token_url", &config.token_url)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // A redirect could carry the bearer token somewhere unconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("actiongate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TeamsConfigError::Client)?;
        let conversations = config
            .conversations
            .iter()
            .map(|(group, c)| Ok((group.clone(), Conversation::from_config(group, c)?)))
            .collect::<Result<_, TeamsConfigError>>()?;
        let tokens = Arc::new(TokenClient::new(
            client.clone(),
            token_url,
            config.app_id.clone(),
            secret,
            config.scope.clone(),
        ));
        Ok(Teams {
            auth: BotAuthenticator::new(client.clone(), config)?,
            connector: Connector::new(
                client,
                tokens,
                RetryPolicy {
                    max_attempts: config.max_attempts,
                    initial_backoff: Duration::from_millis(config.initial_backoff_ms),
                    max_backoff: Duration::from_millis(config.max_backoff_ms),
                },
            ),
            conversations,
            store,
        })
    }

    /// The distinct conversations of `groups` (groups without one are skipped).
    pub fn conversations_of<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a String>,
    ) -> Vec<&Conversation> {
        let mut out: Vec<&Conversation> = Vec::new();
        for group in groups {
            if let Some(c) = self.conversations.get(group) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The params reviewers may change on `action_id` now, for the cards
    /// this bot posts (none when it is not held for approval).
    pub async fn modifiable_params(&self, action_id: &str) -> Result<Vec<String>, StoreError> {
        let Some(row) = self.store.action(action_id).await? else {
            return Ok(Vec::new());
        };
        Ok(crate::gate::ActionRecord::decode(row)?
            .modifiable_params()
            .to_vec())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
