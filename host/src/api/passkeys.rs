//! An approver's own passkeys and step-up challenges over the API, for the
//! inbox's pages and for tests. Every check is `stepup`'s; none is here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::approvals::ApproverCaller;
use super::error::{ApiJson, Problem};
use super::App;
use crate::stepup::{PasskeyInfo, Registration, StepUp, StepUpChallenge, StepUpError};

fn step_up(app: &App) -> Result<&StepUp, Problem> {
    app.gate
        .step_up()
        .map(|s| s.as_ref())
        .ok_or_else(|| StepUpError::NotConfigured.into())
}

/// Starts registering a passkey for the caller: options for `navigator.credentials.create`.
#[utoipa::path(post, path = "/v1/passkeys/registration", operation_id = "start_passkey_registration", tag = "passkeys",
    responses((status = 200, body = Registration), (status = 404, description = "Step-up is not configured")),
    security(("bearer" = [])))]
pub async fn registration_start(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
) -> Result<Json<Registration>, Problem> {
    let name = app
        .gate
        .directory()
        .person(&me)
        .map(|p| p.name().to_string())
        .unwrap_or_else(|| me.to_string());
    Ok(Json(step_up(&app)?.registration_start(&me, &name).await?))
}

pub use crate::stepup::RegistrationFinish;

/// Finishes a registration the caller started; the passkey is theirs.
#[utoipa::path(post, path = "/v1/passkeys", operation_id = "finish_passkey_registration", tag = "passkeys", request_body = RegistrationFinish,
    responses(
        (status = 201, body = PasskeyInfo),
        (status = 400, description = "Unknown, used or expired registration, or a refused credential"),
        (status = 409, description = "This passkey is already registered"),
    ),
    security(("bearer" = [])))]
pub async fn registration_finish(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
    ApiJson(body): ApiJson<RegistrationFinish>,
) -> Result<(StatusCode, Json<PasskeyInfo>), Problem> {
    let info = step_up(&app)?
        .registration_finish(&me, &body.registration_id, &body.credential, body.label)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The caller's passkeys.
#[utoipa::path(get, path = "/v1/passkeys", operation_id = "list_passkeys", tag = "passkeys",
    responses((status = 200, body = [PasskeyInfo])),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
) -> Result<Json<Vec<PasskeyInfo>>, Problem> {
    Ok(Json(step_up(&app)?.list(&me).await?))
}

/// Removes one of the caller's passkeys.
#[utoipa::path(delete, path = "/v1/passkeys/{id}", operation_id = "remove_passkey", tag = "passkeys",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such passkey of yours")),
    security(("bearer" = [])))]
pub async fn remove(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    step_up(&app)?.remove(&me, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A step-up challenge bound to the action's current digest and the
/// caller, for `navigator.credentials.get`; single use.
#[utoipa::path(post, path = "/v1/approvals/{id}/step-up", operation_id = "step_up_challenge", tag = "approvers",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = StepUpChallenge),
        (status = 403, description = "No passkey registered (`step-up-no-passkey`)"),
        (status = 404, description = "No such action, or step-up is not configured"),
        (status = 409, description = "The action is not pending"),
    ),
    security(("bearer" = [])))]
pub async fn challenge(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
    Path(id): Path<String>,
) -> Result<Json<StepUpChallenge>, Problem> {
    let id = super::actions::parse_id(&id)?;
    Ok(Json(
        app.gate
            .step_up_challenge(&me, &id)
            .await
            .map_err(super::approvals::review_problem)?,
    ))
}
