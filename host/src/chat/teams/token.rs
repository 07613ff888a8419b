//! Outgoing auth: the bot's access token by the OAuth client-credentials
//! flow, cached until shortly before it expires. Never logs the secret or
//! the token.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::config::AppSecret;

/// A bearer token for the Connector. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    #[error("token endpoint answered HTTP {status}")]
    Status { status: u16 },
    #[error("token endpoint answer is malformed: {0}")]
    Malformed(String),
}

impl TokenError {
    /// Worth another try later: the endpoint was down or busy, not refusing us.
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Transport(_) => true,
            TokenError::Status { status } => {
                *status == StatusCode::TOO_MANY_REQUESTS.as_u16() || *status >= 500
            }
            TokenError::Malformed(_) => false,
        }
    }
}

/// The OAuth 2.0 token response (RFC 6749 §5.1). Azure AD v1 sent
/// `expires_in` as a string, so both forms are read.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: ExpiresIn,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Fetches and caches the bot's token. One fetch at a time: concurrent
/// callers wait for it instead of each asking the endpoint.
pub struct TokenClient {
    client: reqwest::Client,
    token_url: Url,
    app_id: String,
    secret: AppSecret,
    scope: String,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("token_url", &self.token_url.origin().ascii_serialization())
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// How long before expiry a cached token is replaced: five minutes, or
/// half the lifetime of a short-lived one.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 2).min(Duration::from_secs(300))
}

impl TokenClient {
    pub fn new(
        client: reqwest::Client,
        token_url: Url,
        app_id: String,
        secret: AppSecret,
        scope: String,
    ) -> TokenClient {
        TokenClient {
            client,
            token_url,
            app_id,
            secret,
            scope,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for a while yet: the cached one, or a fresh one.
    pub async fn bearer(&self) -> Result<AccessToken, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - refresh_margin(lifetime),
        });
        Ok(token)
    }

    /// Drops `token` from the cache, e.g. after the Connector refused it;
    /// a newer token someone else fetched meanwhile is kept.
    pub async fn forget(&self, token: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == token) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), TokenError> {
        let response = self
            .client
            .post(self.token_url.clone())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.app_id.as_str()),
                ("client_secret", self.secret.expose()),
                ("scope", self.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|e| TokenError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(
                origin = %self.token_url.origin().ascii_serialization(),
                status = status.as_u16(),
                "teams: token request refused"
            );
            return Err(TokenError::Status {
                status: status.as_u16(),
            });
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| TokenError::Malformed(e.without_url().to_string()))?;
        if body
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(TokenError::Malformed("token_type is not Bearer".into()));
        }
        if body.access_token.is_empty() {
            return Err(TokenError::Malformed("access_token is empty".into()));
        }
        let seconds = match body.expires_in {
            ExpiresIn::Number(n) => n,
            ExpiresIn::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| TokenError::Malformed("expires_in is not a number".into()))?,
        };
        tracing::debug!(expires_in = seconds, "teams: fetched a bot token");
        Ok((AccessToken(body.access_token), Duration::from_secs(seconds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_shortly_before_expiry() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_never_in_debug() {
        assert_eq!(
            format!("{:?}", AccessToken("eyJsecret".into())),
            "AccessToken(<redacted>)"
        );
    }
}
