//! Slack: approval cards, review clicks (HTTP interactivity or Socket
//! Mode) and modals, over the gate's review API. Every approval rule is the
//! gate's; Slack only proves who clicked and shows what happened.

pub mod blocks;
pub mod client;
pub mod config;
pub mod notifier;
pub mod verify;

pub use client::{SlackApiError, SlackClient};
pub use config::{Settings, SlackConfig, SlackConfigError, SlackMode, SlackSecret};
pub use notifier::SlackNotifier;
