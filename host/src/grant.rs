//! Grants: what an allowed or approved action carries to its executor. A
//! compact JWS (EdDSA, Ed25519) that executors verify offline with the JWKS
//! from `/v1/keys`. Signs and verifies; never decides.

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who grants are issued by and for.
pub const ISSUER: &str = "actiongate";
pub const AUDIENCE: &str = "actiongate-executor";

/// The claims of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantClaims {
    pub iss: String,
    pub aud: String,
    /// The agent the grant is for.
    pub sub: String,
    /// Single-use id; the outcome report consumes it.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub action_id: String,
    /// sha256 of the canonical final action (after any modification).
    pub action_digest: String,
    /// The plugin that decided; `None` only for break-glass approvals after a failure.
    pub plugin_sha256: Option<String>,
    /// Distinct humans who approved; empty for actions the policy allowed.
    pub approvers: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("grant is not a compact JWS")]
    Malformed,
    #[error("grant header is not EdDSA with this host's key id")]
    Header,
    #[error("grant signature does not verify")]
    Signature,
    #[error("grant expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("grant claims are not for this use: {0}")]
    Claims(String),
}

/// Signs and verifies grants with one Ed25519 key.
pub struct GrantSigner {
    key: SigningKey,
    kid: String,
}

impl GrantSigner {
    pub fn new(key: SigningKey) -> Self {
        // RFC 7638-style thumbprint of the public key, shortened.
        let kid = hex::encode(&Sha256::digest(key.verifying_key().as_bytes())[..8]);
        GrantSigner { key, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The JWKS served at `/v1/keys`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }

    pub fn sign(&self, claims: &GrantClaims) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"))
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// Checks the signature, header and expiry; the caller checks the claims
    /// against the action the grant is presented for.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<GrantClaims, GrantError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GrantError::Malformed);
        };
        let header: serde_json::Value = decode_json(h)?;
        if header["alg"] != "EdDSA" || header["kid"] != self.kid.as_str() {
            return Err(GrantError::Header);
        }
        let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(GrantError::Malformed)?;
        self.key
            .verifying_key()
            .verify(
                format!("{h}.{c}").as_bytes(),
                &Signature::from_bytes(&sig_bytes),
            )
            .map_err(|_| GrantError::Signature)?;
        let claims: GrantClaims = decode_json(c)?;
        if claims.iss != ISSUER || claims.aud != AUDIENCE {
            return Err(GrantError::Claims("wrong issuer or audience".into()));
        }
        if now.timestamp() >= claims.exp {
            return Err(GrantError::Expired(
                DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
            ));
        }
        Ok(claims)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, GrantError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| GrantError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| GrantError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> GrantClaims {
        GrantClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "agent".into(),
            jti: "j1".into(),
            iat: 0,
            exp,
            action_id: "a".into(),
            action_digest: "d".into(),
            plugin_sha256: Some("p".into()),
            approvers: vec![],
        }
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let signer = GrantSigner::new(SigningKey::from_bytes(&[7; 32]));
        let now = Utc::now();
        let token = signer.sign(&claims(now.timestamp() + 60));
        assert_eq!(signer.verify(&token, now).unwrap().jti, "j1");

        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut forged = claims(now.timestamp() + 60);
        forged.approvers = vec!["mallory".into()];
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            signer.verify(&parts.join("."), now),
            Err(GrantError::Signature)
        );

        let other = GrantSigner::new(SigningKey::from_bytes(&[8; 32]));
        assert_eq!(other.verify(&token, now), Err(GrantError::Header));
        assert!(matches!(
            signer.verify(&token, now + chrono::Duration::seconds(61)),
            Err(GrantError::Expired(_))
        ));
        assert_eq!(signer.verify("a.b", now), Err(GrantError::Malformed));
    }
}

/// `[grants]`: how long a grant lives and where its signing key is.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrantConfig {
    /// Seconds a grant stays valid. Short: it is a ticket, not a credential.
    pub ttl_seconds: u64,
    /// Ed25519 signing key, created on first start. Env: ACTIONGATE_GRANT_KEY.
    /// Replicas must share it.
    pub key_path: PathBuf,
    /// Seconds after a grant is spent (a run claimed it, or an agent's
    /// report consumed it) by which its outcome must be recorded; after
    /// that the sweeper records it as `unknown`. Longer than every MCP
    /// upstream's `timeout_seconds` (checked at start).
    pub unrecorded_after_seconds: u64,
}

impl Default for GrantConfig {
    fn default() -> Self {
        GrantConfig {
            ttl_seconds: 300,
            key_path: PathBuf::from("./data/grant.key"),
            unrecorded_after_seconds: 600,
        }
    }
}
