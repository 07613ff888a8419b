//! Slack: approval cards, review clicks (HTTP interactivity or Socket
//! Mode) and modals, over the gate's review API. Every approval rule is the
//! gate's; Slack only proves who clicked and shows what happened.

pub mod blocks;
pub mod client;
pub mod config;
pub mod identity;
pub mod interactivity;
pub mod notifier;
pub mod socket;
pub mod verify;

use std::sync::Arc;

use axum::Router;

pub use client::{SlackApiError, SlackClient};
pub use config::{Settings, SlackConfig, SlackConfigError, SlackMode, SlackSecret};
pub use interactivity::{Ack, SlackReviews};
pub use notifier::SlackNotifier;
pub use socket::SocketMode;

use crate::gate::Gate;
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

    /// Starts taking reviews: the HTTP route, or a Socket Mode connection.
    pub fn start(self, gate: Arc<Gate>) -> SlackApp {
        let reviews = Arc::new(SlackReviews::new(
            gate,
            self.client.clone(),
            self.settings.clone(),
        ));
        let socket = match (self.settings.mode, &self.settings.app_token) {
            (SlackMode::Socket, Some(token)) => Some(SocketMode::start(
                reviews.clone(),
                self.client.clone(),
                token.clone(),
            )),
            _ => None,
        };
        SlackApp {
            mode: self.settings.mode,
            reviews,
            _socket: socket,
        }
    }
}

/// Slack while the service runs.
pub struct SlackApp {
    mode: SlackMode,
    reviews: Arc<SlackReviews>,
    /// Dropping it stops Socket Mode.
    _socket: Option<SocketMode>,
}

impl std::fmt::Debug for SlackApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApp")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl SlackApp {
    pub fn reviews(&self) -> &Arc<SlackReviews> {
        &self.reviews
    }
}

/// `POST /slack/interactivity` when Slack is on in HTTP mode; no routes otherwise.
pub fn routes(app: Option<&SlackApp>) -> Router {
    match app {
        Some(app) if app.mode == SlackMode::Http => interactivity::routes(app.reviews.clone()),
        _ => Router::new(),
    }
}
