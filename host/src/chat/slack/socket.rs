//! Socket Mode: for hosts without public ingress, the host dials Slack
//! (`apps.connections.open`, then a websocket), acks each envelope and
//! reconnects when Slack says `disconnect`. Hands payloads to
//! `SlackReviews`; never logs the app token or the ticketed URL.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::client::SlackClient;
use super::config::SlackSecret;
use super::interactivity::SlackReviews;

/// A connection this quiet for this long is presumed dead (Slack pings
/// far more often).
const IDLE_LIMIT: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Stops the Socket Mode task when dropped.
pub struct SocketMode {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SocketMode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SocketMode")
    }
}

impl SocketMode {
    /// Connects in the background and keeps reconnecting.
    pub fn start(
        reviews: Arc<SlackReviews>,
        client: SlackClient,
        app_token: SlackSecret,
    ) -> SocketMode {
        SocketMode {
            task: tokio::spawn(run(reviews, client, app_token)),
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    /// Slack asked us to reconnect (`disconnect` envelope): no backoff.
    Disconnect(String),
    Closed,
    Failed(String),
}

async fn run(reviews: Arc<SlackReviews>, client: SlackClient, app_token: SlackSecret) {
    let mut failures: u32 = 0;
    loop {
        let ended = match client.open_socket(&app_token).await {
            Ok(url) => connection(&reviews, url).await,
            Err(e) => Ended::Failed(e.to_string()),
        };
        match ended {
            Ended::Disconnect(reason) => {
                tracing::info!(reason = %reason, "slack socket mode: disconnect requested; reconnecting");
                failures = 0;
                continue;
            }
            Ended::Closed => {
                tracing::info!("slack socket mode: connection closed; reconnecting");
                failures = 1;
            }
            Ended::Failed(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %error, failures, "slack socket mode: connection failed");
            }
        }
        let wait = Duration::from_millis(500)
            .saturating_mul(1u32 << failures.min(6))
            .min(MAX_BACKOFF);
        tokio::time::sleep(wait).await;
    }
}

async fn connection(reviews: &Arc<SlackReviews>, url: reqwest::Url) -> Ended {
    let (socket, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(connected) => connected,
        // The URL carries a ticket: leave it out of the message.
        Err(e) => return Ended::Failed(format!("websocket connect: {e}")),
    };
    tracing::info!("slack socket mode: connected");
    let (mut sink, mut stream) = socket.split();
    // Acks come from handler tasks; one writer keeps frames whole.
    let (acks, mut outbox) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let ended = loop {
        let next = match tokio::time::timeout(IDLE_LIMIT, stream.next()).await {
            Ok(next) => next,
            Err(_) => break Ended::Failed("no traffic; presumed dead".into()),
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(data))) => {
                let _ = acks.send(Message::Pong(data)).await;
                continue;
            }
            Some(Ok(Message::Close(_))) | None => break Ended::Closed,
            Some(Ok(_)) => continue,
            Some(Err(e)) => break Ended::Failed(e.to_string()),
        };
        let envelope = match crate::ijson::value(&text) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "slack socket mode: a frame that is not I-JSON; ignored");
                continue;
            }
        };
        match envelope["type"].as_str() {
            Some("hello") => {
                tracing::debug!("slack socket mode: hello");
                continue;
            }
            Some("disconnect") => {
                break Ended::Disconnect(envelope["reason"].as_str().unwrap_or("unknown").into())
            }
            _ => {}
        }
        let Some(envelope_id) = envelope["envelope_id"].as_str().map(String::from) else {
            continue;
        };
        let reviews = reviews.clone();
        let acks = acks.clone();
        tokio::spawn(async move {
            let ack = if envelope["type"] == "interactive" {
                reviews.handle(envelope["payload"].clone()).await
            } else {
                super::interactivity::Ack::Empty
            };
            let mut frame = json!({"envelope_id": envelope_id});
            if let Some(payload) = ack.payload() {
                frame["payload"] = payload.clone();
            }
            let _ = acks.send(Message::text(frame.to_string())).await;
        });
    };
    drop(acks);
    // Let queued acks go out before the old connection is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
    ended
}
