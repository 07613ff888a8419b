//! The sweeper: expires held actions at their TTL (expired fails closed),
//! reminds at half the TTL, and escalates when the route says so. Each is
//! an evidence event and an announcement. It also records spent grants
//! whose outcome never was (`Gate::record_unrecorded_outcomes`). State
//! lives in the database, so a restart or a second replica neither loses
//! nor repeats one.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::action::{Route, State};
use crate::evidence::payload::{self, Payload};
use crate::evidence::Actor;
use crate::gate::{stored_action_id, ActionRecord, Gate, GateError};
use crate::notify::NotificationKind;
use crate::store::ActionChange;

/// Runs `sweep` every `every` until the process ends; a grant spent longer
/// than `unrecorded_after` ago with no outcome is recorded as unknown.
pub fn spawn(
    gate: Arc<Gate>,
    every: Duration,
    unrecorded_after: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&gate).await {
                tracing::warn!(error = %e, "sweep failed; retrying next tick");
            }
            let before = Utc::now() - unrecorded_after;
            if let Err(e) = gate.record_unrecorded_outcomes(before).await {
                tracing::warn!(error = %e, "recording lost outcomes failed; retrying next tick");
            }
        }
    })
}

/// One pass: expiries first, then reminders and escalations.
pub async fn sweep(gate: &Gate) -> Result<(), GateError> {
    let now = Utc::now();
    for row in gate.store().expired_pending(now, 100).await? {
        let id = stored_action_id(&row.id)?;
        let mut guard = gate.store().lock_action(&row.id).await?;
        // Re-read under the lock: a review may have decided it meanwhile.
        let Some(current) = gate.store().action(&row.id).await? else {
            continue;
        };
        if current.state != "pending" || current.expires_at.is_none_or(|t| t > now) {
            continue;
        }
        gate.evidence()
            .append(
                payload::Expired {
                    expires_at: current.expires_at,
                    digest: current.digest.clone(),
                }
                .event(Some(id.uuid()), Actor::system("sweeper")),
            )
            .await?;
        if guard
            .transition("pending", "expired", &ActionChange::default())
            .await?
        {
            guard.commit().await?;
            tracing::info!(action_id = %row.id, "approval expired; failing closed");
            gate.metrics().decided(State::Expired);
            gate.changed(&row.id).await;
            gate.announce(
                gate.notification_for(&id, NotificationKind::Expired)
                    .await?,
            );
        }
    }

    for (id, _, _) in gate.store().due_reminders(now).await? {
        let Some(row) = gate.store().action(&id).await? else {
            continue;
        };
        let record = ActionRecord::decode(row)?;
        let escalate_to = match &record.verdict.route {
            Route::RequireApproval(a) => a.escalate_to.clone(),
            _ => Vec::new(),
        };
        // One replica wins the mark; only it records and announces.
        if !gate
            .store()
            .mark_reminded(&id, !escalate_to.is_empty(), now)
            .await?
        {
            continue;
        }
        let action_id = Some(record.id.uuid());
        let mut events = vec![payload::Reminded {
            expires_at: record.expires_at,
        }
        .event(action_id, Actor::system("sweeper"))];
        if !escalate_to.is_empty() {
            events.push(
                payload::Escalated {
                    to: escalate_to.clone(),
                    expires_at: record.expires_at,
                }
                .event(action_id, Actor::system("sweeper")),
            );
        }
        gate.evidence().append_all(events).await?;
        tracing::info!(action_id = %id, escalated = !escalate_to.is_empty(), "reminder sent");
        gate.announce(
            gate.notification_for(&record.id, NotificationKind::Reminder)
                .await?,
        );
        if !escalate_to.is_empty() {
            gate.announce(
                gate.notification_for(&record.id, NotificationKind::Escalated)
                    .await?,
            );
        }
    }
    Ok(())
}
