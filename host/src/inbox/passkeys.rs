//! The inbox's passkey pages and the calls their script makes: a person
//! registers, lists and removes their own passkeys, and asks for the step-up
//! challenge of an action they may review. Every check is `stepup`'s or the
//! gate's; this module only carries requests and answers, and never decides.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::pages::{self, Notice, PasskeyView, PasskeysPage};
use super::session::{origin_refusal, same_token, SignedIn};
use super::App;
use super::{inbox, queue};
use crate::action::ActionId;
use crate::problem::{ApiJson, Problem};
use crate::stepup::{RegistrationFinish, StepUp, StepUpError};

/// The header the page's script carries the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn step_up(app: &App) -> Result<&StepUp, StepUpError> {
    app.gate
        .step_up()
        .map(|s| s.as_ref())
        .ok_or(StepUpError::NotConfigured)
}

/// The checks every script call passes before it is read: signed in, sent
/// from the inbox's own origin, with the session's CSRF token. Refusals are
/// problem+json, which the script shows in the page.
fn script_call(
    app: &App,
    me: Result<SignedIn, Response>,
    headers: &HeaderMap,
) -> Result<SignedIn, Problem> {
    let me = me.map_err(|_| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "signed-out",
            "Not signed in",
            "Your inbox session has ended. Reload the page and sign in again.",
        )
    })?;
    let public_url = &inbox(app).settings.public_url;
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let csrf_ok = token.is_some_and(|t| same_token(t, &me.session.csrf_token));
    if origin_refusal(headers, public_url).is_some() || !csrf_ok {
        tracing::warn!(approver = %me.approver, "inbox script call with a wrong origin or CSRF token refused");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "Request refused",
            "This request does not carry your session's security token or came from another site (CSRF protection). Nothing was changed. Reload the page and try again.",
        ));
    }
    Ok(me)
}

fn refused(e: StepUpError) -> Response {
    Problem::from(e).into_response()
}

#[derive(Debug, Deserialize)]
pub struct PasskeysQuery {
    done: Option<String>,
}

/// `GET /inbox/passkeys`: the person's passkeys, a way to add one and to
/// remove each.
pub async fn page(
    State(app): State<App>,
    me: SignedIn,
    Query(q): Query<PasskeysQuery>,
) -> Response {
    let Ok(su) = step_up(&app) else {
        return pages::problem_page(
            StatusCode::NOT_FOUND,
            "Passkeys are not in use here",
            "This actiongate has no [step_up] section, so no approval needs a passkey.",
            Some(me.me()),
        );
    };
    let passkeys = match su.list(&me.approver).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "listing passkeys failed");
            return pages::unavailable();
        }
    };
    let notice = match q.done.as_deref() {
        Some("registered") => Some((
            "Passkey added",
            "You can now approve actions that need a passkey step-up.",
        )),
        Some("removed") => Some(("Passkey removed", "It can no longer approve anything.")),
        _ => None,
    }
    .map(|(title, text)| Notice {
        kind: "ok",
        title: title.into(),
        text: text.into(),
        code: None,
    });
    let passkeys = passkeys
        .into_iter()
        .map(|p| {
            let (created, created_iso) = pages::times(p.created_at);
            PasskeyView {
                credential_short: p.credential_id.chars().take(16).collect(),
                id: p.id,
                label: p.label,
                created,
                created_iso,
                last_used: p.last_used_at.map(|at| pages::times(at).0),
                sign_count: p.sign_count,
            }
        })
        .collect();
    pages::render(
        StatusCode::OK,
        &PasskeysPage {
            me: Some(me.me()),
            passkeys,
            notice,
        },
    )
}

/// `POST /inbox/passkeys/registration`: options for `navigator.credentials.create`.
pub async fn registration_start(
    State(app): State<App>,
    me: Result<SignedIn, Response>,
    headers: HeaderMap,
) -> Response {
    let me = match script_call(&app, me, &headers) {
        Ok(me) => me,
        Err(refused) => return refused.into_response(),
    };
    let su = match step_up(&app) {
        Ok(su) => su,
        Err(e) => return refused(e),
    };
    match su.registration_start(&me.approver, &me.name).await {
        Ok(registration) => Json(registration).into_response(),
        Err(e) => refused(e),
    }
}

/// `POST /inbox/passkeys`: the new credential, for the person who started
/// the registration.
pub async fn registration_finish(
    State(app): State<App>,
    me: Result<SignedIn, Response>,
    headers: HeaderMap,
    body: Result<ApiJson<RegistrationFinish>, Problem>,
) -> Response {
    let me = match script_call(&app, me, &headers) {
        Ok(me) => me,
        Err(refused) => return refused.into_response(),
    };
    let ApiJson(body) = match body {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let su = match step_up(&app) {
        Ok(su) => su,
        Err(e) => return refused(e),
    };
    match su
        .registration_finish(
            &me.approver,
            &body.registration_id,
            &body.credential,
            body.label,
        )
        .await
    {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => refused(e),
    }
}

/// `POST /inbox/passkeys/{id}/remove`: a plain form, CSRF-checked.
pub async fn remove(
    State(app): State<App>,
    me: Result<SignedIn, Response>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let me = match me {
        Ok(me) => me,
        Err(refused) => return refused,
    };
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    if let Some(refused) =
        origin_refusal(&headers, &inbox(&app).settings.public_url).or_else(|| me.csrf_refusal(csrf))
    {
        return refused;
    }
    let outcome = match step_up(&app) {
        Ok(su) => su.remove(&me.approver, &id).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/inbox/passkeys?done=removed")],
        )
            .into_response(),
        Err(StepUpError::Store(e)) => {
            tracing::error!(error = %e, "removing a passkey failed");
            pages::unavailable()
        }
        Err(e) => pages::problem_page(
            StatusCode::NOT_FOUND,
            "Not removed",
            &e.to_string(),
            Some(me.me()),
        ),
    }
}

/// `POST /inbox/actions/{id}/step-up`: a challenge bound to the action's
/// current digest and this person, for `navigator.credentials.get`. Only
/// for an action the person may see, so the page leaks nothing others
/// could not open.
pub async fn challenge(
    State(app): State<App>,
    me: Result<SignedIn, Response>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let me = match script_call(&app, me, &headers) {
        Ok(me) => me,
        Err(refused) => return refused.into_response(),
    };
    let loaded = match queue::load(&app, &id).await {
        Ok(Some(loaded)) if queue::may_see(app.gate.directory(), &me, &loaded) => loaded,
        Ok(_) => {
            return Problem::not_found(format!("no action {id} is routed to you")).into_response()
        }
        Err(e) => return Problem::from(e).into_response(),
    };
    let id: &ActionId = &loaded.record.id;
    match app.gate.step_up_challenge(&me.approver, id).await {
        Ok(challenge) => Json(challenge).into_response(),
        Err(e) => crate::problem::review_problem(e).into_response(),
    }
}
