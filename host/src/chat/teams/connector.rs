//! The Bot Connector REST API: post and update activities in a conversation
//! with the bot's bearer token, retrying 429 and 5xx a bounded number of
//! times. Sends only to configured service URLs, never to one a request names.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::config::{secure_url, ConversationConfig, TeamsConfigError};
use super::token::{TokenClient, TokenError};

/// A conversation the bot may post to, from config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conversation {
    service_url: Url,
    conversation_id: String,
}

impl Conversation {
    pub fn from_config(
        group: &str,
        config: &ConversationConfig,
    ) -> Result<Conversation, TeamsConfigError> {
        let service_url = secure_url(
            &format!("conversations.{group}.service_url"),
            &config.service_url,
        )?;
        let conversation_id = config.conversation_id.trim().to_string();
        if conversation_id.is_empty() {
            return Err(TeamsConfigError::EmptyConversation {
                group: group.into(),
            });
        }
        Ok(Conversation {
            service_url,
            conversation_id,
        })
    }

    /// Rebuilds a conversation remembered in the store (it came from config).
    pub fn remembered(service_url: &str, conversation_id: &str) -> Option<Conversation> {
        Some(Conversation {
            service_url: Url::parse(service_url).ok()?,
            conversation_id: conversation_id.to_string(),
        })
    }

    pub fn service_url(&self) -> &str {
        self.service_url.as_str()
    }

    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// `{serviceUrl}/v3/conversations/{id}/activities[/{activityId}]`,
    /// each id one percent-encoded path segment.
    fn activities_url(&self, activity_id: Option<&str>) -> Url {
        let mut url = self.service_url.clone();
        {
            let mut segments = url.path_segments_mut().expect("http(s) URLs have a path");
            segments.pop_if_empty();
            segments.extend(["v3", "conversations", &self.conversation_id, "activities"]);
            if let Some(id) = activity_id {
                segments.push(id);
            }
        }
        url
    }
}

/// Attempts and waits for one Connector call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// No wait is longer, a `Retry-After` included.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `failed + 1`: `initial * 2^(failed-1)`, capped.
    fn backoff(&self, failed: u32, hint: Option<Duration>) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .max(hint.unwrap_or(Duration::ZERO))
            .min(self.max_backoff)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("the Connector refused the request with HTTP {status} after {attempts} attempt(s); not retried")]
    Rejected { status: u16, attempts: u32 },
    #[error("gave up after {attempts} attempt(s); last failure: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("no bot token: {0}")]
    Token(#[source] TokenError),
    #[error("the Connector's answer is malformed: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct ResourceResponse {
    id: String,
}

/// The Connector client.
pub struct Connector {
    client: reqwest::Client,
    tokens: Arc<TokenClient>,
    retry: RetryPolicy,
}

impl Connector {
    pub fn new(client: reqwest::Client, tokens: Arc<TokenClient>, retry: RetryPolicy) -> Self {
        Connector {
            client,
            tokens,
            retry,
        }
    }

    /// Posts `activity` to the conversation; returns the new activity's id.
    pub async fn post_activity(
        &self,
        to: &Conversation,
        activity: &serde_json::Value,
    ) -> Result<String, ConnectorError> {
        let body = self
            .send(Method::POST, to.activities_url(None), activity)
            .await?;
        let created: ResourceResponse = serde_json::from_slice(&body)
            .map_err(|e| ConnectorError::Malformed(format!("no activity id: {e}")))?;
        Ok(created.id)
    }

    /// Replaces activity `activity_id` (e.g. a card) in the conversation.
    pub async fn update_activity(
        &self,
        to: &Conversation,
        activity_id: &str,
        activity: &serde_json::Value,
    ) -> Result<(), ConnectorError> {
        let mut activity = activity.clone();
        if let Some(object) = activity.as_object_mut() {
            object.insert("id".into(), activity_id.into());
        }
        self.send(Method::PUT, to.activities_url(Some(activity_id)), &activity)
            .await
            .map(|_| ())
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, ConnectorError> {
        let origin = url.origin().ascii_serialization();
        let mut attempt = 0;
        // One refused token is replaced once; a second refusal is final.
        let mut token_renewed = false;
        loop {
            attempt += 1;
            let (failure, hint) = match self.tokens.bearer().await {
                Err(e) if e.is_transient() => (e.to_string(), None),
                Err(e) => return Err(ConnectorError::Token(e)),
                Ok(token) => {
                    let sent = self
                        .client
                        .request(method.clone(), url.clone())
                        .bearer_auth(token.expose())
                        .json(body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status().is_success() => {
                            tracing::debug!(%origin, %method, attempt, status = response.status().as_u16(), "teams: connector call done");
                            return response.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                                ConnectorError::Malformed(e.without_url().to_string())
                            });
                        }
                        Ok(response)
                            if response.status() == StatusCode::UNAUTHORIZED && !token_renewed =>
                        {
                            token_renewed = true;
                            self.tokens.forget(&token).await;
                            (
                                "HTTP 401; renewing the bot token".to_string(),
                                Some(Duration::ZERO),
                            )
                        }
                        Ok(response) => {
                            let status = response.status();
                            if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error()
                            {
                                tracing::warn!(%origin, %method, attempt, status = status.as_u16(), "teams: connector refused; not retrying");
                                return Err(ConnectorError::Rejected {
                                    status: status.as_u16(),
                                    attempts: attempt,
                                });
                            }
                            (
                                format!("HTTP {}", status.as_u16()),
                                retry_after(response.headers()),
                            )
                        }
                        Err(e) => (e.without_url().to_string(), None),
                    }
                }
            };
            if attempt >= self.retry.max_attempts {
                tracing::warn!(%origin, %method, attempt, %failure, "teams: connector call failed; giving up");
                return Err(ConnectorError::GaveUp {
                    attempts: attempt,
                    last: failure,
                });
            }
            let wait = match hint {
                Some(Duration::ZERO) => Duration::ZERO,
                hint => self.retry.backoff(attempt, hint),
            };
            tracing::warn!(%origin, %method, attempt, %failure, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "teams: connector call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After` in seconds (the Connector sends seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(service_url: &str, id: &str) -> Conversation {
        Conversation::from_config(
            "g",
            &ConversationConfig {
                service_url: service_url.into(),
                conversation_id: id.into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn activity_urls() {
        let c = conversation(
            "https://smba.trafficmanager.net/emea/",
            "19:abc@thread.tacv2",
        );
        assert_eq!(
            c.activities_url(None).as_str(),
            "https://smba.trafficmanager.net/emea/v3/conversations/19:abc@thread.tacv2/activities"
        );
        let c = conversation("http://127.0.0.1:9", "a/b c");
        assert_eq!(
            c.activities_url(Some("1:x")).as_str(),
            "http://127.0.0.1:9/v3/conversations/a%2Fb%20c/activities/1:x"
        );
    }

    #[test]
    fn conversations_need_https_and_an_id() {
        assert!(matches!(
            Conversation::from_config(
                "g",
                &ConversationConfig {
                    service_url: "http://smba.example.com/".into(),
                    conversation_id: "19:x".into()
                }
            ),
            Err(TeamsConfigError::Insecure { .. })
        ));
        assert!(matches!(
            Conversation::from_config(
                "g",
                &ConversationConfig {
                    service_url: "https://smba.example.com/".into(),
                    conversation_id: " ".into()
                }
            ),
            Err(TeamsConfigError::EmptyConversation { .. })
        ));
    }

    #[test]
    fn backoff_doubles_honours_retry_after_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(policy.backoff(1, None), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, None), Duration::from_millis(400));
        assert_eq!(policy.backoff(9, None), Duration::from_secs(1));
        assert_eq!(
            policy.backoff(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }
}
