//! The `[slack]` config section: where cards go, how to reach Slack, which
//! secrets to use. Secrets come from the file or the environment and never
//! appear in `Debug` output or logs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

pub const BOT_TOKEN_ENV: &str = "ACTIONGATE_SLACK_BOT_TOKEN";
pub const SIGNING_SECRET_ENV: &str = "ACTIONGATE_SLACK_SIGNING_SECRET";
pub const APP_TOKEN_ENV: &str = "ACTIONGATE_SLACK_APP_TOKEN";

/// A token or signing secret. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SlackSecret(String);

impl SlackSecret {
    pub fn new(secret: impl Into<String>) -> SlackSecret {
        SlackSecret(secret.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SlackSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlackSecret(<redacted>)")
    }
}

/// How clicks reach the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// Slack POSTs to `/slack/interactivity` (needs public ingress and the
    /// signing secret).
    #[default]
    Http,
    /// The host opens a Socket Mode websocket (needs the app-level token).
    Socket,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub mode: SlackMode,
    /// The Web API base; tests point it at a local fake.
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    /// `xoxb-…`. Env: ACTIONGATE_SLACK_BOT_TOKEN.
    #[serde(default)]
    pub bot_token: Option<SlackSecret>,
    /// For `mode = "http"`. Env: ACTIONGATE_SLACK_SIGNING_SECRET.
    #[serde(default)]
    pub signing_secret: Option<SlackSecret>,
    /// `xapp-…`, for `mode = "socket"`. Env: ACTIONGATE_SLACK_APP_TOKEN.
    #[serde(default)]
    pub app_token: Option<SlackSecret>,
    /// Approver group -> channel id the group's cards go to.
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    /// For routed groups without a channel of their own.
    #[serde(default)]
    pub default_channel: Option<String>,
    /// Deprecated: names added to the one redaction rule set of
    /// `[approvals] redact_params`, which every channel applies.
    #[serde(default)]
    pub redact_params: Option<Vec<String>>,
    /// Refuse clicks from any other workspace.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Map Slack users without a configured `slack_id` with `users.lookupByEmail`.
    #[serde(default = "yes")]
    pub lookup_by_email: bool,
    /// How long a `users.lookupByEmail` answer (found or not) is trusted.
    #[serde(default = "default_user_cache_seconds")]
    pub user_cache_seconds: u64,
    /// Web API attempts per call (rate limits and transient failures).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The longest wait between attempts, whatever `Retry-After` says.
    #[serde(default = "default_max_retry_wait_ms")]
    pub max_retry_wait_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_api_base_url() -> String {
    "https://slack.com/api/".into()
}
fn yes() -> bool {
    true
}
fn default_user_cache_seconds() -> u64 {
    3600
}
fn default_max_attempts() -> u32 {
    3
}
fn default_max_retry_wait_ms() -> u64 {
    30_000
}
fn default_timeout_ms() -> u64 {
    10_000
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("mode", &self.mode)
            .field("api_base_url", &self.api_base_url)
            .field("bot_token", &self.bot_token)
            .field("signing_secret", &self.signing_secret)
            .field("app_token", &self.app_token)
            .field("channels", &self.channels)
            .field("default_channel", &self.default_channel)
            .field("redact_params", &self.redact_params)
            .field("team_id", &self.team_id)
            .field("lookup_by_email", &self.lookup_by_email)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlackConfigError {
    #[error("slack: api_base_url is not an http(s) URL")]
    BaseUrl,
    #[error("slack: no bot token (set bot_token or {BOT_TOKEN_ENV})")]
    NoBotToken,
    #[error("slack: mode = \"http\" needs a signing secret (set signing_secret or {SIGNING_SECRET_ENV})")]
    NoSigningSecret,
    #[error(
        "slack: mode = \"socket\" needs an app-level token (set app_token or {APP_TOKEN_ENV})"
    )]
    NoAppToken,
    #[error("slack: app_token must be an app-level token (`xapp-…`)")]
    NotAppToken,
    #[error("slack: no channel configured (set channels or default_channel)")]
    NoChannels,
    #[error("slack: channel for {group:?} is empty")]
    EmptyChannel { group: String },
    #[error("slack: max_attempts must be at least 1")]
    NoAttempts,
    #[error("slack: building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A `SlackConfig` with its secrets resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: SlackMode,
    pub api_base_url: Url,
    pub bot_token: SlackSecret,
    pub signing_secret: Option<SlackSecret>,
    pub app_token: Option<SlackSecret>,
    pub channels: BTreeMap<String, String>,
    pub default_channel: Option<String>,
    pub team_id: Option<String>,
    pub lookup_by_email: bool,
    pub user_cache: Duration,
    pub max_attempts: u32,
    pub max_retry_wait: Duration,
    pub timeout: Duration,
}

impl SlackConfig {
    /// Resolves secrets (file first, then `env`) and checks the section.
    pub fn settings(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, SlackConfigError> {
        let secret = |given: &Option<SlackSecret>, name: &str| {
            given
                .clone()
                .or_else(|| env(name).map(SlackSecret))
                .filter(|s| !s.0.trim().is_empty())
        };
        let mut base = self.api_base_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let api_base_url = Url::parse(&base).map_err(|_| SlackConfigError::BaseUrl)?;
        if !matches!(api_base_url.scheme(), "http" | "https") {
            return Err(SlackConfigError::BaseUrl);
        }
        let bot_token =
            secret(&self.bot_token, BOT_TOKEN_ENV).ok_or(SlackConfigError::NoBotToken)?;
        let signing_secret = secret(&self.signing_secret, SIGNING_SECRET_ENV);
        let app_token = secret(&self.app_token, APP_TOKEN_ENV);
        match self.mode {
            SlackMode::Http if signing_secret.is_none() => {
                return Err(SlackConfigError::NoSigningSecret)
            }
            SlackMode::Socket => match &app_token {
                None => return Err(SlackConfigError::NoAppToken),
                Some(token) if !token.0.starts_with("xapp-") => {
                    return Err(SlackConfigError::NotAppToken)
                }
                Some(_) => {}
            },
            SlackMode::Http => {}
        }
        if self.channels.is_empty() && self.default_channel.is_none() {
            return Err(SlackConfigError::NoChannels);
        }
        for (group, channel) in self
            .channels
            .iter()
            .map(|(g, c)| (g.as_str(), c))
            .chain(self.default_channel.iter().map(|c| ("default_channel", c)))
        {
            if channel.trim().is_empty() {
                return Err(SlackConfigError::EmptyChannel {
                    group: group.into(),
                });
            }
        }
        if self.max_attempts == 0 {
            return Err(SlackConfigError::NoAttempts);
        }
        Ok(Settings {
            mode: self.mode,
            api_base_url,
            bot_token,
            signing_secret,
            app_token,
            channels: self.channels.clone(),
            default_channel: self.default_channel.clone(),
            team_id: self.team_id.clone(),
            lookup_by_email: self.lookup_by_email,
            user_cache: Duration::from_secs(self.user_cache_seconds),
            max_attempts: self.max_attempts,
            max_retry_wait: Duration::from_millis(self.max_retry_wait_ms),
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

impl Settings {
    /// The channels a card for `groups` goes to, each once, in group order.
    pub fn channels_for<'a>(&self, groups: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for group in groups {
            if let Some(channel) = self.channels.get(group).or(self.default_channel.as_ref()) {
                if !out.contains(channel) {
                    out.push(channel.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SlackConfig {
        toml::from_str(text).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn secrets_from_env_and_never_in_debug() {
        let config = parse(
            r#"
            channels = { data-owners = "C0DATA" }
            bot_token = "xoxb-file-token"
        "#,
        );
        let env = |name: &str| (name == SIGNING_SECRET_ENV).then(|| "s3cret-signing".to_string());
        let settings = config.settings(env).unwrap();
        assert_eq!(settings.bot_token.expose(), "xoxb-file-token");
        assert_eq!(
            settings.signing_secret.as_ref().unwrap().expose(),
            "s3cret-signing"
        );
        for text in [format!("{config:?}"), format!("{settings:?}")] {
            assert!(!text.contains("xoxb-file"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        assert_eq!(settings.api_base_url.as_str(), "https://slack.com/api/");
    }

    #[test]
    fn mode_needs_its_secret() {
        let http = parse(
            r#"
            channels = { g = "C1" }
            bot_token = "xoxb-1"
        "#,
        );
        assert!(matches!(
            http.settings(no_env),
            Err(SlackConfigError::NoSigningSecret)
        ));
        let socket = parse(
            r#"
            mode = "socket"
            channels = { g = "C1" }
            bot_token = "xoxb-1"
            app_token = "xoxb-not-an-app-token"
        "#,
        );
        assert!(matches!(
            socket.settings(no_env),
            Err(SlackConfigError::NotAppToken)
        ));
        let none = parse(
            r#"
            mode = "socket"
            channels = { g = "C1" }
            bot_token = "xoxb-1"
        "#,
        );
        assert!(matches!(
            none.settings(no_env),
            Err(SlackConfigError::NoAppToken)
        ));
    }

    #[test]
    fn channels_for_groups_dedupes_and_falls_back() {
        let config = parse(
            r#"
            channels = { a = "C1", b = "C1", c = "C3" }
            default_channel = "C0"
            bot_token = "xoxb-1"
            signing_secret = "x"
        "#,
        );
        let settings = config.settings(no_env).unwrap();
        let groups: Vec<String> = ["a", "b", "z", "c"].map(String::from).to_vec();
        assert_eq!(settings.channels_for(&groups), vec!["C1", "C0", "C3"]);
    }

    /// The commented `[slack]` section of examples/actiongate.toml, once
    /// uncommented, is a valid config.
    #[test]
    fn the_example_section_is_valid() {
        // Read here, not through `config`, which composes this module's type.
        let example = include_str!("../../../../examples/actiongate.toml");
        let start = example
            .find("#   [slack]")
            .expect("the example documents [slack]");
        let section: String = example[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("#   "))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let mut table: toml::Table = toml::from_str(&section).unwrap();
        let slack: SlackConfig = table.remove("slack").unwrap().try_into().unwrap();
        let settings = slack.settings(no_env).unwrap();
        assert_eq!(settings.mode, SlackMode::Http);
        assert_eq!(settings.channels["security"], "C0456SEC");
    }

    #[test]
    fn unknown_options_refused() {
        assert!(toml::from_str::<SlackConfig>("chanels = {}").is_err());
    }
}
