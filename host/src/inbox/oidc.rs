//! OpenID Connect sign-in: the authorization code flow with PKCE and a
//! nonce, through the `openidconnect` crate. Owns talking to the provider
//! and checking its ID token; it never decides who a person is in the
//! directory (the caller does) and never keeps a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use super::config::Settings;

/// The client as discovery makes it: an authorization endpoint, maybe a
/// token endpoint (checked when a code is exchanged).
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in did not produce a verified identity. `code()` names it in
/// evidence and on the refusal page.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the identity provider could not be reached or described itself wrongly: {0}")]
    Discovery(String),
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(String),
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    #[error("the ID token is for another application (audience): {0}")]
    WrongAudience(String),
    #[error("the ID token does not answer this sign-in (nonce): {0}")]
    WrongNonce(String),
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
}

impl SignInError {
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::Discovery(_) => "provider-unavailable",
            SignInError::Provider(_) => "provider-refused",
            SignInError::Exchange(_) => "code-exchange-failed",
            SignInError::NoIdToken => "no-id-token",
            SignInError::WrongAudience(_) => "wrong-audience",
            SignInError::WrongNonce(_) => "wrong-nonce",
            SignInError::InvalidToken(_) => "invalid-id-token",
        }
    }
}

/// What a verified ID token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// As the provider spelled it.
    pub email: Option<String>,
    pub email_verified: bool,
    /// The configured group claim; `None` when none is configured. A
    /// configured claim that is absent reads as no groups.
    pub groups: Option<Vec<String>>,
}

/// A sign-in started: send the browser to `url`, keep the rest server-side.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The provider, discovered on first use and again after
/// `metadata_max_age`, so that actiongate starts (and serves agents) while
/// the provider is down, and follows its key rotations.
pub struct Provider {
    settings: Arc<Settings>,
    http: openidconnect::reqwest::Client,
    discovered: tokio::sync::Mutex<Option<(Instant, Arc<Client>)>>,
}

impl Provider {
    pub fn new(settings: Arc<Settings>) -> Result<Provider, SignInError> {
        // No redirects: a token endpoint that redirects could send the code
        // and the client secret elsewhere.
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SignInError::Discovery(e.to_string()))?;
        Ok(Provider {
            settings,
            http,
            discovered: tokio::sync::Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<Arc<Client>, SignInError> {
        let mut discovered = self.discovered.lock().await;
        if let Some((at, client)) = discovered.as_ref() {
            if at.elapsed() < self.settings.metadata_max_age {
                return Ok(client.clone());
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| SignInError::Discovery(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SignInError::Discovery(error_chain(&e)))?;
        let redirect = RedirectUrl::new(self.settings.redirect_uri())
            .map_err(|e| SignInError::Discovery(e.to_string()))?;
        let client = Arc::new(
            CoreClient::from_provider_metadata(
                metadata,
                ClientId::new(self.settings.client_id.clone()),
                Some(ClientSecret::new(
                    self.settings.client_secret.expose().to_string(),
                )),
            )
            .set_redirect_uri(redirect),
        );
        *discovered = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Starts a sign-in: a fresh state, nonce and PKCE verifier.
    pub async fn start(&self) -> Result<Started, SignInError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges `code` and verifies the ID token: signature, issuer,
    /// audience, expiry, and that its nonce is this sign-in's.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Identity, SignInError> {
        let client = self.client().await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::Discovery(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Exchange(error_chain(&e)))?;
        let id_token = token.id_token().ok_or(SignInError::NoIdToken)?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map_err(|e| match e {
                ClaimsVerificationError::InvalidAudience(m) => SignInError::WrongAudience(m),
                ClaimsVerificationError::InvalidNonce(m) => SignInError::WrongNonce(m),
                other => SignInError::InvalidToken(error_chain(&other)),
            })?;
        let groups = match &self.settings.groups_claim {
            // The signature above covers these very bytes; the claim is
            // read from them because its name is configured.
            Some(name) => Some(claim_strings(&id_token.to_string(), name)?),
            None => None,
        };
        Ok(Identity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified() == Some(true),
            groups,
        })
    }
}

/// The string (or list of strings) claim `name` of a compact JWT whose
/// signature the caller has verified; absent reads as empty.
fn claim_strings(jwt: &str, name: &str) -> Result<Vec<String>, SignInError> {
    let invalid = |why: &str| SignInError::InvalidToken(format!("claim {name:?}: {why}"));
    let payload = jwt.split('.').nth(1).ok_or_else(|| invalid("not a JWT"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("payload is not base64url"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("payload is not JSON"))?;
    match &claims[name] {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("must be a string or a list of strings")),
        _ => Err(invalid("must be a string or a list of strings")),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
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

    fn jwt(payload: serde_json::Value) -> String {
        format!(
            "e30.{}.sig",
            URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn group_claims_read_as_lists() {
        let t = jwt(serde_json::json!({"groups": ["a", "b"], "role": "x", "bad": [1]}));
        assert_eq!(claim_strings(&t, "groups").unwrap(), vec!["a", "b"]);
        assert_eq!(claim_strings(&t, "role").unwrap(), vec!["x"]);
        assert!(claim_strings(&t, "missing").unwrap().is_empty());
        assert!(matches!(
            claim_strings(&t, "bad"),
            Err(SignInError::InvalidToken(_))
        ));
    }
}
