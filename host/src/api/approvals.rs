//! The approver API: list what I may review, review it. The approver is
//! whoever the key was issued to in the directory; every rule is the
//! workflow's (`Gate::review`), none is the API's own.

use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::key_holder;
use super::error::{ApiJson, Problem};
use super::App;
use crate::approvals::{ApprovalSummary, Decision};
use crate::directory::ApproverId;
use crate::gate::State as ActionState;
use crate::store::KeyRole;

/// The calling approver, from an approver key and the directory.
pub struct ApproverCaller(pub ApproverId);

impl<S: Send + Sync> FromRequestParts<S> for ApproverCaller
where
    App: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let holder = key_holder(parts, &app).await?;
        if holder.role != KeyRole::Approver {
            return Err(Problem::forbidden(format!(
                "this endpoint is for approvers; the key is an {} key",
                holder.role.as_str()
            )));
        }
        match app.gate.directory().person_by_email(&holder.subject) {
            Some(person) => Ok(ApproverCaller(person.id().clone())),
            None => Err(Problem::forbidden(
                "the key's owner is no longer in the approver directory",
            )),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only `pending` is listed.
    pub state: Option<String>,
}

/// Pending actions the caller may review (not their own agents', only
/// their groups'), each as the approval summary every channel shows.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvers", params(ListQuery),
    responses((status = 200, body = [ApprovalSummary])), security(("bearer" = [])))]
pub async fn list(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ApprovalSummary>>, Problem> {
    if q.state.as_deref().is_some_and(|s| s != "pending") {
        return Err(Problem::bad_request("state: only `pending` can be listed"));
    }
    Ok(Json(app.gate.pending_for(&me).await?))
}

/// One pending action the caller may review, in full.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvers",
    params(("id" = String, Path)),
    responses((status = 200, body = ApprovalSummary)),
    security(("bearer" = [])))]
pub async fn detail(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
    Path(id): Path<String>,
) -> Result<Json<ApprovalSummary>, Problem> {
    let id = super::actions::parse_id(&id)?;
    Ok(Json(app.gate.pending_one_for(&me, &id).await?))
}

/// One review: approve, deny, or modify (only `modifiable-params`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    #[schema(value_type = String, example = "approve")]
    pub decision: Decision,
    /// Required to deny or modify, and to approve high and critical risk.
    pub reason: Option<String>,
    /// For `modify`: the params to change (a top-level merge patch).
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    /// The action digest the reviewer saw; refused (409 `stale`) if it changed since.
    pub digest: Option<String>,
    /// For step-up actions, required to approve or modify: the challenge id
    /// from `POST /v1/approvals/{id}/step-up` and the passkey's assertion
    /// (`PublicKeyCredential` JSON).
    #[schema(value_type = Option<Object>)]
    pub step_up: Option<crate::stepup::StepUpAssertion>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewAnswer {
    pub action_id: String,
    pub state: ActionState,
    /// Distinct approvals of the current version, against the quorum.
    pub approvals: usize,
    pub quorum: u32,
    pub digest: String,
}

#[utoipa::path(post, path = "/v1/approvals/{id}/reviews", tag = "approvers",
    params(("id" = String, Path)), request_body = ReviewRequest,
    responses(
        (status = 200, body = ReviewAnswer),
        (status = 403, description = "Refused by an approval rule (problem+json, `type` names the rule)"),
        (status = 404, description = "No such action"),
    ),
    security(("bearer" = [])))]
pub async fn review(
    State(app): State<App>,
    ApproverCaller(me): ApproverCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> Result<Json<ReviewAnswer>, Problem> {
    let action_id = super::actions::parse_id(&id)?;
    let review = crate::approvals::ReviewRequest {
        decision: body.decision,
        reason: body.reason,
        params: body.params,
        seen_digest: body.digest,
        channel: "api".into(),
        step_up: body.step_up,
    };
    let outcome = app
        .gate
        .review(&me, &action_id, review)
        .await
        .map_err(review_problem)?;
    let n = outcome.notification;
    Ok(Json(ReviewAnswer {
        action_id: action_id.to_string(),
        state: outcome.state,
        approvals: n.approval.approvals.len(),
        quorum: n.approval.quorum,
        digest: n.action.digest,
    }))
}

pub use crate::problem::review_problem;
