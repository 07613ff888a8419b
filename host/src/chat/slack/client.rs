//! The Slack Web API client: one POST per method, bearer token, `{ok:false}`
//! as a typed error, bounded retries that honour `Retry-After`. Never logs a
//! token or a request body (cards hold action params).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::config::{Settings, SlackConfigError, SlackSecret};

#[derive(Debug, thiserror::Error)]
pub enum SlackApiError {
    /// Slack answered `{"ok": false, "error": …}`.
    #[error("slack {method}: {error}")]
    Api { method: String, error: String },
    #[error("slack {method}: still rate limited after {attempts} attempt(s)")]
    RateLimited { method: String, attempts: u32 },
    #[error("slack {method}: HTTP {status} after {attempts} attempt(s)")]
    Http {
        method: String,
        status: u16,
        attempts: u32,
    },
    #[error("slack {method}: {detail} (after {attempts} attempt(s))")]
    Transport {
        method: String,
        detail: String,
        attempts: u32,
    },
    #[error("slack {method}: the answer is not a Web API response: {detail}")]
    Malformed { method: String, detail: String },
}

impl SlackApiError {
    /// The `error` string of an `{ok:false}` answer.
    pub fn api_error(&self) -> Option<&str> {
        match self {
            SlackApiError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn attempts(&self) -> u32 {
        match self {
            SlackApiError::RateLimited { attempts, .. }
            | SlackApiError::Http { attempts, .. }
            | SlackApiError::Transport { attempts, .. } => *attempts,
            SlackApiError::Api { .. } | SlackApiError::Malformed { .. } => 1,
        }
    }
}

/// `{ok:false}` errors Slack documents as transient: worth another attempt.
fn transient(error: &str) -> bool {
    matches!(
        error,
        "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "ratelimited"
    )
}

enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
    Empty,
}

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: Url,
    bot_token: SlackSecret,
    max_attempts: u32,
    max_wait: Duration,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("base", &self.base.as_str())
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl SlackClient {
    pub fn new(settings: &Settings) -> Result<SlackClient, SlackConfigError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("actiongate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SlackConfigError::Client)?;
        Ok(SlackClient {
            http,
            base: settings.api_base_url.clone(),
            bot_token: settings.bot_token.clone(),
            max_attempts: settings.max_attempts,
            max_wait: settings.max_retry_wait,
        })
    }

    /// Calls `method` with a JSON body and the bot token; returns the whole
    /// answer (`ok` is true).
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackApiError> {
        self.send(method, &self.bot_token, Body::Json(body)).await
    }

    /// Calls `method` with a form body (methods that take no JSON, e.g.
    /// `users.lookupByEmail`).
    pub async fn call_form(
        &self,
        method: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, SlackApiError> {
        self.send(method, &self.bot_token, Body::Form(form)).await
    }

    /// `apps.connections.open` with the app-level token: a Socket Mode URL.
    pub async fn open_socket(&self, app_token: &SlackSecret) -> Result<Url, SlackApiError> {
        let method = "apps.connections.open";
        let answer = self.send(method, app_token, Body::Empty).await?;
        answer["url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "ws" | "wss"))
            .ok_or_else(|| SlackApiError::Malformed {
                method: method.into(),
                detail: "no websocket url".into(),
            })
    }

    async fn send(
        &self,
        method: &str,
        token: &SlackSecret,
        body: Body<'_>,
    ) -> Result<Value, SlackApiError> {
        let url = self
            .base
            .join(method)
            .map_err(|e| SlackApiError::Malformed {
                method: method.into(),
                detail: e.to_string(),
            })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.http.post(url.clone()).bearer_auth(token.expose());
            let request = match &body {
                // Slack wants the charset spelled out for JSON bodies.
                Body::Json(value) => request
                    .header("content-type", "application/json; charset=utf-8")
                    .body(serde_json::to_vec(value).expect("JSON values serialize")),
                Body::Form(form) => request.form(form),
                Body::Empty => request,
            };
            let (failure, wait) = match request.send().await {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let hint = retry_after(response.headers()).unwrap_or(Duration::from_secs(1));
                    if attempt >= self.max_attempts || hint > self.max_wait {
                        tracing::warn!(
                            method,
                            attempt,
                            retry_after_s = hint.as_secs(),
                            "slack rate limited; giving up"
                        );
                        return Err(SlackApiError::RateLimited {
                            method: method.into(),
                            attempts: attempt,
                        });
                    }
                    (Failure::RateLimited, hint)
                }
                Ok(response) if response.status().is_server_error() => {
                    let status = response.status().as_u16();
                    if attempt >= self.max_attempts {
                        return Err(SlackApiError::Http {
                            method: method.into(),
                            status,
                            attempts: attempt,
                        });
                    }
                    (Failure::Status(status), self.backoff(attempt))
                }
                Ok(response) if !response.status().is_success() => {
                    return Err(SlackApiError::Http {
                        method: method.into(),
                        status: response.status().as_u16(),
                        attempts: attempt,
                    });
                }
                Ok(response) => {
                    let answer: Value =
                        response
                            .json()
                            .await
                            .map_err(|e| SlackApiError::Malformed {
                                method: method.into(),
                                detail: e.without_url().to_string(),
                            })?;
                    match answer.get("ok").and_then(Value::as_bool) {
                        Some(true) => return Ok(answer),
                        Some(false) => {
                            let error = answer["error"].as_str().unwrap_or("unknown").to_string();
                            if !transient(&error) || attempt >= self.max_attempts {
                                tracing::warn!(method, attempt, error = %error, "slack refused the call");
                                return Err(SlackApiError::Api {
                                    method: method.into(),
                                    error,
                                });
                            }
                            (Failure::Api(error), self.backoff(attempt))
                        }
                        None => {
                            return Err(SlackApiError::Malformed {
                                method: method.into(),
                                detail: "no `ok` field".into(),
                            })
                        }
                    }
                }
                Err(error) => {
                    let detail = describe(error);
                    if attempt >= self.max_attempts {
                        return Err(SlackApiError::Transport {
                            method: method.into(),
                            detail,
                            attempts: attempt,
                        });
                    }
                    (Failure::Transport(detail), self.backoff(attempt))
                }
            };
            tracing::info!(method, attempt, failure = %failure, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "slack call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn backoff(&self, failed: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        Duration::from_millis(250)
            .saturating_mul(factor)
            .min(self.max_wait)
    }
}

enum Failure {
    RateLimited,
    Status(u16),
    Api(String),
    Transport(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::RateLimited => f.write_str("HTTP 429"),
            Failure::Status(status) => write!(f, "HTTP {status}"),
            Failure::Api(error) => write!(f, "ok:false {error}"),
            Failure::Transport(detail) => f.write_str(detail),
        }
    }
}

/// Slack sends `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn transient_errors() {
        assert!(transient("internal_error"));
        assert!(!transient("channel_not_found"));
        assert!(!transient("invalid_auth"));
    }
}
