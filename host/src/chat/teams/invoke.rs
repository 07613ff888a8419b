//! `POST /teams/messages`: what the Bot Connector sends the bot. Verifies the
//! Bot Framework JWT before anything else, then relays `adaptiveCard/action`
//! clicks to `gate.review` and answers with the updated card. Never acts on
//! a request it could not verify; the approval rules alone decide.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::cards::{self, CardState, CardView, Notice};
use super::Teams;
use crate::action::ActionId;
use crate::approvals::{Decision, ReviewError, ReviewRequest};
use crate::gate::{Gate, GateError, State as ActionState};
use crate::notify::{Notification, NotificationKind};
use crate::problem::Problem;

/// The invoke name of an `Action.Execute` click (Universal Actions).
pub const ADAPTIVE_CARD_ACTION: &str = "adaptiveCard/action";
const ERROR_TYPE: &str = "application/vnd.microsoft.error";
/// The `channel` reviews from here are recorded with.
pub const CHANNEL: &str = "teams";

#[derive(Clone)]
pub(crate) struct Bot {
    gate: Arc<Gate>,
    teams: Arc<Teams>,
}

/// The bot's route, when `[teams]` is configured; otherwise no route.
pub fn router(gate: Arc<Gate>, teams: Option<Arc<Teams>>) -> Router {
    match teams {
        Some(teams) => Router::new()
            .route("/teams/messages", post(messages))
            .with_state(Bot { gate, teams }),
        None => Router::new(),
    }
}

/// The parts of a Bot Framework activity the bot reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    service_url: String,
    channel_id: String,
    #[serde(default)]
    from: Option<ChannelAccount>,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelAccount {
    #[serde(default)]
    aad_object_id: Option<String>,
}

/// `activity.value` of an `adaptiveCard/action` invoke.
#[derive(Deserialize)]
struct InvokeValue {
    action: ExecuteAction,
}

#[derive(Deserialize)]
struct ExecuteAction {
    #[serde(rename = "type")]
    kind: String,
    verb: String,
    /// The button's data with the card's input values merged in.
    #[serde(default)]
    data: Map<String, Value>,
}

/// The bot's messaging endpoint: Bot Framework activities, card clicks as
/// `adaptiveCard/action` invokes.
#[utoipa::path(post, path = "/teams/messages", tag = "chat",
    request_body(content = Object, content_type = "application/json", description = "A Bot Framework activity"),
    responses(
        (status = 200, description = "Handled; for a card action, the invoke response with the redrawn card"),
        (status = 400, description = "Not a Bot Framework activity, or not an Action.Execute invoke"),
        (status = 401, description = "The Bot Connector token is missing or not accepted (checked before the body is read)"),
        (status = 413, description = "Body too large"),
        (status = 501, description = "An invoke the bot does not handle"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn messages(State(bot): State<Bot>, headers: HeaderMap, body: Body) -> Response {
    // The token first: nothing of an unverified request's body is read.
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match bot.teams.auth.verify_token(authorization).await {
        Ok(token) => token,
        Err(e) => return refuse_unverified(&e.to_string()),
    };
    let body = match axum::body::to_bytes(body, crate::problem::BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                format!("the limit is {} bytes", crate::problem::BODY_LIMIT),
            )
            .into_response()
        }
    };
    if let Err(e) = crate::ijson::check(&body) {
        return Problem::bad_request(format!("not a Bot Framework activity: {e}")).into_response();
    }
    let activity: Activity = match serde_json::from_slice(&body) {
        Ok(activity) => activity,
        Err(e) => {
            return Problem::bad_request(format!("not a Bot Framework activity: {e}"))
                .into_response()
        }
    };
    if let Err(e) = token.for_activity(&activity.service_url, &activity.channel_id) {
        return refuse_unverified(&e.to_string());
    }
    if activity.kind != "invoke" {
        // Messages, installs, conversation updates: nothing to do.
        return StatusCode::OK.into_response();
    }
    if activity.name.as_deref() != Some(ADAPTIVE_CARD_ACTION) {
        return StatusCode::NOT_IMPLEMENTED.into_response();
    }
    let action = match activity
        .value
        .clone()
        .map(serde_json::from_value::<InvokeValue>)
    {
        Some(Ok(InvokeValue { action })) if action.kind == "Action.Execute" => action,
        _ => {
            return invoke_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "expected an Action.Execute invoke",
            )
        }
    };
    let aad_object_id = activity.from.and_then(|f| f.aad_object_id);
    bot.card_action(aad_object_id.as_deref(), action).await
}

/// 401 for anything that is not verifiably from the Bot Connector. Why goes
/// to the log only.
fn refuse_unverified(why: &str) -> Response {
    tracing::warn!(reason = why, "teams: request refused");
    Problem {
        // The Bot Connector's credential is a bearer token (a JWT).
        challenge: Some("Bearer"),
        ..Problem::new(
            StatusCode::UNAUTHORIZED,
            "teams-token-refused",
            "Not a verified Bot Connector request",
            "the Bot Framework token was missing or not accepted",
        )
    }
    .into_response()
}

/// The invoke response that replaces the clicked card with `card`.
fn invoke_card(card: Value) -> Response {
    Json(json!({"statusCode": 200, "type": cards::CONTENT_TYPE, "value": card})).into_response()
}

fn invoke_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "statusCode": status.as_u16(),
            "type": ERROR_TYPE,
            "value": {"code": code, "message": message},
        })),
    )
        .into_response()
}

fn card_state(state: ActionState) -> (CardState, NotificationKind) {
    match state {
        ActionState::Pending => (CardState::Pending, NotificationKind::Pending),
        ActionState::Approved | ActionState::Allowed | ActionState::Executed => {
            (CardState::Approved, NotificationKind::Approved)
        }
        ActionState::Denied => (CardState::Denied, NotificationKind::Denied),
        ActionState::Expired => (CardState::Expired, NotificationKind::Expired),
    }
}

/// The action as a card shows it now.
struct Current {
    notification: Notification,
    state: CardState,
    modifiable: Vec<String>,
}

impl Bot {
    async fn current(&self, action_id: &ActionId) -> Result<Current, GateError> {
        let record = self.gate.record(action_id).await?;
        let (state, kind) = card_state(record.state);
        Ok(Current {
            notification: self.gate.notification_for(action_id, kind).await?,
            state,
            modifiable: record.modifiable_params().to_vec(),
        })
    }

    fn render(&self, current: &Current, notice: Option<Notice>) -> Response {
        invoke_card(cards::card(&CardView {
            notification: &current.notification,
            state: current.state,
            modifiable: &current.modifiable,
            notice: notice.as_ref(),
        }))
    }

    async fn card_action(&self, aad_object_id: Option<&str>, action: ExecuteAction) -> Response {
        let Some(raw_id) = action.data.get("action_id").and_then(Value::as_str) else {
            return invoke_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the card names no action",
            );
        };
        let action_id = match raw_id.parse::<ActionId>() {
            Ok(id) => id,
            Err(e) => return gate_error(e.into()),
        };
        let current = match self.current(&action_id).await {
            Ok(current) => current,
            Err(e) => return gate_error(e),
        };
        let decision = match action.verb.as_str() {
            cards::VERB_REFRESH => return self.render(&current, None),
            cards::VERB_APPROVE => Decision::Approve,
            cards::VERB_DENY => Decision::Deny,
            cards::VERB_MODIFY => Decision::Modify,
            other => {
                return invoke_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("unknown verb {other:?}"),
                )
            }
        };
        // The channel vouches for the user's AAD object id; the directory
        // alone turns it into an approver.
        let Some(person) =
            aad_object_id.and_then(|id| self.gate.directory().person_by_teams_id(id))
        else {
            return self.render(
                &current,
                Some(Notice::Refused(
                    "You are not in actiongate's approver directory (no person has your Teams id), so you cannot review this request.".into(),
                )),
            );
        };
        // A click on a card showing an older version of the action must not
        // count for the newer one.
        let shown = action.data.get("digest").and_then(Value::as_str);
        if current.state == CardState::Pending
            && shown != Some(current.notification.action.digest.as_str())
        {
            return self.render(
                &current,
                Some(Notice::Refused(
                    "This card was out of date: the action changed since it was shown. Review the current version below.".into(),
                )),
            );
        }
        let reason = action
            .data
            .get(cards::INPUT_REASON)
            .and_then(Value::as_str)
            .map(String::from);
        let params = match decision {
            Decision::Modify => match cards::modify_changes(
                &action.data,
                &current.notification.action.params,
                &current.modifiable,
            ) {
                Ok(changes) => Some(changes),
                // Refused before the review: nothing evaluated, nothing recorded.
                Err(e) => return self.render(&current, Some(Notice::Refused(e.to_string()))),
            },
            _ => None,
        };
        let review = ReviewRequest {
            decision,
            reason,
            params,
            seen_digest: shown.map(String::from),
            channel: CHANNEL.into(),
            // A click in chat carries no passkey: step-up actions are refused.
            step_up: None,
        };
        let reviewed = self.gate.review(person.id(), &action_id, review).await;
        match reviewed {
            Ok(outcome) => {
                let (state, _) = card_state(outcome.state);
                let done = match (decision, state) {
                    (Decision::Modify, CardState::Pending) => {
                        "You modified this request; the new version needs approval.".to_string()
                    }
                    (Decision::Modify, _) => "You modified this request.".to_string(),
                    (Decision::Approve, CardState::Pending) => {
                        "You approved this request; more approvals are needed.".to_string()
                    }
                    (Decision::Approve, _) => "You approved this request.".to_string(),
                    (Decision::Deny, _) => "You denied this request.".to_string(),
                };
                let modifiable = match self.gate.record(&action_id).await {
                    Ok(record) => record.modifiable_params().to_vec(),
                    Err(e) => return gate_error(e),
                };
                self.render(
                    &Current {
                        notification: outcome.notification,
                        state,
                        modifiable,
                    },
                    Some(Notice::Done(done)),
                )
            }
            Err(ReviewError::Refused(refusal)) => {
                tracing::info!(action_id = %action_id, approver = %person.id(), code = refusal.code(), "teams: review refused");
                self.render(&current, Some(Notice::Refused(refusal.to_string())))
            }
            Err(ReviewError::StepUp(e)) => {
                // A click in chat proves no passkey: the rule's words and
                // where to approve instead.
                tracing::info!(action_id = %action_id, approver = %person.id(), code = e.code(), "teams: step-up refused");
                self.render(&current, Some(Notice::Refused(e.to_string())))
            }
            Err(ReviewError::Gate(e @ (GateError::Invalid(_) | GateError::WrongState { .. }))) => {
                // Someone else got there first, or the input was unusable:
                // show where it stands now.
                let current = self.current(&action_id).await.unwrap_or(current);
                self.render(&current, Some(Notice::Refused(e.to_string())))
            }
            Err(ReviewError::Gate(e)) => gate_error(e),
        }
    }
}

fn gate_error(e: GateError) -> Response {
    match e {
        GateError::NotFound(_) => invoke_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "this request no longer exists",
        ),
        e if e.is_unavailable() => {
            tracing::error!(error = %e, "teams: failing closed: database unavailable");
            invoke_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "actiongate cannot record reviews right now; try again shortly",
            )
        }
        e => {
            tracing::error!(error = %e, "teams: internal error");
            invoke_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal",
                "internal error; see the actiongate log",
            )
        }
    }
}
