//! The Slack notifier: posts a card per routed group's channel, redraws it
//! as reviews arrive, threads reminders and broadcasts escalations. It
//! announces only; a failure is returned (the gate records `notify-failed`)
//! and never holds up the approval elsewhere.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::blocks;
use super::client::{SlackApiError, SlackClient};
use super::config::Settings;
use crate::notify::{
    Delivered, Notification, NotificationKind, Notifier, NotifyError, NotifyFuture,
};
use crate::store::{SlackMessageRow, Store};

pub struct SlackNotifier {
    client: SlackClient,
    store: Store,
    settings: Arc<Settings>,
    /// One delivery per action at a time on this replica: the gate announces
    /// concurrently, and a review's redraw must not land after the final one.
    in_flight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "slack";

fn is_final(kind: NotificationKind) -> bool {
    matches!(
        kind,
        NotificationKind::Approved | NotificationKind::Denied | NotificationKind::Expired
    )
}

/// Failures of one delivery, kept going past so every channel gets a try.
#[derive(Default)]
struct Failures {
    attempts: u32,
    last: Option<String>,
}

impl Failures {
    fn note(&mut self, error: impl std::fmt::Display, attempts: u32) {
        self.attempts = self.attempts.max(attempts);
        self.last = Some(error.to_string());
    }
}

impl SlackNotifier {
    pub fn new(client: SlackClient, store: Store, settings: Arc<Settings>) -> SlackNotifier {
        SlackNotifier {
            client,
            store,
            settings,
            in_flight: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn deliver(&self, n: &Notification) -> Result<Delivered, NotifyError> {
        let id = &n.action.action_id;
        let lock = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .entry(id.clone())
            .or_default()
            .clone();
        let result = {
            let _turn = lock.lock().await;
            self.deliver_locked(n).await
        };
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        // Only this map and the delivery above held it: nobody is waiting.
        if Arc::strong_count(&lock) == 2 {
            in_flight.remove(id);
        }
        result
    }

    async fn deliver_locked(&self, n: &Notification) -> Result<Delivered, NotifyError> {
        let mut failures = Failures::default();
        let cards = self
            .store
            .slack_messages(&n.action.action_id)
            .await
            .map_err(|e| self.gave_up(n, 1, e.to_string()))?;
        match n.kind {
            NotificationKind::Pending => {
                let channels = self.settings.channels_for(&n.approval.groups);
                self.post_cards(n, &channels, &cards, &mut failures).await?;
            }
            NotificationKind::Reminder => {
                let text = blocks::reminder_text(n);
                for card in &cards {
                    self.thread_reply(card, &text, false, &mut failures).await;
                }
            }
            NotificationKind::Escalated => {
                let text = blocks::escalation_text(n);
                for card in &cards {
                    // Broadcast: an escalation is never only in a thread.
                    self.thread_reply(card, &text, true, &mut failures).await;
                    self.redraw(n, card, &mut failures).await;
                }
                // The escalation groups get a card of their own to act on.
                let channels = self.settings.channels_for(&n.approval.escalate_to);
                self.post_cards(n, &channels, &cards, &mut failures).await?;
            }
            NotificationKind::Reviewed
            | NotificationKind::Approved
            | NotificationKind::Denied
            | NotificationKind::Expired => {
                if cards.is_empty() && !is_final(n.kind) {
                    // The pending card never made it (e.g. Slack was down): post it now.
                    let channels = self.settings.channels_for(&n.approval.groups);
                    self.post_cards(n, &channels, &cards, &mut failures).await?;
                }
                for card in &cards {
                    self.redraw(n, card, &mut failures).await;
                }
            }
        }
        match failures.last {
            None => Ok(Delivered { attempts: 1 }),
            Some(last) => Err(self.gave_up(n, failures.attempts.max(1), last)),
        }
    }

    fn gave_up(&self, n: &Notification, attempts: u32, last: String) -> NotifyError {
        NotifyError::GaveUp {
            notifier: NAME.into(),
            id: n.id.clone(),
            attempts,
            last,
        }
    }

    /// Posts a card to each of `channels` that has none yet for this action.
    async fn post_cards(
        &self,
        n: &Notification,
        channels: &[String],
        existing: &[SlackMessageRow],
        failures: &mut Failures,
    ) -> Result<(), NotifyError> {
        if channels.is_empty() && existing.is_empty() {
            return Err(NotifyError::Invalid {
                notifier: NAME.into(),
                id: n.id.clone(),
                reason: format!(
                    "no Slack channel is configured for groups {}",
                    n.approval.groups.join(", ")
                ),
            });
        }
        for channel in channels {
            if existing.iter().any(|c| &c.channel == channel) {
                continue;
            }
            let body = json!({
                "channel": channel,
                "text": blocks::card_text(n),
                "blocks": blocks::card(n),
                "unfurl_links": false,
                "unfurl_media": false,
            });
            match self.client.call("chat.postMessage", &body).await {
                Ok(answer) => {
                    let Some(ts) = answer["ts"].as_str() else {
                        failures.note("chat.postMessage answered without a ts", 1);
                        continue;
                    };
                    let row = SlackMessageRow {
                        action_id: n.action.action_id.clone(),
                        // Slack answers with the channel id even when posted by name.
                        channel: answer["channel"].as_str().unwrap_or(channel).to_string(),
                        ts: ts.to_string(),
                        rendered_at: n.occurred_at,
                        is_final: is_final(n.kind),
                    };
                    if let Err(e) = self.store.insert_slack_message(&row).await {
                        failures.note(e, 1);
                    }
                    tracing::info!(notifier = NAME, action_id = %n.action.action_id, channel = %row.channel, "slack card posted");
                }
                Err(e) => self.failed(n, channel, e, failures),
            }
        }
        Ok(())
    }

    /// Redraws a card unless it is final or shows something newer already.
    async fn redraw(&self, n: &Notification, card: &SlackMessageRow, failures: &mut Failures) {
        match self
            .store
            .advance_slack_message(
                &card.action_id,
                &card.channel,
                n.occurred_at,
                is_final(n.kind),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(notifier = NAME, action_id = %card.action_id, kind = n.kind.as_str(), "card already shows a newer or final state");
                return;
            }
            Err(e) => return failures.note(e, 1),
        }
        let body = json!({
            "channel": card.channel,
            "ts": card.ts,
            "text": blocks::card_text(n),
            "blocks": blocks::card(n),
        });
        if let Err(e) = self.client.call("chat.update", &body).await {
            self.failed(n, &card.channel, e, failures);
        }
    }

    async fn thread_reply(
        &self,
        card: &SlackMessageRow,
        text: &str,
        broadcast: bool,
        failures: &mut Failures,
    ) {
        let body = json!({
            "channel": card.channel,
            "thread_ts": card.ts,
            "reply_broadcast": broadcast,
            "text": text,
            "unfurl_links": false,
        });
        if let Err(e) = self.client.call("chat.postMessage", &body).await {
            let attempts = e.attempts();
            tracing::warn!(notifier = NAME, action_id = %card.action_id, channel = %card.channel, error = %e, "slack thread reply failed");
            failures.note(e, attempts);
        }
    }

    fn failed(&self, n: &Notification, channel: &str, e: SlackApiError, failures: &mut Failures) {
        tracing::warn!(notifier = NAME, action_id = %n.action.action_id, channel, kind = n.kind.as_str(), error = %e, "slack notification failed");
        let attempts = e.attempts();
        failures.note(e, attempts);
    }
}

impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        NAME
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.deliver(notification))
    }
}
