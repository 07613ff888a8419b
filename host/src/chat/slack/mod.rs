//! Slack: approval cards, review clicks (HTTP interactivity or Socket
//! Mode) and modals, over the gate's review API. Every approval rule is the
//! gate's; Slack only proves who clicked and shows what happened.

pub mod blocks;
pub mod client;
pub mod config;
pub mod identity;
pub mod notifier;
pub mod verify;

use std::sync::Arc;

pub use client::{SlackApiError, SlackClient};
pub use config::{Settings, SlackConfig, SlackConfigError, SlackMode, SlackSecret};
pub use notifier::SlackNotifier;

use crate::notify::Notifier;
use crate::store::Store;

/// Slack before the gate exists: enough to notify.
#[derive(Debug, Clone)]
pub struct Slack {
    settings: Arc<Settings>,
    client: SlackClient,
    store: Store,
}

impl Slack {
    /// Checks the `[slack]` section, with secrets from the process environment.
    pub fn new(config: &SlackConfig, store: Store) -> Result<Slack, SlackConfigError> {
        let settings = config.settings(|name| std::env::var(name).ok())?;
        let client = SlackClient::new(&settings)?;
        Ok(Slack {
            settings: Arc::new(settings),
            client,
            store,
        })
    }

    pub fn notifier(&self) -> Arc<dyn Notifier> {
        Arc::new(SlackNotifier::new(
            self.client.clone(),
            self.store.clone(),
            self.settings.clone(),
        ))
    }
}
