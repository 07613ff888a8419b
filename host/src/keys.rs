//! Secrets the host holds: bearer API keys (only their sha256 is stored)
//! and the Ed25519 grant-signing key (a file, created on first start).
//! Never logs a key; never stores one in clear.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rand::TryRng as _;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("writing key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is not a 32-byte Ed25519 seed in base64url")]
    Malformed { path: String },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

/// A new bearer API key: `ag_` then 32 random bytes in base64url. Shown
/// once; only `hash_api_key` of it is stored.
pub fn new_api_key() -> Result<String, KeyError> {
    Ok(format!(
        "ag_{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    ))
}

/// What is stored for an API key. The key has 256 bits of entropy, so a
/// fast hash is enough: there is nothing to brute-force.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Loads the Ed25519 key at `path`, creating it (mode 0600) if absent.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let shown = path.display().to_string();
    match fs::read_to_string(path) {
        Ok(text) => {
            let seed: [u8; 32] = URL_SAFE_NO_PAD
                .decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(KeyError::Malformed { path: shown })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed = random_bytes::<32>()?;
            write_private(path, URL_SAFE_NO_PAD.encode(seed).as_bytes()).map_err(|source| {
                KeyError::Write {
                    path: shown.clone(),
                    source,
                }
            })?;
            tracing::info!(path = %shown, "created a new signing key");
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(source) => Err(KeyError::Read {
            path: shown,
            source,
        }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // create_new: two replicas starting at once must not overwrite each other's key.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_random_and_hashed() {
        let (a, b) = (new_api_key().unwrap(), new_api_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("ag_") && a.len() == 46, "{a}");
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), hash_api_key(&b));
    }

    #[test]
    fn signing_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/grant.key");
        let first = load_or_create_signing_key(&path).unwrap();
        let second = load_or_create_signing_key(&path).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
        fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create_signing_key(&path),
            Err(KeyError::Malformed { .. })
        ));
    }
}
