//! Incoming auth: verifies the Bot Framework JWT on every request to the bot
//! (RS256 by a key from the OpenID metadata's JWKS, issuer, audience,
//! expiry, `serviceurl`, endorsements). Never trusts a request it could not
//! verify, and never logs a token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::Deserialize;

use super::config::{secure_url, TeamsConfig, TeamsConfigError};

/// Why a request was refused. Every variant is answered with 401; the
/// message goes to the log, not to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header")]
    MissingToken,
    #[error("Authorization is not `Bearer <token>`")]
    NotBearer,
    #[error("token header unreadable: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not RS256")]
    Algorithm(String),
    #[error("token has no kid")]
    MissingKid,
    #[error("no signing key {kid} in the OpenID metadata's key set")]
    UnknownKey { kid: String },
    #[error("signing key {kid} is not endorsed for channel {channel}")]
    NotEndorsed { kid: String, channel: String },
    #[error("activity channel {got:?} is not {expected}")]
    WrongChannel { expected: String, got: String },
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token serviceurl claim does not match the activity's serviceUrl")]
    ServiceUrlMismatch,
    #[error("signing keys unavailable: {0}")]
    Keys(String),
}

/// What a verified token says.
/// A token whose signature, issuer, audience and lifetime verified; what
/// is left to check needs the activity (its channel and serviceUrl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    channel_id: String,
    issuer: String,
    service_url: Option<String>,
}

impl VerifiedToken {
    /// The activity must come from our channel, and its serviceUrl must be
    /// the one the token names (replies go there).
    pub fn for_activity(self, service_url: &str, channel_id: &str) -> Result<BotClaims, AuthError> {
        if channel_id != self.channel_id {
            return Err(AuthError::WrongChannel {
                expected: self.channel_id,
                got: channel_id.into(),
            });
        }
        if self.service_url.as_deref() != Some(service_url) {
            return Err(AuthError::ServiceUrlMismatch);
        }
        Ok(BotClaims {
            service_url: service_url.into(),
            issuer: self.issuer,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotClaims {
    pub service_url: String,
    pub issuer: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    serviceurl: Option<String>,
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    /// Bot Framework extension: the channels this key may sign for.
    #[serde(default)]
    endorsements: Vec<String>,
}

struct SigningKey {
    key: DecodingKey,
    endorsements: Vec<String>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, SigningKey>,
    fetched_at: Option<Instant>,
}

/// Verifies incoming requests. Holds the signing keys, fetched on first use,
/// again after `keys_max_age`, and again on an unknown `kid` (at most once
/// per `keys_min_refresh`).
pub struct BotAuthenticator {
    client: reqwest::Client,
    metadata_url: Url,
    issuer: String,
    app_id: String,
    channel_id: String,
    skew: Duration,
    keys_max_age: Duration,
    keys_min_refresh: Duration,
    cache: tokio::sync::Mutex<KeyCache>,
}

impl BotAuthenticator {
    pub fn new(
        client: reqwest::Client,
        config: &TeamsConfig,
    ) -> Result<BotAuthenticator, TeamsConfigError> {
        Ok(BotAuthenticator {
            client,
            metadata_url: secure_url("openid_metadata_url", &config.openid_metadata_url)?,
            issuer: config.issuer.clone(),
            app_id: config.app_id.clone(),
            channel_id: config.channel_id.clone(),
            skew: Duration::from_secs(config.clock_skew_seconds),
            keys_max_age: Duration::from_secs(config.keys_max_age_seconds),
            keys_min_refresh: Duration::from_secs(config.keys_min_refresh_seconds),
            cache: tokio::sync::Mutex::new(KeyCache::default()),
        })
    }

    /// Verifies `authorization` for an activity that says it comes from
    /// `channel_id` through `service_url`.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        service_url: &str,
        channel_id: &str,
    ) -> Result<BotClaims, AuthError> {
        self.verify_token(authorization)
            .await?
            .for_activity(service_url, channel_id)
    }

    /// Everything about the token that needs no request body: scheme,
    /// algorithm, signing key endorsed for our channel, issuer, audience,
    /// lifetime. Checked before the body is read, so an unauthenticated
    /// caller cannot make the bot read or parse anything.
    pub async fn verify_token(
        &self,
        authorization: Option<&str>,
    ) -> Result<VerifiedToken, AuthError> {
        let header = authorization.ok_or(AuthError::MissingToken)?;
        let token = match header.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => return Err(AuthError::NotBearer),
        };
        let head =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if head.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm(format!("{:?}", head.alg)));
        }
        let kid = head.kid.ok_or(AuthError::MissingKid)?;
        let key = self.key(&kid).await?;
        if !key.endorsements.iter().any(|e| e == &self.channel_id) {
            return Err(AuthError::NotEndorsed {
                kid,
                channel: self.channel_id.clone(),
            });
        }

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.app_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.skew.as_secs();
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(VerifiedToken {
            channel_id: self.channel_id.clone(),
            issuer: data.claims.iss,
            service_url: data.claims.serviceurl,
        })
    }

    async fn key(&self, kid: &str) -> Result<KeyInfo, AuthError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched_at.map(|at| at.elapsed());
        let stale = age.is_none_or(|age| age >= self.keys_max_age);
        let unknown = !cache.keys.contains_key(kid);
        let may_refresh = age.is_none_or(|age| age >= self.keys_min_refresh);
        if stale || (unknown && may_refresh) {
            match self.fetch_keys().await {
                Ok(keys) => {
                    tracing::info!(
                        keys = keys.len(),
                        "teams: fetched Bot Framework signing keys"
                    );
                    cache.keys = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                // Stale keys still verify until the refresh works again.
                Err(e) if !cache.keys.is_empty() && !unknown => {
                    tracing::warn!(error = %e, "teams: could not refresh signing keys; using cached ones");
                }
                Err(e) => return Err(e),
            }
        }
        cache
            .keys
            .get(kid)
            .map(|k| KeyInfo {
                key: k.key.clone(),
                endorsements: k.endorsements.clone(),
            })
            .ok_or_else(|| AuthError::UnknownKey { kid: kid.into() })
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, SigningKey>, AuthError> {
        let fail = |what: &str, e: String| AuthError::Keys(format!("{what}: {e}"));
        let metadata: OpenIdMetadata = self
            .get_json(self.metadata_url.clone())
            .await
            .map_err(|e| fail("OpenID metadata", e))?;
        let jwks_url = secure_url("jwks_uri", &metadata.jwks_uri)
            .map_err(|e| fail("OpenID metadata", e.to_string()))?;
        let set: KeySet = self.get_json(jwks_url).await.map_err(|e| fail("JWKS", e))?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            // Keys of other types or without an id cannot verify our tokens.
            let (Some(kid), "RSA", Some(n), Some(e)) = (
                jwk.kid,
                jwk.kty.as_str(),
                jwk.n.as_deref(),
                jwk.e.as_deref(),
            ) else {
                continue;
            };
            match DecodingKey::from_rsa_components(n, e) {
                Ok(key) => {
                    keys.insert(
                        kid,
                        SigningKey {
                            key,
                            endorsements: jwk.endorsements,
                        },
                    );
                }
                Err(error) => {
                    tracing::warn!(%kid, %error, "teams: skipping an unreadable signing key")
                }
            }
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        response
            .json()
            .await
            .map_err(|e| e.without_url().to_string())
    }
}

struct KeyInfo {
    key: DecodingKey,
    endorsements: Vec<String>,
}
