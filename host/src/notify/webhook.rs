//! webhook: delivers notifications as Standard Webhooks (signed POSTs) with
//! bounded retries. Never logs the secret, nor the URL beyond its origin.

use std::fmt;
use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Delivered, Notification, Notifier, NotifyError, NotifyFuture};

const SECRET_PREFIX: &str = "whsec_";

/// A `whsec_<base64>` signing secret: 24 to 64 bytes, as the spec asks.
/// Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WebhookSecret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret must start with `whsec_`")]
    MissingPrefix,
    #[error("webhook secret is not valid base64 after `whsec_`")]
    NotBase64,
    #[error("webhook secret is {len} bytes; Standard Webhooks asks for 24 to 64")]
    BadLength { len: usize },
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        // Padding is optional in the wild (the reference verifiers add it).
        let lenient = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let bytes = lenient
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::BadLength { len: bytes.len() });
        }
        Ok(WebhookSecret(bytes))
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = SecretError;
    fn try_from(text: String) -> Result<Self, SecretError> {
        WebhookSecret::parse(&text)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The `webhook-signature` value for one attempt: `v1,` and the base64
/// HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// One `[[notify.webhooks]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names this webhook in logs and evidence (`webhook:<name>`).
    #[serde(default = "default_name")]
    pub name: String,
    pub url: String,
    pub secret: WebhookSecret,
    /// Attempts in all, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// No wait is longer, a `Retry-After` included.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Per attempt; the spec suggests 15 to 30 s.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_name() -> String {
    "default".into()
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_timeout_ms() -> u64 {
    15_000
}

impl WebhookConfig {
    /// A config with the defaults for everything but `url` and `secret`.
    pub fn new(url: impl Into<String>, secret: WebhookSecret) -> WebhookConfig {
        WebhookConfig {
            name: default_name(),
            url: url.into(),
            secret,
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs often carry tokens in their path or query; show the origin only.
        let origin = Url::parse(&self.url)
            .map(|u| origin(&u))
            .unwrap_or_else(|_| "<invalid url>".into());
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &origin)
            .field("secret", &self.secret)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook {name}: url is not a valid URL")]
    InvalidUrl { name: String },
    #[error("webhook {name}: url scheme must be http or https, not {scheme}")]
    UnsupportedScheme { name: String, scheme: String },
    #[error("webhook {name}: max_attempts must be at least 1")]
    NoAttempts { name: String },
    #[error("webhook {name}: building the HTTP client: {source}")]
    Client {
        name: String,
        #[source]
        source: reqwest::Error,
    },
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The Standard Webhooks payload: `type`, `timestamp`, `data`.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    timestamp: DateTime<Utc>,
    data: &'a Notification,
}

/// The exact bytes a webhook receiver gets for `notification`.
pub fn body(notification: &Notification) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Envelope {
        kind: format!("approval.{}", notification.kind.as_str()),
        timestamp: notification.occurred_at,
        data: notification,
    })
}

/// The wait before attempt `failed + 1`: `initial * 2^(failed-1)`, capped.
fn backoff(initial: Duration, max: Duration, failed: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failed.saturating_sub(1))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

/// `Retry-After` as delay-seconds or an HTTP-date.
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// A transport error without the URL (which may hold a token), with its causes.
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

/// A Standard Webhooks endpoint.
pub struct Webhook {
    name: String,
    url: Url,
    origin: String,
    secret: WebhookSecret,
    client: reqwest::Client,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn new(config: WebhookConfig) -> Result<Webhook, WebhookConfigError> {
        let name = format!("webhook:{}", config.name);
        let url = Url::parse(&config.url)
            .map_err(|_| WebhookConfigError::InvalidUrl { name: name.clone() })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookConfigError::UnsupportedScheme {
                name,
                scheme: url.scheme().into(),
            });
        }
        if config.max_attempts == 0 {
            return Err(WebhookConfigError::NoAttempts { name });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // The spec counts 3xx as failure: the URL should be fixed instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("actiongate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| WebhookConfigError::Client {
                name: name.clone(),
                source,
            })?;
        Ok(Webhook {
            origin: origin(&url),
            name,
            url,
            secret: config.secret,
            client,
            max_attempts: config.max_attempts,
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms),
        })
    }

    async fn deliver(&self, notification: &Notification) -> Result<Delivered, NotifyError> {
        let id = notification.id.as_str();
        let invalid = |reason: String| NotifyError::Invalid {
            notifier: self.name.clone(),
            id: id.to_string(),
            reason,
        };
        // The id is signed between dots and sent as a header.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'.') {
            return Err(invalid(
                "its id must be non-empty visible ASCII without `.`".into(),
            ));
        }
        let body = body(notification).map_err(|e| invalid(e.to_string()))?;

        let mut attempt = 0;
        loop {
            attempt += 1;
            // Each attempt carries its own timestamp, as the spec asks, so
            // receivers' replay windows hold across long retries.
            let timestamp = Utc::now().timestamp();
            let signature = sign(&self.secret, id, timestamp, &body);
            let sent = self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body.clone())
                .send()
                .await;
            let (failure, hint) = match sent {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(
                        notifier = %self.name,
                        origin = %self.origin,
                        notification_id = id,
                        kind = notification.kind.as_str(),
                        attempt,
                        status = response.status().as_u16(),
                        "webhook delivered"
                    );
                    return Ok(Delivered { attempts: attempt });
                }
                Ok(response) => {
                    let status = response.status();
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        tracing::warn!(
                            notifier = %self.name,
                            origin = %self.origin,
                            notification_id = id,
                            attempt,
                            status = status.as_u16(),
                            "webhook refused; not retrying"
                        );
                        return Err(NotifyError::Rejected {
                            notifier: self.name.clone(),
                            id: id.to_string(),
                            status: status.as_u16(),
                            attempts: attempt,
                        });
                    }
                    (
                        format!("HTTP {}", status.as_u16()),
                        retry_after(response.headers(), Utc::now()),
                    )
                }
                Err(error) => (describe(error), None),
            };
            if attempt >= self.max_attempts {
                tracing::warn!(
                    notifier = %self.name,
                    origin = %self.origin,
                    notification_id = id,
                    attempt,
                    failure = %failure,
                    "webhook failed; giving up"
                );
                return Err(NotifyError::GaveUp {
                    notifier: self.name.clone(),
                    id: id.to_string(),
                    attempts: attempt,
                    last: failure,
                });
            }
            let wait = backoff(self.initial_backoff, self.max_backoff, attempt)
                .max(hint.unwrap_or(Duration::ZERO))
                .min(self.max_backoff);
            tracing::warn!(
                notifier = %self.name,
                origin = %self.origin,
                notification_id = id,
                attempt,
                failure = %failure,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "webhook failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

impl Notifier for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.deliver(notification))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Risk;
    use crate::notify::{ActionSummary, ApprovalState, NotificationKind};

    #[test]
    fn spec_test_vector() {
        // standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py,
        // test_sign_function.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secret_parsing() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ="),
            Err(SecretError::BadLength { len: 5 })
        );
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(
            WebhookSecret::parse(&long),
            Err(SecretError::BadLength { len: 65 })
        );
        // Unpadded base64 is accepted, as the reference verifiers do.
        let unpadded = format!("whsec_{}", STANDARD.encode([1u8; 25]).trim_end_matches('='));
        assert!(WebhookSecret::parse(&unpadded).is_ok());
    }

    #[test]
    fn secrets_and_url_paths_never_in_debug() {
        let config: WebhookConfig = toml::from_str(
            r#"
            url = "https://hooks.example.com/services/T000/B000/XXXXTOKEN?key=abc"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        "#,
        )
        .unwrap();
        assert_eq!(config.max_attempts, 5);
        let text = format!("{config:?}");
        assert!(!text.contains("MfKQ9r8"), "{text}");
        assert!(
            !text.contains("XXXXTOKEN") && !text.contains("abc"),
            "{text}"
        );
        assert!(text.contains("https://hooks.example.com"), "{text}");
        let webhook = Webhook::new(config).unwrap();
        let text = format!("{webhook:?}");
        assert!(
            !text.contains("XXXXTOKEN") && !text.contains("MfKQ9r8"),
            "{text}"
        );
    }

    #[test]
    fn config_errors() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(matches!(
            Webhook::new(WebhookConfig::new("not a url", secret.clone())),
            Err(WebhookConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Webhook::new(WebhookConfig::new("ftp://x.example/", secret.clone())),
            Err(WebhookConfigError::UnsupportedScheme { .. })
        ));
        let mut config = WebhookConfig::new("https://x.example/", secret);
        config.max_attempts = 0;
        assert!(matches!(
            Webhook::new(config),
            Err(WebhookConfigError::NoAttempts { .. })
        ));
        let bad: Result<WebhookConfig, _> = toml::from_str(
            r#"
            url = "https://x.example/"
            secret = "whsec_c2hvcnQ="
        "#,
        );
        let message = bad.unwrap_err().to_string();
        assert!(message.contains("24 to 64"), "{message}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let ms = Duration::from_millis;
        let b = |failed| backoff(ms(100), ms(1_000), failed);
        assert_eq!(
            [b(1), b(2), b(3), b(4), b(5)],
            [ms(100), ms(200), ms(400), ms(800), ms(1_000)]
        );
        assert_eq!(b(200), ms(1_000));
    }

    #[test]
    fn retry_after_seconds_or_date() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v.parse().unwrap());
            h
        };
        assert_eq!(
            retry_after(&headers("3"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers("Wed, 25 Nov 2026 10:00:07 GMT"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers("Wed, 25 Nov 2026 09:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    fn notification() -> Notification {
        let at: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        Notification {
            id: "n1".into(),
            kind: NotificationKind::Pending,
            action: ActionSummary {
                action_id: "a1".into(),
                digest: "d1".into(),
                kind: "db.export".into(),
                resource: "db://x".into(),
                agent_id: "etl".into(),
                owner: "sam@example.com".into(),
                on_behalf_of: None,
                risk: Risk::High,
                reasons: vec!["pii".into()],
                justification: None,
                params: serde_json::json!({"rows": 10}),
                context: Default::default(),
                plugin: None,
                redacted: vec![],
            },
            approval: ApprovalState {
                groups: vec!["data-owners".into()],
                quorum: 1,
                approvals: vec![],
                expires_at: at,
                escalate_to: vec![],
                escalated: false,
                modifiable_params: vec![],
                reviews: vec![],
                step_up: None,
            },
            review: None,
            occurred_at: at,
            inbox_url: None,
        }
    }

    #[test]
    fn body_is_a_standard_webhooks_envelope() {
        let n = notification();
        let value: serde_json::Value = serde_json::from_slice(&body(&n).unwrap()).unwrap();
        assert_eq!(value["type"], "approval.pending");
        assert_eq!(value["timestamp"], "2026-11-25T10:00:00Z");
        assert_eq!(value["data"]["action"]["risk"], "high");
        let back: Notification = serde_json::from_value(value["data"].clone()).unwrap();
        assert_eq!(back, n);
    }

    #[tokio::test]
    async fn ids_that_break_the_signature_are_refused_unsent() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        // Nothing listens on the discard port; a send would fail differently.
        let webhook = Webhook::new(WebhookConfig::new("http://127.0.0.1:9/", secret)).unwrap();
        let mut n = notification();
        for id in ["", "a.b", "a b", "é"] {
            n.id = id.into();
            let err = webhook.notify(&n).await.unwrap_err();
            assert!(matches!(err, NotifyError::Invalid { .. }), "{id:?}: {err}");
        }
    }
}
