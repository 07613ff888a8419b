//! registry: admits plugins. Checks that a component loads, stores its exact
//! bytes by sha256 (so any decision it makes can be replayed years later),
//! records who registered it in the evidence log, and only then hands it to
//! the evaluator. Never binds and never decides. `admit` checks what a
//! person submits (signature, case file) before it gets here.

pub mod admit;
pub mod signature;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;

use crate::action::{KindError, KindPattern};
use crate::evaluate::Evaluator;
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, EvidenceError, EvidenceLog};
use crate::sandbox::{Plugin, PluginFailure};
use crate::store::{PluginRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin refused: {0}")]
    Plugin(#[from] PluginFailure),
    #[error("storing the plugin: {0}")]
    Store(#[from] StoreError),
    #[error("recording the registration: {0}")]
    Evidence(#[from] EvidenceError),
    #[error("plugin refused: it declares kind {declared:?}, which is not a kind pattern: {error}")]
    DeclaredKind { declared: String, error: KindError },
}

/// Who asked for a registration, and how the bytes arrived.
#[derive(Debug, Clone)]
pub struct Registration {
    /// A person, or `Actor::system("config")` for a config-file binding.
    pub by: Actor,
    /// The SSH signer (principal and key fingerprint) when signed.
    pub signer: Option<String>,
    /// Where the bytes came from (`example:db-export`, a path), for the record.
    pub source: String,
    /// The sha256 the caller expects, if it pinned one.
    pub pin: Option<String>,
    /// The case file it passed before it was admitted, if one was given.
    pub cases: Option<CasesPassed>,
}

pub use crate::evidence::payload::CasesPassed;

/// `[plugins]`: who may register plugins and how binding changes spread.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Refuse to register a plugin without a valid SSH signature
    /// (`ssh-keygen -Y sign -n actiongate-plugin`) by a key in `allowed_signers`.
    pub require_signature: bool,
    /// An OpenSSH allowed-signers file: `principals [namespaces="…"] keytype base64-key`.
    pub allowed_signers: Option<PathBuf>,
    /// How often each replica re-reads the bindings store (a Postgres
    /// NOTIFY makes it re-read at once).
    pub bindings_poll_ms: u64,
    /// Four eyes on binding changes, in force when the directory has a
    /// `policy-admins` group.
    pub four_eyes: crate::bindings::FourEyesConfig,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            require_signature: false,
            allowed_signers: None,
            bindings_poll_ms: 2000,
            four_eyes: crate::bindings::FourEyesConfig::default(),
        }
    }
}

/// Admits `wasm`: load (refusing bad components and pin mismatches), store
/// the bytes, record `plugin-registered` the first time this sha256 is
/// stored, then make it available to bindings. Returns the loaded plugin and
/// whether it was new.
pub async fn register(
    evaluator: &Evaluator,
    evidence: &EvidenceLog,
    wasm: &[u8],
    registration: Registration,
) -> Result<(Arc<Plugin>, bool), RegistryError> {
    let plugin = evaluator
        .sandbox()
        .load(wasm, registration.pin.as_deref())?;
    check_declared_kinds(&plugin.info.kinds)?;
    let row = PluginRow {
        sha256: plugin.sha256.clone(),
        name: plugin.info.name.clone(),
        version: plugin.info.version.clone(),
        wit_version: plugin.wit_version.clone(),
        bytes: wasm.to_vec(),
        registered_at: Utc::now(),
        registered_by: registration.by.id.clone(),
        signer: registration.signer.clone(),
    };
    let new = evidence.store().insert_plugin(&row).await?;
    if new {
        evidence
            .append(
                payload::PluginRegistered {
                    sha256: plugin.sha256.clone(),
                    name: plugin.info.name.clone(),
                    version: plugin.info.version.clone(),
                    kinds: plugin.info.kinds.clone(),
                    wit_version: plugin.wit_version.clone(),
                    size_bytes: wasm.len() as u64,
                    signer: registration.signer.clone(),
                    source: registration.source.clone(),
                    cases: registration.cases.clone(),
                }
                .event(None, registration.by),
            )
            .await?;
    }
    evaluator.insert(plugin.clone());
    Ok((plugin, new))
}

/// What a plugin says it handles is shown to the people who bind it: one
/// grammar there too, so no declared kind merely looks like another.
pub fn check_declared_kinds(kinds: &[String]) -> Result<(), RegistryError> {
    for declared in kinds {
        KindPattern::parse(declared).map_err(|error| RegistryError::DeclaredKind {
            declared: declared.clone(),
            error,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_kinds_follow_the_grammar() {
        let ok = |kinds: &[&str]| kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert!(check_declared_kinds(&ok(&["db.export", "iam.*", "*"])).is_ok());
        for bad in [
            "DB.export",
            "db.export ",
            "db.ex\u{0440}ort",
            "db..x",
            "db.ex*",
            "",
        ] {
            let err = check_declared_kinds(&ok(&["iam.grant", bad])).unwrap_err();
            assert!(
                matches!(&err, RegistryError::DeclaredKind { declared, .. } if declared == bad),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("joined by single dots"), "{err}");
        }
    }
}
