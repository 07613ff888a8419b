//! The sweeper: expires held actions at their TTL (expired fails closed),
//! reminds at half the TTL, and escalates when the route says so. Each is
//! an evidence event and an announcement. State lives in the database, so
//! a restart or a second replica neither loses nor repeats one.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{parse_row, uuid_of};
use crate::action::Route;
use crate::evidence::{Actor, EventKind, NewEvent};
use crate::gate::{Gate, GateError};
use crate::notify::NotificationKind;
use crate::store::ActionChange;

/// Runs `sweep` every `every` until the process ends.
pub fn spawn(gate: Arc<Gate>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&gate).await {
                tracing::warn!(error = %e, "sweep failed; retrying next tick");
            }
        }
    })
}

/// One pass: expiries first, then reminders and escalations.
pub async fn sweep(gate: &Gate) -> Result<(), GateError> {
    let now = Utc::now();
    for row in gate.store.expired_pending(now, 100).await? {
        let mut guard = gate.store.lock_action(&row.id).await?;
        // Re-read under the lock: a review may have decided it meanwhile.
        let Some(current) = gate.store.action(&row.id).await? else {
            continue;
        };
        if current.state != "pending" || current.expires_at.is_none_or(|t| t > now) {
            continue;
        }
        gate.evidence
            .append(NewEvent {
                kind: EventKind::Expired,
                action_id: Some(uuid_of(&row.id)?),
                actor: Actor::system("sweeper"),
                payload: serde_json::json!({"expires_at": current.expires_at, "digest": current.digest}),
            })
            .await?;
        if guard
            .transition("pending", "expired", &ActionChange::default())
            .await?
        {
            guard.commit().await?;
            tracing::info!(action_id = %row.id, "approval expired; failing closed");
            gate.metrics.decided(crate::gate::State::Expired);
            gate.changed(&row.id).await;
            gate.announce(
                gate.notification_for(&row.id, NotificationKind::Expired)
                    .await?,
            );
        }
    }

    for (id, _, _) in gate.store.due_reminders(now).await? {
        let Some(row) = gate.store.action(&id).await? else {
            continue;
        };
        let (_, verdict) = parse_row(&row)?;
        let escalate_to = match &verdict.route {
            Route::RequireApproval(a) => a.escalate_to.clone(),
            _ => Vec::new(),
        };
        // One replica wins the mark; only it records and announces.
        if !gate
            .store
            .mark_reminded(&id, !escalate_to.is_empty(), now)
            .await?
        {
            continue;
        }
        let action_id = Some(uuid_of(&id)?);
        let mut events = vec![NewEvent {
            kind: EventKind::Reminded,
            action_id,
            actor: Actor::system("sweeper"),
            payload: serde_json::json!({"expires_at": row.expires_at}),
        }];
        if !escalate_to.is_empty() {
            events.push(NewEvent {
                kind: EventKind::Escalated,
                action_id,
                actor: Actor::system("sweeper"),
                payload: serde_json::json!({"to": escalate_to, "expires_at": row.expires_at}),
            });
        }
        gate.evidence.append_all(events).await?;
        tracing::info!(action_id = %id, escalated = !escalate_to.is_empty(), "reminder sent");
        gate.announce(
            gate.notification_for(&id, NotificationKind::Reminder)
                .await?,
        );
        if !escalate_to.is_empty() {
            gate.announce(
                gate.notification_for(&id, NotificationKind::Escalated)
                    .await?,
            );
        }
    }
    Ok(())
}
