//! Inbox sessions: the cookie, the server-side session it names, and the
//! CSRF check every form post passes. The cookie is an opaque random value;
//! only its sha256 is stored, and expiry is the server's, never the browser's.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::pages::{self, Me};
use super::App;
use super::Inbox;
use crate::directory::ApproverId;
use crate::store::InboxSession;

/// A fresh random token (32 bytes, base64url) for a cookie, state or CSRF.
pub fn random_token() -> Result<String, crate::keys::KeyError> {
    Ok(URL_SAFE_NO_PAD.encode(crate::keys::random_bytes::<32>()?))
}

/// What is stored for a browser-held token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality, for tokens a forger may probe byte by byte.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Cookie names and attributes. Over TLS the names carry the `__Host-`
/// prefix, which browsers only accept with `Secure`, `Path=/` and no
/// `Domain`, so no sibling host can plant one.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(self) -> &'static str {
        if self.secure {
            "__Host-actiongate_inbox"
        } else {
            "actiongate_inbox"
        }
    }

    pub fn login_name(self) -> &'static str {
        if self.secure {
            "__Host-actiongate_signin"
        } else {
            "actiongate_signin"
        }
    }

    /// `SameSite=Lax`: the cookie comes along when a chat card's link is
    /// followed (a top-level GET), never on another site's form post; every
    /// form post is also CSRF-checked.
    fn header(self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let max_age = max_age
            .map(|s| format!("; Max-Age={s}"))
            .unwrap_or_default();
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax{max_age}{secure}"
        ))
        .expect("cookie values are base64url")
    }

    /// A cookie the browser drops after `max_age`.
    pub fn set(self, name: &str, value: &str, max_age: chrono::Duration) -> HeaderValue {
        self.header(name, value, Some(max_age.num_seconds().max(1)))
    }

    /// A cookie for as long as the browser runs: the server's expiry is the
    /// one that counts, and a person past it is told so.
    pub fn set_for_session(self, name: &str, value: &str) -> HeaderValue {
        self.header(name, value, None)
    }

    pub fn clear(self, name: &str) -> HeaderValue {
        self.header(name, "", Some(0))
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A signed-in person, from a live session and the directory.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub approver: ApproverId,
    pub name: String,
    pub session: InboxSession,
    /// The provider's groups, when a group claim is configured.
    pub idp_groups: Option<Vec<String>>,
    /// Whether passkey step-up is configured.
    pub passkeys: bool,
}

impl SignedIn {
    pub fn me(&self) -> Me {
        Me {
            name: self.name.clone(),
            email: self.approver.to_string(),
            csrf: self.session.csrf_token.clone(),
            passkeys: self.passkeys,
        }
    }

    /// Whether the provider lets this person act for `group` (always, with
    /// no group claim configured: the directory alone decides).
    pub fn provider_allows(&self, group: &str) -> bool {
        self.idp_groups
            .as_ref()
            .is_none_or(|groups| groups.iter().any(|g| g == group))
    }

    /// The refusal of a form post whose CSRF token is not this session's.
    pub fn csrf_refusal(&self, token: Option<&str>) -> Option<Response> {
        match token {
            Some(t) if same_token(t, &self.session.csrf_token) => None,
            _ => {
                tracing::warn!(approver = %self.approver, "inbox form post with a wrong CSRF token refused");
                Some(pages::problem_page(
                    axum::http::StatusCode::FORBIDDEN,
                    "Form refused",
                    "This form's security token does not belong to your session (CSRF protection). Nothing was changed. Reload the page and try again.",
                    Some(self.me()),
                ))
            }
        }
    }
}

/// Where a request without a session goes: sign in, then come back. A
/// form post is answered with a page instead: the CSP's `form-action`
/// (rightly) stops a post from being redirected to the provider.
fn to_sign_in(parts: &Parts) -> Response {
    if parts.method != axum::http::Method::GET {
        return pages::signed_out_page("You are not signed in.");
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/inbox");
    // Pages come back; the event stream returns to the list.
    let next = if !path.starts_with("/inbox/live") {
        path
    } else {
        "/inbox"
    };
    let location = format!(
        "/inbox/login?{}",
        serde_urlencoded::to_string([("next", next)]).expect("encodes")
    );
    (
        axum::http::StatusCode::SEE_OTHER,
        [(header::LOCATION, location)],
    )
        .into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn
where
    App: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let inbox: &Inbox = super::inbox(&app);
        let Some(cookie) = read_cookie(&parts.headers, inbox.cookies.session_name()) else {
            return Err(to_sign_in(parts));
        };
        let session = match app.gate.store().inbox_session(&token_hash(&cookie)).await {
            Ok(Some(session)) => session,
            // An unknown cookie is no session at all.
            Ok(None) => return Err(to_sign_in(parts)),
            Err(e) => {
                tracing::error!(error = %e, "inbox session lookup failed");
                return Err(pages::unavailable());
            }
        };
        let now = Utc::now();
        if session.ended_at.is_some() || session.expires_at <= now {
            let why = if session.ended_at.is_some() {
                "You signed out of this session."
            } else {
                "Your session has expired."
            };
            let mut response = pages::signed_out_page(why);
            response.headers_mut().append(
                header::SET_COOKIE,
                inbox.cookies.clear(inbox.cookies.session_name()),
            );
            return Err(response);
        }
        let Some(person) = app.gate.directory().person_by_email(&session.email) else {
            return Err(pages::problem_page(
                axum::http::StatusCode::FORBIDDEN,
                "Not an approver",
                &format!("{} is no longer in the approver directory.", session.email),
                None,
            ));
        };
        let idp_groups = session
            .idp_groups
            .as_ref()
            .map(|text| serde_json::from_str(text).unwrap_or_default());
        Ok(SignedIn {
            approver: person.id().clone(),
            name: person.name().to_string(),
            session,
            idp_groups,
            passkeys: app.gate.step_up().is_some(),
        })
    }
}

/// The refusal of a cross-site form post by its `Origin`, when the browser
/// sends one (the CSRF token is checked as well).
pub fn origin_refusal(headers: &HeaderMap, public_url: &str) -> Option<Response> {
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) if origin != public_url => Some(pages::problem_page(
            axum::http::StatusCode::FORBIDDEN,
            "Form refused",
            "This form was posted from another site. Nothing was changed.",
            None,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_over_tls_are_host_prefixed_and_secure() {
        let tls = Cookies { secure: true };
        let v = tls.set(tls.session_name(), "abc", chrono::Duration::hours(1));
        let v = v.to_str().unwrap();
        assert!(v.starts_with(
            "__Host-actiongate_inbox=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"
        ));
        assert!(v.ends_with("; Secure"));
        let plain = Cookies { secure: false };
        let v = plain.set(plain.session_name(), "abc", chrono::Duration::hours(1));
        assert!(!v.to_str().unwrap().contains("Secure"));
        assert!(plain.clear("x").to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn reads_one_cookie_among_many() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; actiongate_inbox=tok; b=2".parse().unwrap(),
        );
        assert_eq!(
            read_cookie(&headers, "actiongate_inbox").as_deref(),
            Some("tok")
        );
        assert_eq!(read_cookie(&headers, "actiongate"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert_ne!(random_token().unwrap(), random_token().unwrap());
        assert_eq!(token_hash("x").len(), 64);
    }
}
