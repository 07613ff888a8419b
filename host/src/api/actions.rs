//! The agent API: submit an action, wait for its decision, report its
//! outcome. Handlers extract and call the gate; the gate decides.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;

use super::auth::{AgentCaller, Submitter};
use super::error::{ApiJson, Problem};
use super::App;
use crate::action::ActionId;
use crate::gate::{ActionStatus, GateError, Outcome, State as ActionState, Submission};

/// The longest long-poll, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// Submit an action for a decision.
#[utoipa::path(
    post, path = "/v1/actions", tag = "agents",
    request_body = Submission,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the same answer; same key, other body: 409")),
    responses(
        (status = 200, description = "Allowed: carries a signed grant", body = ActionStatus),
        (status = 202, description = "Held for approval; poll the Location", body = ActionStatus),
        (status = 403, description = "Denied by policy", body = ActionStatus),
        (status = 400, description = "Malformed request (problem+json)"),
        (status = 401, description = "Missing or revoked key (problem+json)"),
        (status = 409, description = "Idempotency key reused with another body (problem+json)"),
        (status = 503, description = "Evidence could not be committed, or the policy sandbox is busy (type urn:actiongate:problem:busy); nothing decided or allowed (problem+json)"),
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(app): State<App>,
    submitter: Submitter,
    headers: HeaderMap,
    ApiJson(submission): ApiJson<Submission>,
) -> Result<Response, Problem> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    Problem::bad_request(
                        "Idempotency-Key: must be 1 to 255 visible ASCII characters",
                    )
                })?
                .to_string(),
        ),
    };
    let Submitter { agent, key_hash } = submitter;
    let submitted = app
        .gate
        .submit(&agent, Some(key_hash.clone()), submission, key)
        .await;
    if let Err(GateError::KeyRevoked) = submitted {
        app.submitters.forget(&key_hash);
    }
    Ok(decision_response(submitted?))
}

/// 200 for allowed, 202 + Location for pending, 403 for denied or expired.
fn decision_response(status: ActionStatus) -> Response {
    let code = match status.state {
        ActionState::Allowed | ActionState::Approved | ActionState::Executed => StatusCode::OK,
        ActionState::Pending => StatusCode::ACCEPTED,
        ActionState::Denied | ActionState::Expired => StatusCode::FORBIDDEN,
    };
    let location = format!("/v1/actions/{}", status.action_id);
    let mut response = (code, Json(status)).into_response();
    if code == StatusCode::ACCEPTED {
        response.headers_mut().insert(
            header::LOCATION,
            HeaderValue::from_str(&location).expect("uuid path"),
        );
    }
    response
}

/// An action's state. `Prefer: wait=N` long-polls up to N (at most 60) seconds.
#[utoipa::path(
    get, path = "/v1/actions/{id}", tag = "agents",
    params(("id" = String, Path), ("Prefer" = Option<String>, Header, description = "wait=N")),
    responses((status = 200, body = ActionStatus), (status = 404, description = "Not this agent's action")),
    security(("bearer" = []))
)]
pub async fn get_action(
    State(app): State<App>,
    AgentCaller(agent): AgentCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let wait = prefer_wait(&headers);
    let status = match wait {
        Some(seconds) => {
            app.gate
                .wait(&agent, &id, Duration::from_secs(seconds))
                .await?
        }
        None => app.gate.status(&agent, &id).await?,
    };
    let mut response = Json(status).into_response();
    if let Some(seconds) = wait {
        response.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_str(&format!("wait={seconds}")).expect("digits"),
        );
    }
    Ok(response)
}

/// `Prefer: wait=N` (RFC 7240), capped.
fn prefer_wait(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("wait=")?.trim().parse::<u64>().ok())
        .map(|n| n.min(MAX_WAIT_SECONDS))
}

/// Server-sent events: one `state` event per change, ending at a final state.
#[utoipa::path(
    get, path = "/v1/actions/{id}/events", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream of ActionStatus")),
    security(("bearer" = []))
)]
pub async fn events(
    State(app): State<App>,
    AgentCaller(agent): AgentCaller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let id = parse_id(&id)?;
    // Fail now, with a status code, if the action is not this agent's.
    let first = app.gate.status(&agent, &id).await?;
    let stream = futures_util::stream::unfold(
        (app, agent, id, Some(first), None::<ActionState>),
        |(app, agent, id, next, last)| async move {
            let status = match next {
                Some(status) => status,
                None => {
                    if last.is_some_and(ActionState::is_final) {
                        return None;
                    }
                    loop {
                        match app.gate.wait(&agent, &id, Duration::from_secs(25)).await {
                            Ok(s) if Some(s.state) != last => break s,
                            Ok(_) => continue,
                            Err(e) => {
                                tracing::warn!(action_id = %id, error = %e, "event stream ended");
                                return None;
                            }
                        }
                    }
                }
            };
            let event = Event::default()
                .event("state")
                .json_data(&status)
                .expect("status serializes");
            let state = status.state;
            Some((Ok(event), (app, agent, id, None, Some(state))))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Report how an allowed or approved action ran. Consumes its grant once.
#[utoipa::path(
    post, path = "/v1/actions/{id}/outcome", tag = "agents",
    params(("id" = String, Path)),
    request_body = Outcome,
    responses(
        (status = 200, body = ActionStatus),
        (status = 403, description = "The grant is not valid for this action"),
        (status = 409, description = "The grant was already used"),
    ),
    security(("bearer" = []))
)]
pub async fn outcome(
    State(app): State<App>,
    AgentCaller(agent): AgentCaller,
    Path(id): Path<String>,
    ApiJson(outcome): ApiJson<Outcome>,
) -> Result<Json<ActionStatus>, Problem> {
    let id = parse_id(&id)?;
    Ok(Json(app.gate.report_outcome(&agent, &id, outcome).await?))
}

/// An action id from a path: a malformed one names no action (404, naming
/// it), as on every channel.
pub(super) fn parse_id(raw: &str) -> Result<ActionId, Problem> {
    raw.parse::<ActionId>()
        .map_err(|e| GateError::from(e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_wait_is_parsed_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(prefer_wait(&h), None);
        h.insert("prefer", HeaderValue::from_static("respond-async, wait=10"));
        assert_eq!(prefer_wait(&h), Some(10));
        h.insert("prefer", HeaderValue::from_static("wait=3600"));
        assert_eq!(prefer_wait(&h), Some(MAX_WAIT_SECONDS));
    }
}
