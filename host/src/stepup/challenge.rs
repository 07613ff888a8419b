//! The step-up challenge: derived, never merely random, so the signed
//! client data itself names the action version and the approver it was
//! made for. Pure; the nonce's single use is the store's job.

use sha2::{Digest, Sha256};

/// Separates step-up challenges from any other use of the same inputs.
pub const DOMAIN: &[u8] = b"actiongate/step-up/v1";

/// sha256(DOMAIN, action id, action digest, approver, nonce), each
/// length-prefixed so no two different tuples hash the same bytes.
pub fn derive(action_id: &str, digest: &str, approver: &str, nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        DOMAIN,
        action_id.as_bytes(),
        digest.as_bytes(),
        approver.as_bytes(),
        nonce,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_changes_the_challenge() {
        let base = derive("a", "d", "p@x", b"n");
        assert_eq!(base, derive("a", "d", "p@x", b"n"));
        assert_ne!(base, derive("b", "d", "p@x", b"n"));
        assert_ne!(base, derive("a", "e", "p@x", b"n"));
        assert_ne!(base, derive("a", "d", "q@x", b"n"));
        assert_ne!(base, derive("a", "d", "p@x", b"m"));
        // Length prefixes: moving a byte across a boundary changes it.
        assert_ne!(derive("ab", "c", "p", b"n"), derive("a", "bc", "p", b"n"));
    }
}
