//! Plugin signatures: an SSHSIG (`ssh-keygen -Y sign -n actiongate-plugin`)
//! over the component's exact bytes, by a key listed in an OpenSSH
//! allowed-signers file. Verifies; never signs. Anything it does not
//! understand in the allowed-signers file is an error at start, not a key
//! silently trusted or ignored.

use std::fmt;
use std::path::Path;

use ssh_key::{HashAlg, PublicKey, SshSig};

/// The namespace plugin signatures are made in (`ssh-keygen -Y sign -n`).
pub const NAMESPACE: &str = "actiongate-plugin";

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("allowed signers file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("allowed signers line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("a signature is required ([plugins] require_signature): sign with `ssh-keygen -Y sign -n {NAMESPACE} -f KEY PLUGIN.wasm`")]
    Missing,
    #[error("not an SSH signature (expected -----BEGIN SSH SIGNATURE-----): {0}")]
    Malformed(String),
    #[error("the signature is in namespace {found:?}; plugins are signed with -n {NAMESPACE}")]
    Namespace { found: String },
    #[error("the signing key {fingerprint} is not in the allowed signers")]
    UnknownKey { fingerprint: String },
    #[error("the signing key {fingerprint} is not allowed to sign in namespace {NAMESPACE}")]
    NamespaceNotAllowed { fingerprint: String },
    #[error("the signature by {fingerprint} does not verify over these bytes")]
    Invalid { fingerprint: String },
}

/// Who signed: the principals the allowed-signers file gives the key, and
/// the key's SHA256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub principals: Vec<String>,
    pub fingerprint: String,
}

impl fmt::Display for Signer {
    /// `alice@example.com SHA256:…`, as stored in `plugins.signer`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.principals.join(","), self.fingerprint)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    principals: Vec<String>,
    /// `namespaces="…"`: the namespaces (patterns) this key may sign in.
    namespaces: Option<Vec<globset::GlobMatcher>>,
    key: PublicKey,
}

/// A parsed allowed-signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    entries: Vec<Entry>,
}

impl AllowedSigners {
    pub fn load(path: &Path) -> Result<Self, SignatureError> {
        let text = std::fs::read_to_string(path).map_err(|e| SignatureError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|e| SignatureError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Parses `principals [options] keytype base64-key [comment]` lines
    /// (ssh-keygen(1), ALLOWED SIGNERS). Supported option: `namespaces`.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| SignatureError::Line {
                line: index + 1,
                reason,
            };
            let (principals, rest) = take_field(line);
            let principals: Vec<String> = principals
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
            if principals.is_empty() {
                return Err(err("no principals".into()));
            }
            let (next, after) = take_field(rest);
            let (options, key_text) = if is_key_type(&next) {
                (None, rest)
            } else {
                (Some(next), after)
            };
            let mut namespaces = None;
            if let Some(options) = options {
                for option in split_options(&options) {
                    let (name, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
                    match name.to_ascii_lowercase().as_str() {
                        "namespaces" => {
                            let value = value.trim_matches('"');
                            let patterns = value
                                .split(',')
                                .map(|ns| {
                                    globset::Glob::new(ns.trim())
                                        .map(|g| g.compile_matcher())
                                        .map_err(|e| err(format!("namespace pattern {ns:?}: {e}")))
                                })
                                .collect::<Result<Vec<_>, _>>()?;
                            namespaces = Some(patterns);
                        }
                        other => {
                            return Err(err(format!(
                                "option {other:?} is not supported (only namespaces=\"…\"); list plain keys"
                            )))
                        }
                    }
                }
            }
            let key = PublicKey::from_openssh(key_text.trim())
                .map_err(|e| err(format!("not an OpenSSH public key: {e}")))?;
            entries.push(Entry {
                principals,
                namespaces,
                key,
            });
        }
        Ok(AllowedSigners { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Verifies an armored SSHSIG over `message` in [`NAMESPACE`] by an
    /// allowed key; returns the signer.
    pub fn verify(&self, message: &[u8], armored: &str) -> Result<Signer, SignatureError> {
        let signature = SshSig::from_pem(armored.trim().as_bytes())
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        let fingerprint = signature
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        if signature.namespace() != NAMESPACE {
            return Err(SignatureError::Namespace {
                found: signature.namespace().to_string(),
            });
        }
        let listed: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.key.key_data() == signature.public_key())
            .collect();
        if listed.is_empty() {
            return Err(SignatureError::UnknownKey { fingerprint });
        }
        let allowed: Vec<&Entry> = listed
            .into_iter()
            .filter(|e| {
                e.namespaces
                    .as_ref()
                    .is_none_or(|patterns| patterns.iter().any(|p| p.is_match(NAMESPACE)))
            })
            .collect();
        let Some(first) = allowed.first() else {
            return Err(SignatureError::NamespaceNotAllowed { fingerprint });
        };
        first
            .key
            .verify(NAMESPACE, message, &signature)
            .map_err(|_| SignatureError::Invalid {
                fingerprint: fingerprint.clone(),
            })?;
        let mut principals: Vec<String> = Vec::new();
        for entry in &allowed {
            for p in &entry.principals {
                if !principals.contains(p) {
                    principals.push(p.clone());
                }
            }
        }
        Ok(Signer {
            principals,
            fingerprint,
        })
    }
}

/// The first whitespace-separated field (a `"…"` field may hold spaces) and the rest.
fn take_field(s: &str) -> (String, &str) {
    let s = s.trim_start();
    if let Some(quoted) = s.strip_prefix('"') {
        if let Some(end) = quoted.find('"') {
            return (quoted[..end].to_string(), &quoted[end + 1..]);
        }
    }
    let mut in_quotes = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => return (s[..i].to_string(), &s[i..]),
            _ => {}
        }
    }
    (s.to_string(), "")
}

/// Splits `a,b="x,y",c` at the commas outside quotes.
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            ',' if !in_quotes => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_key_type(field: &str) -> bool {
    field.starts_with("ssh-") || field.starts_with("ecdsa-sha2-") || field.starts_with("sk-")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXPkJPI4TMFWZP4xRBQjNeizUG99KuZCt9G23rX48kz";

    #[test]
    fn parses_principals_options_and_comments() {
        let text = format!(
            "# security team\n\nalice@example.com,bob@example.com {KEY} laptop\ncarol@example.com namespaces=\"git,actiongate-*\" {KEY}\n\"dave smith\" {KEY}\n"
        );
        let signers = AllowedSigners::parse(&text).unwrap();
        assert_eq!(signers.len(), 3);
        assert_eq!(
            signers.entries[0].principals,
            ["alice@example.com", "bob@example.com"]
        );
        let namespaces = signers.entries[1].namespaces.as_ref().unwrap();
        assert!(namespaces.iter().any(|p| p.is_match(NAMESPACE)));
        assert!(!namespaces.iter().any(|p| p.is_match("file")));
        assert_eq!(signers.entries[2].principals, ["dave smith"]);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            format!("alice@example.com cert-authority {KEY}"),
            format!("alice@example.com valid-before=\"20300101\" {KEY}"),
            "alice@example.com ssh-ed25519 not-base64".to_string(),
            KEY.to_string(),
        ] {
            let err = AllowedSigners::parse(&bad).unwrap_err();
            assert!(
                matches!(err, SignatureError::Line { line: 1, .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_signature() {
        let signers = AllowedSigners::parse(&format!("alice@example.com {KEY}")).unwrap();
        assert!(matches!(
            signers.verify(b"wasm", "not a signature"),
            Err(SignatureError::Malformed(_))
        ));
    }
}
