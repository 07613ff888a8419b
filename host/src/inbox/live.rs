//! Live updates of the pending list (server-sent events): the list is sent
//! again whenever it changes for this person. A wakeup only says "look
//! again"; the list is always re-read from the store with the same rules.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use futures_util::Stream;

use super::pages::{PendingFragment, PendingItem};
use super::queue;
use super::session::SignedIn;
use super::App;
use crate::waiters::Subscription;

/// New submissions wake nobody, and other replicas' wakeups can be lost:
/// the list is re-read at least this often.
const RECHECK: Duration = Duration::from_secs(2);

struct Watch {
    app: App,
    me: SignedIn,
    wakeups: Subscription,
    /// What the browser was last sent (ids and versions).
    sent: Option<Vec<(String, String, usize)>>,
    ended: bool,
}

fn fingerprint(items: &[PendingItem]) -> Vec<(String, String, usize)> {
    items
        .iter()
        .map(|i| (i.id.clone(), i.digest.clone(), i.approvals))
        .collect()
}

/// `GET /inbox/live`: `pending` events carry the list's HTML; a
/// `signed-out` event ends the stream when the session does.
pub async fn stream(
    State(app): State<App>,
    me: SignedIn,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let watch = Watch {
        wakeups: app.gate.waiters().subscribe(),
        app,
        me,
        sent: None,
        ended: false,
    };
    let events = futures_util::stream::unfold(watch, |mut w| async move {
        if w.ended {
            return None;
        }
        loop {
            if w.sent.is_some() {
                let _ = tokio::time::timeout(RECHECK, w.wakeups.any()).await;
            }
            let live = match w
                .app
                .gate
                .store()
                .inbox_session(&w.me.session.id_hash)
                .await
            {
                Ok(Some(s)) => s.ended_at.is_none() && s.expires_at > Utc::now(),
                Ok(None) => false,
                // The store is away: say nothing, look again later.
                Err(_) => {
                    w.sent.get_or_insert_with(Vec::new);
                    continue;
                }
            };
            if !live {
                w.ended = true;
                return Some((Ok(Event::default().event("signed-out").data("")), w));
            }
            let items = match queue::pending_items(&w.app, &w.me).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "inbox live list could not be read");
                    w.sent.get_or_insert_with(Vec::new);
                    continue;
                }
            };
            let print = fingerprint(&items);
            if w.sent.as_ref() == Some(&print) {
                continue;
            }
            w.sent = Some(print);
            let html = match (PendingFragment { items: &items }).render() {
                Ok(html) => html,
                Err(e) => {
                    tracing::error!(error = %e, "inbox list fragment failed to render");
                    continue;
                }
            };
            return Some((Ok(Event::default().event("pending").data(html)), w));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
