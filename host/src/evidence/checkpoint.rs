//! The log key and C2SP tlog-checkpoint signed notes (Ed25519). Owns the key
//! file; never overwrites an existing key.

use std::io::Write;
use std::path::Path;

use base64::prelude::{Engine, BASE64_STANDARD};
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::checkpoint::Checkpoint;
use tlog_tiles::tlog::Hash;

/// Errors about the log key or a checkpoint's form or signature.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("log key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("log key file {path} is not a signed-note Ed25519 private key")]
    KeyFormat { path: String },
    #[error("log key {path} is for {found:?}, but the log origin is {want:?}")]
    KeyName {
        path: String,
        found: String,
        want: String,
    },
    #[error("invalid log origin {0:?} (no spaces or '+')")]
    Origin(String),
    #[error("invalid verifier key: {0}")]
    VerifierKey(String),
    #[error("signed note: {0}")]
    Note(String),
    #[error("malformed checkpoint body")]
    Malformed,
    #[error("checkpoint origin is {found:?}, want {want:?}")]
    WrongOrigin { found: String, want: String },
}

/// The host's Ed25519 key that signs checkpoints, named after the log origin.
pub struct LogKey {
    signer: StandardSigner,
    name: String,
    vkey: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("vkey", &self.vkey)
            .finish_non_exhaustive()
    }
}

impl LogKey {
    /// Loads the key at `path`, generating it on first start. Creation is
    /// atomic (write aside, then hard-link), so two replicas starting at once
    /// end up with the same key.
    pub fn load_or_generate(path: &Path, origin: &str) -> Result<LogKey, CheckpointError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(CheckpointError::Origin(origin.to_owned()));
        }
        let file_err = |source| CheckpointError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(file_err)?;
            }
            let (skey, _) = signed_note::generate_key(&mut rand_core::OsRng, origin);
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile_in(dir).map_err(file_err)?;
            tmp.1
                .write_all(format!("{skey}\n").as_bytes())
                .map_err(file_err)?;
            tmp.1.sync_all().map_err(file_err)?;
            match std::fs::hard_link(&tmp.0, path) {
                Ok(()) => tracing::info!(path = %path.display(), "generated log key"),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp.0);
                    return Err(file_err(e));
                }
            }
            let _ = std::fs::remove_file(&tmp.0);
        }
        Self::load(path, origin)
    }

    /// Loads an existing key; its name must be `origin`.
    pub fn load(path: &Path, origin: &str) -> Result<LogKey, CheckpointError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::KeyFile {
            path: p.clone(),
            source,
        })?;
        let skey = text.trim();
        let signer = StandardSigner::new(skey)
            .map_err(|_| CheckpointError::KeyFormat { path: p.clone() })?;
        let name = signed_note::Signer::name(&signer).to_owned();
        if name != origin {
            return Err(CheckpointError::KeyName {
                path: p,
                found: name,
                want: origin.to_owned(),
            });
        }
        // StandardSigner keeps its public key private; derive it from the seed.
        // PRIVATE+KEY+name+id+base64; names hold no '+', base64 may.
        let b64 = skey.splitn(5, '+').nth(4).unwrap_or_default();
        let raw = BASE64_STANDARD
            .decode(b64)
            .map_err(|_| CheckpointError::KeyFormat { path: p.clone() })?;
        let seed: [u8; 32] = raw
            .get(1..)
            .and_then(|s| s.try_into().ok())
            .ok_or(CheckpointError::KeyFormat { path: p })?;
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let vkey = signed_note::new_ed25519_verifier_key(&name, &sk.verifying_key());
        Ok(LogKey { signer, name, vkey })
    }

    /// The C2SP verifier key, `name+keyhash+base64`.
    pub fn verifier_key(&self) -> &str {
        &self.vkey
    }

    pub fn origin(&self) -> &str {
        &self.name
    }

    /// A signed C2SP tlog-checkpoint for the tree of `size` leaves with `root`.
    pub fn sign(&self, size: u64, root: [u8; 32]) -> Result<String, CheckpointError> {
        let cp = Checkpoint::new(&self.name, size, Hash(root), "")
            .map_err(|_| CheckpointError::Malformed)?;
        let mut note =
            Note::new(&cp.to_bytes(), &[]).map_err(|e| CheckpointError::Note(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::Note(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| CheckpointError::Note(e.to_string()))
    }
}

/// A checkpoint whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

/// Verifies a signed note against `vkey` and parses its checkpoint body.
pub fn verify(note: &str, vkey: &str) -> Result<VerifiedCheckpoint, CheckpointError> {
    let verifier =
        StandardVerifier::new(vkey).map_err(|e| CheckpointError::VerifierKey(e.to_string()))?;
    let origin = signed_note::Verifier::name(&verifier).to_owned();
    let n = Note::from_bytes(note.as_bytes()).map_err(|e| CheckpointError::Note(e.to_string()))?;
    n.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| CheckpointError::Note(e.to_string()))?;
    let cp = Checkpoint::from_bytes(n.text()).map_err(|_| CheckpointError::Malformed)?;
    if cp.origin() != origin {
        return Err(CheckpointError::WrongOrigin {
            found: cp.origin().to_owned(),
            want: origin,
        });
    }
    Ok(VerifiedCheckpoint {
        origin,
        size: cp.size(),
        root: cp.hash().0,
    })
}

fn tempfile_in(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = format!(".log.key.{}.{}", std::process::id(), rand::random::<u64>());
    let path = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_and_signs_verifiable_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/log.key");
        let k1 = LogKey::load_or_generate(&path, "example.test/log").unwrap();
        let k2 = LogKey::load_or_generate(&path, "example.test/log").unwrap();
        assert_eq!(k1.verifier_key(), k2.verifier_key());
        assert!(k1.verifier_key().starts_with("example.test/log+"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let note = k1.sign(5, [7; 32]).unwrap();
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "example.test/log");
        assert_eq!(lines[1], "5");
        assert_eq!(lines[2], BASE64_STANDARD.encode([7u8; 32]));
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("— example.test/log "));
        let v = verify(&note, k1.verifier_key()).unwrap();
        assert_eq!((v.size, v.root), (5, [7; 32]));

        let forged = note.replacen("\n5\n", "\n6\n", 1);
        assert!(verify(&forged, k1.verifier_key()).is_err());
        let other =
            LogKey::load_or_generate(&dir.path().join("other.key"), "example.test/log").unwrap();
        assert!(verify(&note, other.verifier_key()).is_err());
    }

    #[test]
    fn key_for_another_origin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.key");
        LogKey::load_or_generate(&path, "a.test/log").unwrap();
        assert!(matches!(
            LogKey::load_or_generate(&path, "b.test/log"),
            Err(CheckpointError::KeyName { .. })
        ));
    }
}
