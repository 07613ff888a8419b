//! Admission of a plugin a person submits: the signature first (nothing
//! unsigned is even compiled when signatures are required), then its case
//! file, then `register`. Refuses; never binds.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::signature::{AllowedSigners, SignatureError, Signer};
use super::PluginsConfig;
use super::{register, CasesPassed, Registration, RegistryError};
use crate::cases::{CaseFileError, CaseResult};
use crate::evaluate::Evaluator;
use crate::evidence::{Actor, EvidenceLog};
use crate::sandbox::Plugin;

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("signature refused: {0}")]
    Signature(#[from] SignatureError),
    #[error("case file: {0}")]
    CaseFile(#[from] CaseFileError),
    #[error("{} of {} cases failed", failed.len(), total)]
    CasesFailed {
        total: usize,
        /// `case name: diff; diff` for each failing case.
        failed: Vec<String>,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The signature policy from `[plugins]`, checked once at start.
pub struct Admission {
    require_signature: bool,
    signers: Option<AllowedSigners>,
}

/// What a person submits.
pub struct Submitted<'a> {
    pub wasm: &'a [u8],
    /// An armored SSHSIG over `wasm`.
    pub signature: Option<&'a str>,
    /// A case file (TOML) the plugin must pass.
    pub cases: Option<&'a str>,
    /// Where it came from (a file name), for the record.
    pub source: String,
    pub by: Actor,
}

/// What was admitted.
pub struct Admitted {
    pub plugin: Arc<Plugin>,
    /// False when these exact bytes were registered before (the first
    /// registration and its record stand).
    pub new: bool,
    pub signer: Option<Signer>,
    pub cases: Option<CasesPassed>,
}

impl Admission {
    /// Reads the allowed-signers file; with `require_signature`, one must be given.
    pub fn from_config(config: &PluginsConfig) -> Result<Self, SignatureError> {
        let signers = config
            .allowed_signers
            .as_deref()
            .map(AllowedSigners::load)
            .transpose()?;
        if config.require_signature && signers.as_ref().is_none_or(AllowedSigners::is_empty) {
            return Err(SignatureError::File {
                path: config
                    .allowed_signers
                    .as_ref()
                    .map_or_else(|| "(none)".into(), |p| p.display().to_string()),
                reason: "require_signature is on, so [plugins] allowed_signers must list at least one key".into(),
            });
        }
        Ok(Admission {
            require_signature: config.require_signature,
            signers,
        })
    }

    /// Checks the signature (a given one always; a missing one when
    /// required), runs the case file, then registers.
    pub async fn admit(
        &self,
        evaluator: &Evaluator,
        evidence: &EvidenceLog,
        submitted: Submitted<'_>,
    ) -> Result<Admitted, AdmitError> {
        let signer = match (submitted.signature, &self.signers) {
            (Some(signature), Some(signers)) => Some(signers.verify(submitted.wasm, signature)?),
            (Some(_), None) => {
                return Err(SignatureError::File {
                    path: "(none)".into(),
                    reason: "a signature was given but no [plugins] allowed_signers file is configured to check it".into(),
                }
                .into())
            }
            (None, _) if self.require_signature => return Err(SignatureError::Missing.into()),
            (None, _) => None,
        };
        let cases = match submitted.cases {
            Some(text) => Some(run_cases(evaluator, submitted.wasm, text).await?),
            None => None,
        };
        // Compile off the async threads; `register` then finds it loaded.
        let sandbox = evaluator.sandbox().clone();
        let wasm = submitted.wasm.to_vec();
        tokio::task::spawn_blocking(move || sandbox.load(&wasm, None))
            .await
            .expect("loading never panics: failures are values")
            .map_err(RegistryError::from)?;
        let (plugin, new) = register(
            evaluator,
            evidence,
            submitted.wasm,
            Registration {
                by: submitted.by,
                signer: signer.as_ref().map(ToString::to_string),
                source: submitted.source,
                pin: None,
                cases: cases.clone(),
            },
        )
        .await?;
        Ok(Admitted {
            plugin,
            new,
            signer,
            cases,
        })
    }
}

async fn run_cases(
    evaluator: &Evaluator,
    wasm: &[u8],
    text: &str,
) -> Result<CasesPassed, AdmitError> {
    let sandbox = evaluator.sandbox().clone();
    let directory = evaluator.directory().cloned();
    let (wasm, owned) = (wasm.to_vec(), text.to_string());
    let results: Vec<CaseResult> = tokio::task::spawn_blocking(move || {
        crate::cases::run(&sandbox, &wasm, &owned, directory.as_deref())
    })
    .await
    .expect("cases never panic: failures are values")?;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {}", r.name, r.diffs.join("; ")))
        .collect();
    if !failed.is_empty() {
        return Err(AdmitError::CasesFailed {
            total: results.len(),
            failed,
        });
    }
    Ok(CasesPassed {
        count: results.len(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
    })
}
