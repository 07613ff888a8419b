//! The Teams notifier: posts a held action's card to each routed group's
//! conversation and updates the cards it posted as the action moves on.
//! Announces only; never decides, and a failure never blocks other channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::cards::{self, CardState, CardView};
use super::connector::{ConnectorError, Conversation};
use super::Teams;
use crate::notify::{
    Delivered, Notification, NotificationKind, Notifier, NotifyError, NotifyFuture,
};
use crate::store::TeamsActivity;

/// Per action: the time of the newest notification shown, behind a lock
/// held while its cards are sent.
type Latest = Arc<tokio::sync::Mutex<Option<DateTime<Utc>>>>;

/// Actions remembered for ordering; older entries are dropped past this.
const REMEMBERED: usize = 10_000;

pub struct TeamsNotifier {
    teams: Arc<Teams>,
    latest: Mutex<HashMap<String, Latest>>,
}

impl TeamsNotifier {
    pub fn new(teams: Arc<Teams>) -> TeamsNotifier {
        TeamsNotifier {
            teams,
            latest: Mutex::new(HashMap::new()),
        }
    }

    fn latest(&self, action_id: &str) -> Latest {
        let mut latest = self.latest.lock().expect("not poisoned");
        if latest.len() >= REMEMBERED && !latest.contains_key(action_id) {
            // Entries nobody is using; a stale notification for one of
            // those actions could at worst show an older card again.
            latest.retain(|_, l| Arc::strong_count(l) > 1);
        }
        latest.entry(action_id.to_string()).or_default().clone()
    }

    /// Notifications are sent concurrently (one task each), so a card
    /// update for an earlier review may arrive after the final one. Per
    /// action they go out one at a time, and one older than what the cards
    /// already show is dropped, so a decided card never reverts to pending.
    async fn deliver(&self, n: &Notification) -> Result<Delivered, NotifyError> {
        let latest = self.latest(&n.action.action_id);
        let mut shown = latest.lock().await;
        if shown.is_some_and(|at| at > n.occurred_at) {
            tracing::debug!(action_id = %n.action.action_id, kind = n.kind.as_str(), "teams: skipping a superseded notification");
            return Ok(Delivered { attempts: 0 });
        }
        let delivered = self.send(n).await;
        if delivered.is_ok() {
            *shown = Some(n.occurred_at);
        }
        delivered
    }

    async fn send(&self, n: &Notification) -> Result<Delivered, NotifyError> {
        let gave_up = |attempts: u32, last: String| NotifyError::GaveUp {
            notifier: self.name().into(),
            id: n.id.clone(),
            attempts,
            last,
        };
        let action_id = &n.action.action_id;
        let modifiable = self
            .teams
            .modifiable_params(action_id)
            .await
            .map_err(|e| gave_up(0, e.to_string()))?;
        let state = CardState::of_kind(n.kind);
        let card = cards::card(&CardView {
            notification: n,
            state,
            modifiable: &modifiable,
            notice: None,
        });
        let activity = cards::message(card, &format!("{}: {}", n.kind.as_str(), n.action.kind));
        let posted = self
            .teams
            .store()
            .teams_activities(action_id)
            .await
            .map_err(|e| gave_up(0, e.to_string()))?;

        let mut attempts = 0;
        let mut failures: Vec<ConnectorError> = Vec::new();
        // Cards already posted are updated wherever they are.
        for p in &posted {
            let Some(to) = Conversation::remembered(&p.service_url, &p.conversation_id) else {
                continue;
            };
            attempts += 1;
            if let Err(e) = self
                .teams
                .connector
                .update_activity(&to, &p.activity_id, &activity)
                .await
            {
                failures.push(e);
            }
        }
        // New cards only while a decision is still wanted; escalation adds
        // the escalation groups' conversations.
        if state == CardState::Pending {
            let mut groups: Vec<&String> = n.approval.groups.iter().collect();
            if n.kind == NotificationKind::Escalated {
                groups.extend(&n.approval.escalate_to);
            }
            for to in self.teams.conversations_of(groups) {
                if posted
                    .iter()
                    .any(|p| p.conversation_id == to.conversation_id())
                {
                    continue;
                }
                attempts += 1;
                match self.teams.connector.post_activity(to, &activity).await {
                    Ok(activity_id) => {
                        let remembered = TeamsActivity {
                            action_id: action_id.clone(),
                            conversation_id: to.conversation_id().into(),
                            service_url: to.service_url().into(),
                            activity_id,
                        };
                        if let Err(e) = self.teams.store().insert_teams_activity(&remembered).await
                        {
                            // The card is out; only later updates of it are lost.
                            failures.push(ConnectorError::Malformed(format!(
                                "card posted but not remembered: {e}"
                            )));
                        }
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        match failures.first() {
            None => Ok(Delivered {
                attempts: attempts.max(1),
            }),
            Some(ConnectorError::Rejected { status, attempts }) if failures.len() == 1 => {
                Err(NotifyError::Rejected {
                    notifier: self.name().into(),
                    id: n.id.clone(),
                    status: *status,
                    attempts: *attempts,
                })
            }
            Some(_) => Err(gave_up(
                attempts,
                failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }
}

impl Notifier for TeamsNotifier {
    fn name(&self) -> &str {
        "teams"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.deliver(notification))
    }
}
