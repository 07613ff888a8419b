//! registry: admits plugins. Checks that a component loads, stores its exact
//! bytes by sha256 (so any decision it makes can be replayed years later),
//! records who registered it in the evidence log, and only then hands it to
//! the evaluator. Never binds and never decides. `admit` checks what a
//! person submits (signature, case file) before it gets here.

pub mod admit;
pub mod signature;

use std::sync::Arc;

use chrono::Utc;

use crate::action::{KindError, KindPattern};
use crate::evaluate::Evaluator;
use crate::evidence::{Actor, EventKind, EvidenceError, EvidenceLog, NewEvent};
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

/// A case file a plugin passed at registration, for the record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CasesPassed {
    pub count: usize,
    /// sha256 of the case file's text.
    pub sha256: String,
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
            .append(NewEvent {
                kind: EventKind::PluginRegistered,
                action_id: None,
                actor: registration.by,
                payload: serde_json::json!({
                    "sha256": plugin.sha256,
                    "name": plugin.info.name,
                    "version": plugin.info.version,
                    "kinds": plugin.info.kinds,
                    "wit_version": plugin.wit_version,
                    "size_bytes": wasm.len(),
                    "signer": registration.signer,
                    "source": registration.source,
                    "cases": registration.cases,
                }),
            })
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
