//! The `[inbox]` config section (and its `[inbox.oidc]` provider): where the
//! inbox is reached and which OpenID Connect provider signs people in. The
//! client secret never appears in `Debug` output or logs.

use std::fmt;

use serde::Deserialize;

/// The client secret may come from here instead of the file.
pub const CLIENT_SECRET_ENV: &str = "ACTIONGATE_OIDC_CLIENT_SECRET";

/// `[inbox]`: the approver web inbox at `/inbox`; off when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// The base URL browsers reach actiongate at, e.g.
    /// `https://actiongate.example.com`. The redirect URI registered with
    /// the provider is this plus `/inbox/callback`. `https://` makes the
    /// session cookie `Secure` (and `__Host-` prefixed).
    pub public_url: String,
    /// How long a session lasts from sign-in, enforced by the server.
    #[serde(default = "default_session_ttl")]
    pub session_ttl_seconds: u64,
    /// How long a sign-in may take at the provider.
    #[serde(default = "default_login_ttl")]
    pub login_ttl_seconds: u64,
    pub oidc: OidcConfig,
}

/// `[inbox.oidc]`: the company's OpenID Connect provider.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as the provider's discovery document names it
    /// (`ISSUER/.well-known/openid-configuration` must exist).
    pub issuer: String,
    pub client_id: String,
    /// Env: ACTIONGATE_OIDC_CLIENT_SECRET.
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    /// Scopes asked for besides `openid`; `email` is needed.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// An ID token claim listing the person's groups at the provider. When
    /// set, a person reviews only for groups that both the directory and
    /// this claim name: the provider can narrow what the directory says,
    /// never widen it.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// How long the provider's discovery document and keys are trusted
    /// before they are fetched again.
    #[serde(default = "default_metadata_max_age")]
    pub metadata_max_age_seconds: u64,
}

/// The OIDC client secret. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> ClientSecret {
        ClientSecret(secret.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .finish()
    }
}

fn default_session_ttl() -> u64 {
    8 * 3600
}
fn default_login_ttl() -> u64 {
    600
}
fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}
fn default_metadata_max_age() -> u64 {
    3600
}

#[derive(Debug, thiserror::Error)]
pub enum InboxConfigError {
    #[error("inbox.public_url {url:?}: {reason}")]
    PublicUrl { url: String, reason: String },
    #[error("inbox.oidc.issuer {url:?}: {reason}")]
    Issuer { url: String, reason: String },
    #[error("inbox.oidc.client_id is empty")]
    ClientId,
    #[error("inbox.oidc.client_secret is not set (in the file or {CLIENT_SECRET_ENV})")]
    ClientSecret,
    #[error("inbox.oidc.scopes must include `email`: a person is matched by their verified email")]
    EmailScope,
    #[error("inbox.session_ttl_seconds must be at least 1")]
    SessionTtl,
}

/// The checked settings the inbox runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Without a trailing slash.
    pub public_url: String,
    /// Whether browsers reach the inbox over TLS (the cookie is `Secure`).
    pub secure: bool,
    pub session_ttl: chrono::Duration,
    pub login_ttl: chrono::Duration,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub scopes: Vec<String>,
    pub groups_claim: Option<String>,
    pub metadata_max_age: std::time::Duration,
}

impl Settings {
    /// The redirect URI to register with the provider.
    pub fn redirect_uri(&self) -> String {
        format!("{}/inbox/callback", self.public_url)
    }
}

impl InboxConfig {
    /// Checks the section; `env` supplies the client secret when the file does not.
    pub fn settings(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, InboxConfigError> {
        let public_url = self.public_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&public_url).map_err(|e| InboxConfigError::PublicUrl {
            url: self.public_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(InboxConfigError::PublicUrl {
                url: self.public_url.clone(),
                reason: "must be an http:// or https:// URL with a host".into(),
            });
        }
        if parsed.path() != "/" && !parsed.path().is_empty() {
            return Err(InboxConfigError::PublicUrl {
                url: self.public_url.clone(),
                reason: "must be the service's root (the inbox is at /inbox)".into(),
            });
        }
        let oidc = &self.oidc;
        reqwest::Url::parse(&oidc.issuer).map_err(|e| InboxConfigError::Issuer {
            url: oidc.issuer.clone(),
            reason: e.to_string(),
        })?;
        if oidc.client_id.trim().is_empty() {
            return Err(InboxConfigError::ClientId);
        }
        let client_secret = oidc
            .client_secret
            .clone()
            .or_else(|| env(CLIENT_SECRET_ENV).map(ClientSecret))
            .filter(|s| !s.0.is_empty())
            .ok_or(InboxConfigError::ClientSecret)?;
        if !oidc.scopes.iter().any(|s| s == "email") {
            return Err(InboxConfigError::EmailScope);
        }
        if self.session_ttl_seconds == 0 {
            return Err(InboxConfigError::SessionTtl);
        }
        Ok(Settings {
            secure: parsed.scheme() == "https",
            public_url,
            session_ttl: chrono::Duration::seconds(self.session_ttl_seconds as i64),
            login_ttl: chrono::Duration::seconds(self.login_ttl_seconds.max(30) as i64),
            issuer: oidc.issuer.clone(),
            client_id: oidc.client_id.clone(),
            client_secret,
            scopes: oidc
                .scopes
                .iter()
                .filter(|s| s.as_str() != "openid")
                .cloned()
                .collect(),
            groups_claim: oidc.groups_claim.clone().filter(|c| !c.trim().is_empty()),
            metadata_max_age: std::time::Duration::from_secs(oidc.metadata_max_age_seconds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> InboxConfig {
        toml::from_str(text).unwrap()
    }

    const BASE: &str = r#"
        public_url = "https://ag.example.com/"
        [oidc]
        issuer = "https://login.example.com"
        client_id = "actiongate"
    "#;

    #[test]
    fn secret_from_env_and_secure_from_https() {
        let s = parse(BASE)
            .settings(|n| (n == CLIENT_SECRET_ENV).then(|| "s3cret".to_string()))
            .unwrap();
        assert!(s.secure);
        assert_eq!(s.redirect_uri(), "https://ag.example.com/inbox/callback");
        assert_eq!(s.client_secret.expose(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(s.scopes, vec!["email", "profile"]);
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(matches!(
            parse(BASE).settings(|_| None),
            Err(InboxConfigError::ClientSecret)
        ));
        let no_email = format!("{BASE}\nscopes = [\"profile\"]\nclient_secret = \"x\"");
        assert!(matches!(
            parse(&no_email).settings(|_| None),
            Err(InboxConfigError::EmailScope)
        ));
        let sub_path = BASE.replace("https://ag.example.com/", "https://ag.example.com/x");
        assert!(matches!(
            parse(&sub_path).settings(|_| Some("x".into())),
            Err(InboxConfigError::PublicUrl { .. })
        ));
        assert!(toml::from_str::<InboxConfig>(&format!("{BASE}\nclient_secrte = \"x\"")).is_err());
    }

    #[test]
    fn plain_http_is_not_secure() {
        let s = parse(&BASE.replace("https://ag", "http://ag"))
            .settings(|_| Some("x".into()))
            .unwrap();
        assert!(!s.secure);
    }
}
