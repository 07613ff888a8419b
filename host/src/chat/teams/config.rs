//! `[teams]`: the bot's identity, the Microsoft endpoints it talks to, and
//! which conversation each group's cards go to. Holds the app secret;
//! never shows it in `Debug` or logs.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Url;
use serde::Deserialize;

/// Overrides `app_secret` from the config file.
pub const SECRET_ENV: &str = "ACTIONGATE_TEAMS_APP_SECRET";

/// The Bot Framework's public endpoints and constants (Microsoft's
/// "Authenticate requests with the Bot Connector API").
pub const DEFAULT_TOKEN_URL: &str =
    "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token";
pub const DEFAULT_SCOPE: &str = "https://api.botframework.com/.default";
pub const DEFAULT_OPENID_METADATA_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";
pub const DEFAULT_ISSUER: &str = "https://api.botframework.com";
pub const DEFAULT_CHANNEL_ID: &str = "msteams";

/// The bot's client secret. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AppSecret(String);

impl AppSecret {
    pub fn new(secret: impl Into<String>) -> AppSecret {
        AppSecret(secret.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret(<redacted>)")
    }
}

/// `[teams]` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The bot's Microsoft App ID: the audience of incoming tokens and the
    /// client id of outgoing ones.
    pub app_id: String,
    /// The bot's client secret. Env: ACTIONGATE_TEAMS_APP_SECRET.
    #[serde(default)]
    pub app_secret: Option<AppSecret>,
    /// OAuth client-credentials endpoint for the bot's outgoing token.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    #[serde(default = "default_scope")]
    pub scope: String,
    /// OpenID metadata document whose `jwks_uri` lists the keys incoming
    /// requests are signed with.
    #[serde(default = "default_openid_metadata_url")]
    pub openid_metadata_url: String,
    /// Required `iss` of incoming tokens.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The only channel accepted; the signing key must be endorsed for it.
    #[serde(default = "default_channel_id")]
    pub channel_id: String,
    /// Leeway on `exp` and `nbf` of incoming tokens.
    #[serde(default = "default_clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    /// Signing keys are fetched again after this long.
    #[serde(default = "default_keys_max_age_seconds")]
    pub keys_max_age_seconds: u64,
    /// An unknown `kid` fetches the keys again, but not more often than this,
    /// so forged tokens cannot make the service hammer the metadata endpoint.
    #[serde(default = "default_keys_min_refresh_seconds")]
    pub keys_min_refresh_seconds: u64,
    /// Connector attempts in all, the first included (429 and 5xx retried).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Per HTTP request.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Group name → the conversation its cards are posted to.
    #[serde(default)]
    pub conversations: BTreeMap<String, ConversationConfig>,
}

/// One `[teams.conversations.<group>]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationConfig {
    /// The Connector's base URL for this conversation (the `serviceUrl` of
    /// activities from it), e.g. `https://smba.trafficmanager.net/emea/`.
    pub service_url: String,
    /// e.g. `19:…@thread.tacv2`.
    pub conversation_id: String,
}

fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.into()
}
fn default_scope() -> String {
    DEFAULT_SCOPE.into()
}
fn default_openid_metadata_url() -> String {
    DEFAULT_OPENID_METADATA_URL.into()
}
fn default_issuer() -> String {
    DEFAULT_ISSUER.into()
}
fn default_channel_id() -> String {
    DEFAULT_CHANNEL_ID.into()
}
fn default_clock_skew_seconds() -> u64 {
    // The Bot Framework SDKs allow five minutes.
    300
}
fn default_keys_max_age_seconds() -> u64 {
    24 * 3600
}
fn default_keys_min_refresh_seconds() -> u64 {
    60
}
fn default_max_attempts() -> u32 {
    4
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    10_000
}

impl TeamsConfig {
    /// A config with Microsoft's endpoints and the default limits.
    pub fn new(app_id: impl Into<String>, app_secret: AppSecret) -> TeamsConfig {
        TeamsConfig {
            app_id: app_id.into(),
            app_secret: Some(app_secret),
            token_url: default_token_url(),
            scope: default_scope(),
            openid_metadata_url: default_openid_metadata_url(),
            issuer: default_issuer(),
            channel_id: default_channel_id(),
            clock_skew_seconds: default_clock_skew_seconds(),
            keys_max_age_seconds: default_keys_max_age_seconds(),
            keys_min_refresh_seconds: default_keys_min_refresh_seconds(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_ms: default_timeout_ms(),
            conversations: BTreeMap::new(),
        }
    }

    /// The secret from the environment, else from the file.
    pub fn secret(&self) -> Result<AppSecret, TeamsConfigError> {
        match std::env::var(SECRET_ENV) {
            Ok(secret) if !secret.trim().is_empty() => Ok(AppSecret(secret)),
            _ => self
                .app_secret
                .clone()
                .filter(|s| !s.0.trim().is_empty())
                .ok_or(TeamsConfigError::MissingSecret),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TeamsConfigError {
    #[error("teams: app_id is empty")]
    EmptyAppId,
    #[error("teams: no app secret (set app_secret or {SECRET_ENV})")]
    MissingSecret,
    #[error("teams: {field} is not a valid URL")]
    InvalidUrl { field: String },
    #[error("teams: {field} must be https (plain http only to a loopback host), not {url}")]
    Insecure { field: String, url: String },
    #[error("teams: conversation for group {group} has an empty conversation_id")]
    EmptyConversation { group: String },
    #[error("teams: max_attempts must be at least 1")]
    NoAttempts,
    #[error("teams: building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Parses `url`, requiring https unless it points at this machine: the
/// secret and the bearer token must never cross a network in clear.
pub(crate) fn secure_url(field: &str, url: &str) -> Result<Url, TeamsConfigError> {
    let parsed = Url::parse(url).map_err(|_| TeamsConfigError::InvalidUrl {
        field: field.into(),
    })?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(TeamsConfigError::Insecure {
            field: field.into(),
            url: parsed.origin().ascii_serialization(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_redaction() {
        let config: TeamsConfig = toml::from_str(
            r#"
            app_id = "11111111-2222-3333-4444-555555555555"
            app_secret = "s3cr3t-value"
            [conversations.security]
            service_url = "https://smba.trafficmanager.net/emea/"
            conversation_id = "19:abc@thread.tacv2"
        "#,
        )
        .unwrap();
        assert_eq!(config.issuer, DEFAULT_ISSUER);
        assert_eq!(config.channel_id, "msteams");
        assert_eq!(config.clock_skew_seconds, 300);
        let text = format!("{config:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(toml::from_str::<TeamsConfig>("app_id = \"x\"\nsecret = \"y\"").is_err());
    }

    #[test]
    fn urls_must_be_https_off_loopback() {
        assert!(secure_url("token_url", "https://login.example.com/t").is_ok());
        assert!(secure_url("token_url", "http://127.0.0.1:9/t").is_ok());
        assert!(secure_url("token_url", "http://localhost:9/t").is_ok());
        assert!(matches!(
            secure_url("token_url", "http://login.example.com/t"),
            Err(TeamsConfigError::Insecure { .. })
        ));
        assert!(matches!(
            secure_url("token_url", "not a url"),
            Err(TeamsConfigError::InvalidUrl { .. })
        ));
    }
}
