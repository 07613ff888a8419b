//! Slack request signing (v0): HMAC-SHA256 of `v0:{timestamp}:{body}` with
//! the signing secret, compared in constant time. Never logs the secret or
//! the signature it expected.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Requests whose timestamp is further than this from our clock are refused.
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("the request timestamp is not a Unix time")]
    BadTimestamp,
    #[error(
        "the request timestamp is {skew} s away from now (at most {MAX_SKEW_SECONDS} s allowed)"
    )]
    Stale { skew: i64 },
    #[error("the signature does not match")]
    BadSignature,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The `X-Slack-Signature` Slack would send: `v0=` and lowercase hex.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks one request as it arrived. `now` is Unix seconds. On success,
/// returns the timestamp, which the caller uses for replay detection.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<i64, VerifyError> {
    let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.saturating_sub(at).saturating_abs();
    if skew > MAX_SKEW_SECONDS {
        return Err(VerifyError::Stale { skew });
    }
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(VerifyError::BadSignature)?;
    // `verify_slice` compares in constant time.
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's published example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slack_published_test_vector() {
        assert_eq!(
            signature(SECRET.as_bytes(), TIMESTAMP, BODY.as_bytes()),
            EXPECTED
        );
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                Some(TIMESTAMP),
                Some(EXPECTED),
                BODY.as_bytes(),
                1531420618 + 10
            ),
            Ok(1531420618)
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_garbage() {
        let now = 1531420618;
        let check = |ts: Option<&str>, sig: Option<&str>, body: &str, now: i64| {
            verify(SECRET.as_bytes(), ts, sig, body.as_bytes(), now)
        };
        let tampered = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            check(Some(TIMESTAMP), Some(EXPECTED), &tampered, now),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                b"another-secret",
                Some(TIMESTAMP),
                Some(EXPECTED),
                BODY.as_bytes(),
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(Some(TIMESTAMP), Some(EXPECTED), BODY, now + 301),
            Err(VerifyError::Stale { skew: 301 })
        );
        assert_eq!(
            check(Some(TIMESTAMP), Some(EXPECTED), BODY, now - 301),
            Err(VerifyError::Stale { skew: 301 })
        );
        assert!(check(Some(TIMESTAMP), Some(EXPECTED), BODY, now + 300).is_ok());
        assert_eq!(
            check(Some("soon"), Some(EXPECTED), BODY, now),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            check(None, Some(EXPECTED), BODY, now),
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            check(Some(TIMESTAMP), None, BODY, now),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        for bad in [
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=zz",
            "v0=a2114d57",
            "",
        ] {
            assert_eq!(
                check(Some(TIMESTAMP), Some(bad), BODY, now),
                Err(VerifyError::BadSignature),
                "{bad}"
            );
        }
        // A timestamp far in the past must not overflow the skew arithmetic.
        assert!(matches!(
            check(Some("-9223372036854775808"), Some(EXPECTED), BODY, now),
            Err(VerifyError::Stale { .. })
        ));
    }
}
