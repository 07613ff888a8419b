//! stepup: passkeys per person and the step-up proof a high-risk approval
//! carries (WebAuthn through webauthn-rs, user verification required).
//! It verifies assertions and keeps counters; it never decides a review
//! (`approvals` asks it) and writes no SQL (`store` does).

pub mod challenge;
mod config;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder,
};

pub use config::StepUpConfig;

use crate::directory::ApproverId;
use crate::store::{CeremonyRow, PasskeyRow, Store, StoreError};

const REGISTER: &str = "register";
const STEP_UP: &str = "step-up";

/// Why a passkey operation or a step-up was refused. `code()` is the
/// problem type's slug.
#[derive(Debug, thiserror::Error)]
pub enum StepUpError {
    #[error("step-up is not configured on this host ([step_up] is absent)")]
    NotConfigured,
    #[error("approving this action needs your passkey (step-up): approve it on {link}, or ask POST /v1/approvals/{action_id}/step-up for a challenge and send the passkey's assertion as `step_up` with the review")]
    Required { action_id: String, link: String },
    #[error("you have no passkey registered; register one first (POST /v1/passkeys/registration)")]
    NoPasskey,
    #[error("the step-up challenge is unknown, already used, or not yours; ask for a new one")]
    UnknownChallenge,
    #[error("the step-up challenge expired; ask for a new one")]
    Expired,
    #[error("the step-up challenge was made for {what}; ask for a new one for this version of this action")]
    WrongAction { what: String },
    #[error("the passkey assertion was refused: {0}")]
    Invalid(String),
    #[error("the authenticator did not verify the user (user verification is required)")]
    NotVerified,
    #[error("the registration is unknown, already used, expired, or not yours; start again")]
    UnknownRegistration,
    #[error("the passkey registration was refused: {0}")]
    RegistrationInvalid(String),
    #[error("this passkey is already registered")]
    AlreadyRegistered,
    #[error("no such passkey of yours: {0}")]
    NoSuchPasskey(String),
    #[error("step-up configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StepUpError {
    /// The store error inside, for `Store`; any other variant is a bug to ask.
    pub fn into_store(self) -> StoreError {
        match self {
            StepUpError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            StepUpError::NotConfigured => "step-up-not-configured",
            StepUpError::Required { .. } => "step-up-required",
            StepUpError::NoPasskey => "step-up-no-passkey",
            StepUpError::UnknownChallenge | StepUpError::Expired => "step-up-challenge",
            StepUpError::WrongAction { .. } => "step-up-wrong-action",
            StepUpError::Invalid(_) => "step-up-invalid",
            StepUpError::NotVerified => "step-up-user-not-verified",
            StepUpError::UnknownRegistration | StepUpError::RegistrationInvalid(_) => {
                "passkey-registration-invalid"
            }
            StepUpError::AlreadyRegistered => "passkey-already-registered",
            StepUpError::NoSuchPasskey(_) => "not-found",
            StepUpError::Config(_) => "step-up-config",
            StepUpError::Store(_) => "internal",
        }
    }
}

/// What a review carries to prove step-up: the challenge it answers and the
/// browser's `PublicKeyCredential` (the JSON `navigator.credentials.get` gives).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpAssertion {
    pub challenge_id: String,
    pub credential: PublicKeyCredential,
}

/// A verified assertion, as the review's evidence records it.
pub use crate::evidence::payload::StepUpProof;

/// The body that finishes a passkey registration (API and inbox alike).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFinish {
    pub registration_id: String,
    /// The `PublicKeyCredential` JSON `navigator.credentials.create` gave.
    #[schema(value_type = Object)]
    pub credential: RegisterPublicKeyCredential,
    pub label: Option<String>,
}

/// Request options for `navigator.credentials.get`, for one approver and
/// one version of one action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepUpChallenge {
    pub challenge_id: String,
    pub action_id: String,
    pub digest: String,
    pub expires_at: DateTime<Utc>,
    /// `{publicKey: …}` for `navigator.credentials.get`.
    #[schema(value_type = Object)]
    pub options: RequestChallengeResponse,
}

/// Options for `navigator.credentials.create`, and the id to finish with.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Registration {
    pub registration_id: String,
    pub expires_at: DateTime<Utc>,
    /// `{publicKey: …}` for `navigator.credentials.create`.
    #[schema(value_type = Object)]
    pub options: CreationChallengeResponse,
}

/// A registered passkey, as its owner sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PasskeyInfo {
    pub id: String,
    pub credential_id: String,
    pub label: String,
    pub sign_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyRow> for PasskeyInfo {
    fn from(r: PasskeyRow) -> Self {
        PasskeyInfo {
            id: r.id,
            credential_id: r.credential_id,
            label: r.label,
            sign_count: r.sign_count,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// The step-up domain: the rule, the relying party, the store.
pub struct StepUp {
    pub config: StepUpConfig,
    webauthn: Webauthn,
    store: Store,
}

impl std::fmt::Debug for StepUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepUp")
            .field("config", &self.config)
            .finish()
    }
}

impl StepUp {
    pub fn new(config: StepUpConfig, store: Store) -> Result<StepUp, StepUpError> {
        let origin = Url::parse(&config.origin)
            .map_err(|e| StepUpError::Config(format!("origin {:?}: {e}", config.origin)))?;
        let webauthn = WebauthnBuilder::new(&config.rp_id, &origin)
            .and_then(|b| b.rp_name(&config.rp_name).build())
            .map_err(|e| StepUpError::Config(format!("rp_id {:?}: {e}", config.rp_id)))?;
        Ok(StepUp {
            config,
            webauthn,
            store,
        })
    }

    fn ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.challenge_ttl_seconds.min(86_400) as i64)
    }

    /// Starts registering a passkey for `person`; their passkeys in use are
    /// excluded so one authenticator is not registered twice.
    pub async fn registration_start(
        &self,
        person: &ApproverId,
        display_name: &str,
    ) -> Result<Registration, StepUpError> {
        let existing = self.passkeys(person).await?;
        let exclude = existing
            .iter()
            .map(|(_, p)| p.cred_id().clone())
            .collect::<Vec<_>>();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(
                user_handle(person),
                person.as_str(),
                display_name,
                (!exclude.is_empty()).then_some(exclude),
            )
            .map_err(|e| StepUpError::RegistrationInvalid(e.to_string()))?;
        let id = new_id()?;
        let now = Utc::now();
        self.store
            .insert_ceremony(&CeremonyRow {
                id: id.clone(),
                person: person.to_string(),
                purpose: REGISTER.into(),
                action_id: None,
                digest: None,
                state: serde_json::to_string(&state).expect("registration state serializes"),
                created_at: now,
            })
            .await?;
        Ok(Registration {
            registration_id: id,
            expires_at: now + self.ttl(),
            options,
        })
    }

    /// Finishes a registration started by the same person.
    pub async fn registration_finish(
        &self,
        person: &ApproverId,
        registration_id: &str,
        credential: &RegisterPublicKeyCredential,
        label: Option<String>,
    ) -> Result<PasskeyInfo, StepUpError> {
        let row = self
            .store
            .take_ceremony(registration_id, person.as_str(), REGISTER)
            .await?
            .ok_or(StepUpError::UnknownRegistration)?;
        if Utc::now() > row.created_at + self.ttl() {
            return Err(StepUpError::UnknownRegistration);
        }
        let state: PasskeyRegistration = serde_json::from_str(&row.state)
            .map_err(|e| StoreError::Corrupt(format!("registration state: {e}")))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(|e| StepUpError::RegistrationInvalid(e.to_string()))?;
        let now = Utc::now();
        let row = PasskeyRow {
            id: Uuid::now_v7().to_string(),
            person: person.to_string(),
            credential_id: B64.encode(passkey.cred_id()),
            label: label
                .map(|l| l.trim().chars().take(100).collect::<String>())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "passkey".into()),
            passkey: serde_json::to_string(&passkey).expect("a passkey serializes"),
            sign_count: 0,
            created_at: now,
            last_used_at: None,
        };
        if !self.store.insert_passkey(&row).await? {
            return Err(StepUpError::AlreadyRegistered);
        }
        tracing::info!(person = %person, passkey = %row.id, "passkey registered");
        Ok(row.into())
    }

    /// The person's passkeys in use.
    pub async fn list(&self, person: &ApproverId) -> Result<Vec<PasskeyInfo>, StepUpError> {
        Ok(self
            .store
            .passkeys_of(person.as_str())
            .await?
            .into_iter()
            .map(PasskeyInfo::from)
            .collect())
    }

    /// Removes one of the person's own passkeys.
    pub async fn remove(&self, person: &ApproverId, id: &str) -> Result<(), StepUpError> {
        if self.store.remove_passkey(person.as_str(), id).await? {
            tracing::info!(person = %person, passkey = %id, "passkey removed");
            Ok(())
        } else {
            Err(StepUpError::NoSuchPasskey(id.into()))
        }
    }

    async fn passkeys(
        &self,
        person: &ApproverId,
    ) -> Result<Vec<(PasskeyRow, Passkey)>, StepUpError> {
        let rows = self.store.passkeys_of(person.as_str()).await?;
        rows.into_iter()
            .map(|r| {
                let p: Passkey = serde_json::from_str(&r.passkey)
                    .map_err(|e| StoreError::Corrupt(format!("passkey {}: {e}", r.id)))?;
                Ok((r, p))
            })
            .collect()
    }

    /// A challenge for `approver` to approve the version `digest` of
    /// `action_id`: derived from both and a fresh single-use nonce.
    pub async fn challenge(
        &self,
        approver: &ApproverId,
        action_id: &str,
        digest: &str,
    ) -> Result<StepUpChallenge, StepUpError> {
        let keys = self.passkeys(approver).await?;
        if keys.is_empty() {
            return Err(StepUpError::NoPasskey);
        }
        let passkeys = keys.into_iter().map(|(_, p)| p).collect::<Vec<_>>();
        let (mut options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| StepUpError::Invalid(e.to_string()))?;
        let nonce =
            crate::keys::random_bytes::<32>().map_err(|e| StepUpError::Config(e.to_string()))?;
        let derived = challenge::derive(action_id, digest, approver.as_str(), &nonce);
        // webauthn-rs draws its own random challenge; ours replaces it in
        // both the options and the state it will verify against, so the
        // client data the authenticator signs names this action version.
        options.public_key.challenge = derived.to_vec();
        let state = with_challenge(&state, &derived)?;
        let id = B64.encode(nonce);
        let now = Utc::now();
        self.store
            .insert_ceremony(&CeremonyRow {
                id: id.clone(),
                person: approver.to_string(),
                purpose: STEP_UP.into(),
                action_id: Some(action_id.into()),
                digest: Some(digest.into()),
                state,
                created_at: now,
            })
            .await?;
        Ok(StepUpChallenge {
            challenge_id: id,
            action_id: action_id.into(),
            digest: digest.into(),
            expires_at: now + self.ttl(),
            options,
        })
    }

    /// Verifies `assertion` as `approver`'s proof for the version `digest`
    /// of `action_id`, spending its challenge whatever the outcome, and
    /// advances the passkey's counter.
    pub async fn verify(
        &self,
        approver: &ApproverId,
        action_id: &str,
        digest: &str,
        assertion: &StepUpAssertion,
    ) -> Result<StepUpProof, StepUpError> {
        let row = self
            .store
            .take_ceremony(&assertion.challenge_id, approver.as_str(), STEP_UP)
            .await?
            .ok_or(StepUpError::UnknownChallenge)?;
        if Utc::now() > row.created_at + self.ttl() {
            return Err(StepUpError::Expired);
        }
        if row.action_id.as_deref() != Some(action_id) {
            return Err(StepUpError::WrongAction {
                what: format!(
                    "another action ({})",
                    row.action_id.as_deref().unwrap_or("none")
                ),
            });
        }
        if row.digest.as_deref() != Some(digest) {
            return Err(StepUpError::WrongAction {
                what: format!(
                    "an earlier version of this action (digest {}); it is now {digest}",
                    row.digest.as_deref().unwrap_or("none")
                ),
            });
        }
        let nonce = B64
            .decode(&row.id)
            .map_err(|e| StoreError::Corrupt(format!("step-up nonce: {e}")))?;
        let derived = challenge::derive(action_id, digest, approver.as_str(), &nonce);
        let state: PasskeyAuthentication = serde_json::from_str(&row.state)
            .map_err(|e| StoreError::Corrupt(format!("step-up state: {e}")))?;
        let flags = Flags::read(&assertion.credential.response.authenticator_data)
            .ok_or_else(|| StepUpError::Invalid("authenticatorData is too short".into()))?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&assertion.credential, &state)
            .map_err(|e| match e {
                webauthn_rs::prelude::WebauthnError::UserNotVerified => StepUpError::NotVerified,
                e => StepUpError::Invalid(e.to_string()),
            })?;
        // The library requires both for passkeys; checked again here because
        // the evidence claims them.
        if !(flags.user_present && flags.user_verified && result.user_verified()) {
            return Err(StepUpError::NotVerified);
        }
        let credential_id = B64.encode(result.cred_id());
        let (key_row, mut passkey) = self
            .passkeys(approver)
            .await?
            .into_iter()
            .find(|(r, _)| r.credential_id == credential_id)
            .ok_or_else(|| StepUpError::Invalid("the passkey was removed".into()))?;
        passkey.update_credential(&result);
        self.store
            .passkey_used(
                &key_row.id,
                &serde_json::to_string(&passkey).expect("a passkey serializes"),
                i64::from(result.counter()),
            )
            .await?;
        Ok(StepUpProof {
            credential_id,
            user_present: flags.user_present,
            user_verified: flags.user_verified,
            sign_count: result.counter(),
            nonce: row.id,
            challenge: B64.encode(derived),
        })
    }
}

/// A stable WebAuthn user handle per person, not the email itself.
fn user_handle(person: &ApproverId) -> Uuid {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(
        [
            b"actiongate/user-handle/v1\0".as_slice(),
            person.as_str().as_bytes(),
        ]
        .concat(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Uuid::from_bytes(b)
}

fn new_id() -> Result<String, StepUpError> {
    crate::keys::random_bytes::<32>()
        .map(|b| B64.encode(b))
        .map_err(|e| StepUpError::Config(e.to_string()))
}

/// The authentication state with `challenge` in place of the library's.
fn with_challenge(state: &PasskeyAuthentication, challenge: &[u8]) -> Result<String, StepUpError> {
    let mut v = serde_json::to_value(state).expect("authentication state serializes");
    let slot = v
        .get_mut("ast")
        .and_then(|a| a.get_mut("challenge"))
        .ok_or_else(|| StepUpError::Config("webauthn-rs state has no ast.challenge".into()))?;
    *slot = serde_json::Value::String(B64.encode(challenge));
    // Parsed back so a layout change in the library fails here, not later.
    let _: PasskeyAuthentication = serde_json::from_value(v.clone())
        .map_err(|e| StepUpError::Config(format!("webauthn-rs state: {e}")))?;
    Ok(v.to_string())
}

/// The flags byte of authenticatorData (after the 32-byte rp id hash).
struct Flags {
    user_present: bool,
    user_verified: bool,
}

impl Flags {
    fn read(authenticator_data: &[u8]) -> Option<Flags> {
        let f = *authenticator_data.get(32)?;
        Some(Flags {
            user_present: f & 0x01 != 0,
            user_verified: f & 0x04 != 0,
        })
    }
}
