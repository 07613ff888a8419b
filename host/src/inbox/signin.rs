//! Signing in and out: the redirect to the provider, its callback, logout.
//! A person is the directory entry whose email equals the ID token's
//! verified `email`; anything else is refused on a page and in evidence.
//! Never creates a session before its `signed-in` event is committed.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use super::pages;
use super::session::{random_token, read_cookie, token_hash, SignedIn};
use super::App;
use super::{inbox, oidc::Identity};
use crate::evidence::payload::{self, Payload};
use crate::evidence::Actor;
use crate::store::{InboxLogin, InboxSession};

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Where to land after signing in: an inbox path, nothing else (no open
/// redirect through `next`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/inbox")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with("/inbox/login")
                && !n.starts_with("/inbox/callback") =>
        {
            n.to_string()
        }
        _ => "/inbox".to_string(),
    }
}

/// `GET /inbox/login`: to the provider, with a fresh state, nonce and PKCE
/// challenge. The state also goes into a short-lived cookie, so that only
/// the browser that started a sign-in can finish it.
pub async fn login(State(app): State<App>, Query(q): Query<LoginQuery>) -> Response {
    let inbox = inbox(&app);
    let started = match inbox.provider.start().await {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(error = %e, "inbox sign-in could not start");
            return pages::problem_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "The identity provider cannot be reached right now. Try again shortly.",
                None,
            );
        }
    };
    let now = Utc::now();
    let login = InboxLogin {
        state_hash: token_hash(&started.state),
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        return_to: safe_next(q.next.as_deref()),
        created_at: now,
        expires_at: now + inbox.settings.login_ttl,
    };
    if let Err(e) = app.gate.store().insert_inbox_login(&login).await {
        tracing::error!(error = %e, "inbox sign-in could not be stored");
        return pages::unavailable();
    }
    let cookie = inbox.cookies.set(
        inbox.cookies.login_name(),
        &started.state,
        inbox.settings.login_ttl,
    );
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::LOCATION,
                started.url.parse().expect("a URL is a header value"),
            ),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: which provider answered, when it says so.
    iss: Option<String>,
}

/// A refused sign-in: its evidence, then its page.
struct Refused {
    code: &'static str,
    text: String,
    identity: Option<Identity>,
}

impl Refused {
    fn new(code: &'static str, text: impl Into<String>) -> Refused {
        Refused {
            code,
            text: text.into(),
            identity: None,
        }
    }
}

/// `GET /inbox/callback`: the provider sends the browser back here.
pub async fn callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let inbox = inbox(&app);
    let clear_login = (
        header::SET_COOKIE,
        inbox.cookies.clear(inbox.cookies.login_name()),
    );
    match sign_in(&app, &headers, q).await {
        Ok(response) => response,
        Err(refused) => {
            let issuer = &inbox.settings.issuer;
            let identity = refused.identity.as_ref();
            tracing::warn!(
                reason = refused.code,
                email = identity.and_then(|i| i.email.as_deref()),
                "inbox sign-in refused"
            );
            let recorded = app
                .evidence
                .append(
                    payload::SignInRefused {
                        reason: refused.code.to_string(),
                        detail: refused.text.clone(),
                        issuer: issuer.clone(),
                        subject: identity.map(|i| i.subject.clone()),
                        email: identity.and_then(|i| i.email.clone()),
                        email_verified: identity.map(|i| i.email_verified),
                    }
                    .event(None, Actor::system("inbox")),
                )
                .await;
            if let Err(e) = recorded {
                tracing::error!(error = %e, "a refused sign-in could not be recorded");
            }
            let mut response = pages::sign_in_refused(refused.code, &refused.text);
            response.headers_mut().append(clear_login.0, clear_login.1);
            response
        }
    }
}

async fn sign_in(app: &App, headers: &HeaderMap, q: CallbackQuery) -> Result<Response, Refused> {
    let inbox = inbox(app);
    let state = q.state.unwrap_or_default();
    let cookie = read_cookie(headers, inbox.cookies.login_name());
    // Login CSRF: a callback must come back to the browser that left.
    if state.is_empty() || cookie.as_deref() != Some(state.as_str()) {
        return Err(Refused::new(
            "state-mismatch",
            "This sign-in was not started in this browser (its state does not match). Start again from the inbox.",
        ));
    }
    let login = match app.gate.store().take_inbox_login(&token_hash(&state)).await {
        Ok(Some(login)) => login,
        Ok(None) => {
            return Err(Refused::new(
                "unknown-sign-in",
                "This sign-in was already used or never started. Start again from the inbox.",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "inbox sign-in lookup failed");
            return Ok(pages::unavailable());
        }
    };
    let now = Utc::now();
    if login.expires_at <= now {
        return Err(Refused::new(
            "sign-in-expired",
            "This sign-in took too long. Start again from the inbox.",
        ));
    }
    if q.iss
        .as_ref()
        .is_some_and(|iss| *iss != inbox.settings.issuer)
    {
        return Err(Refused::new(
            "wrong-issuer",
            "The answer came from another identity provider than the one configured (RFC 9207 `iss`).",
        ));
    }
    if let Some(error) = q.error {
        return Err(Refused::new(
            "provider-refused",
            format!(
                "The identity provider refused the sign-in: {error}{}",
                q.error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let code = q.code.ok_or_else(|| {
        Refused::new(
            "no-code",
            "The identity provider sent no authorization code.",
        )
    })?;
    let identity = inbox
        .provider
        .finish(&code, &login.nonce, &login.pkce_verifier)
        .await
        .map_err(|e| Refused::new(e.code(), e.to_string()))?;
    let refuse = |code: &'static str, text: String| Refused {
        code,
        text,
        identity: Some(identity.clone()),
    };
    let Some(email) = identity.email.as_deref() else {
        return Err(refuse(
            "no-email",
            "The identity provider did not say who you are by email (is the `email` scope granted?).".into(),
        ));
    };
    if !identity.email_verified {
        return Err(refuse(
            "email-unverified",
            format!("The identity provider has not verified the email {email}, so it cannot name an approver."),
        ));
    }
    let Some(person) = app.gate.directory().person_by_email(email) else {
        return Err(refuse(
            "unknown-person",
            format!("{email} is not in actiongate's approver directory."),
        ));
    };

    let cookie = random_token().map_err(|e| Refused::new("random-failed", e.to_string()))?;
    let session = InboxSession {
        id_hash: token_hash(&cookie),
        email: person.email().to_string(),
        idp_groups: identity
            .groups
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("strings serialize")),
        csrf_token: random_token().map_err(|e| Refused::new("random-failed", e.to_string()))?,
        created_at: now,
        expires_at: now + inbox.settings.session_ttl,
        ended_at: None,
    };
    let recorded = app
        .evidence
        .append(
            payload::SignedIn {
                approver: person.email().to_string(),
                issuer: inbox.settings.issuer.clone(),
                subject: identity.subject.clone(),
                groups: identity.groups.clone(),
                // Names the session without being able to act as it.
                session: session.id_hash[..16].to_string(),
                expires_at: session.expires_at,
            }
            .event(
                None,
                Actor {
                    kind: crate::evidence::ActorKind::Human,
                    id: person.email().to_string(),
                },
            ),
        )
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "a sign-in could not be recorded; no session");
        return Ok(pages::unavailable());
    }
    if let Err(e) = app.gate.store().insert_inbox_session(&session).await {
        tracing::error!(error = %e, "inbox session could not be stored");
        return Ok(pages::unavailable());
    }
    tracing::info!(approver = %person.email(), "inbox sign-in");
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, login.return_to)]).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        inbox
            .cookies
            .set_for_session(inbox.cookies.session_name(), &cookie),
    );
    headers.append(
        header::SET_COOKIE,
        inbox.cookies.clear(inbox.cookies.login_name()),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /inbox/logout`: ends the session on the server, then the cookie.
pub async fn logout(
    State(app): State<App>,
    me: Result<SignedIn, Response>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    // Judged after the form is read (see review::submit).
    let me = match me {
        Ok(me) => me,
        Err(refused) => return refused,
    };
    let inbox = inbox(&app);
    if let Some(refused) = super::session::origin_refusal(&headers, &inbox.settings.public_url)
        .or_else(|| me.csrf_refusal(form.csrf.as_deref()))
    {
        return refused;
    }
    if let Err(e) = app
        .gate
        .store()
        .end_inbox_session(&me.session.id_hash, Utc::now())
        .await
    {
        tracing::error!(error = %e, "inbox session could not be ended");
        return pages::unavailable();
    }
    let mut response = pages::render(
        StatusCode::OK,
        &pages::MessagePage {
            me: None,
            title: "Signed out".into(),
            text: "You are signed out of the actiongate inbox.".into(),
            code: None,
            sign_in: true,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        inbox.cookies.clear(inbox.cookies.session_name()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_in_the_inbox() {
        assert_eq!(safe_next(Some("/inbox/actions/x")), "/inbox/actions/x");
        for bad in [
            "https://evil.example/",
            "//evil.example/inbox",
            "/inbox\\@evil",
            "/v1/actions",
            "/inbox/login?next=/x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/inbox", "{bad}");
        }
        assert_eq!(safe_next(None), "/inbox");
    }
}
