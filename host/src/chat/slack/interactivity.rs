//! Review clicks and modal submissions from Slack, however they arrive
//! (signed HTTP POST or Socket Mode), handed to `Gate::review`. Proves who
//! clicked and shows the answer; never applies an approval rule itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::blocks::{self, ButtonValue, FieldErrors, ModalMeta};
use super::client::SlackClient;
use super::config::Settings;
use super::identity::Identities;
use super::verify;
use crate::action::{ActionId, Risk};
use crate::approvals::{Decision, Refusal, ReviewError, ReviewRequest};
use crate::directory::ApproverId;
use crate::gate::{Gate, GateError};
use crate::notify::{Notification, NotificationKind};
use crate::problem::Problem;

/// The channel name reviews are recorded under.
pub const CHANNEL: &str = "slack";

/// How long a modal submission waits for the review before closing the
/// modal anyway (Slack wants an answer within 3 s).
const SUBMISSION_BUDGET: Duration = Duration::from_millis(2200);

/// What to answer Slack with: an empty 200, or a JSON body (a modal's
/// `response_action`).
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    Empty,
    Json(Value),
}

impl Ack {
    pub fn payload(&self) -> Option<&Value> {
        match self {
            Ack::Empty => None,
            Ack::Json(value) => Some(value),
        }
    }
}

/// Turns Slack interactions into reviews.
pub struct SlackReviews {
    gate: Arc<Gate>,
    client: SlackClient,
    settings: Arc<Settings>,
    identities: Identities,
}

impl SlackReviews {
    pub fn new(gate: Arc<Gate>, client: SlackClient, settings: Arc<Settings>) -> SlackReviews {
        let identities = Identities::new(
            client.clone(),
            settings.lookup_by_email,
            settings.user_cache,
        );
        SlackReviews {
            gate,
            client,
            settings,
            identities,
        }
    }

    /// Handles one interaction payload (already authenticated: signed, or
    /// from our own Socket Mode connection). Returns within Slack's 3 s:
    /// clicks are worked on after the answer.
    pub async fn handle(self: &Arc<Self>, payload: Value) -> Ack {
        if let Some(team) = &self.settings.team_id {
            let from = payload["team"]["id"]
                .as_str()
                .or(payload["user"]["team_id"].as_str());
            if from != Some(team.as_str()) {
                tracing::warn!(team = ?from, "slack interaction from another workspace ignored");
                return Ack::Empty;
            }
        }
        match payload["type"].as_str() {
            Some("block_actions") => {
                let this = self.clone();
                tokio::spawn(async move { this.on_click(payload).await });
                Ack::Empty
            }
            Some("view_submission")
                if payload["view"]["callback_id"] == blocks::REVIEW_CALLBACK =>
            {
                self.on_submission(payload).await
            }
            _ => Ack::Empty,
        }
    }

    async fn approver(&self, slack_user: &str) -> Option<ApproverId> {
        self.identities
            .resolve(self.gate.directory(), slack_user)
            .await
    }

    async fn on_click(self: Arc<Self>, payload: Value) {
        let action = &payload["actions"][0];
        let decision = match action["action_id"].as_str() {
            Some(blocks::APPROVE) => Decision::Approve,
            Some(blocks::DENY) => Decision::Deny,
            Some(blocks::MODIFY) => Decision::Modify,
            _ => return,
        };
        let Some(value) = action["value"].as_str().and_then(ButtonValue::decode) else {
            return;
        };
        let user = payload["user"]["id"].as_str().unwrap_or_default();
        let channel = payload["channel"]["id"]
            .as_str()
            .or(payload["container"]["channel_id"].as_str())
            .map(String::from);
        let reply = |text: String| {
            let this = self.clone();
            let channel = channel.clone();
            let user = user.to_string();
            async move { this.ephemeral(channel.as_deref(), &user, &text).await }
        };
        let Some(approver) = self.approver(user).await else {
            tracing::warn!(slack_user = user, action_id = %value.action_id, "click by a Slack user not in the directory");
            return reply(format!("Your Slack account (<@{user}>) is not linked to anyone in the actiongate directory, so your click was not recorded.")).await;
        };
        let current = match self.current(&value).await {
            Ok(current) => current,
            Err(text) => return reply(text).await,
        };
        if let (Decision::Approve, Some(link)) = (decision, &current.approval.step_up) {
            // A chat click proves no passkey: refused before any form opens.
            let refusal = crate::stepup::StepUpError::Required {
                action_id: value.action_id.clone(),
                link: link.clone(),
            };
            tracing::info!(action_id = %value.action_id, approver = %approver, "slack approve refused: step-up required");
            return reply(format!("Not recorded: {refusal}.")).await;
        }
        let needs_modal = match decision {
            Decision::Approve => current.action.risk >= Risk::High,
            Decision::Deny | Decision::Modify => true,
        };
        if needs_modal {
            let modifiable = match decision {
                Decision::Modify => match self.modifiable(&value.action_id).await {
                    Ok(m) if m.is_empty() => {
                        return reply(Refusal::NothingModifiable.to_string()).await
                    }
                    Ok(m) => m,
                    Err(e) => return reply(self.gate_failure(&e)).await,
                },
                _ => Vec::new(),
            };
            let meta = ModalMeta {
                action_id: value.action_id.clone(),
                digest: value.digest.clone(),
                decision,
                channel: channel.clone(),
            };
            let view = blocks::review_modal(&current, &meta, &modifiable, &current.action.redacted);
            let trigger = payload["trigger_id"].as_str().unwrap_or_default();
            if let Err(e) = self
                .client
                .call("views.open", &json!({"trigger_id": trigger, "view": view}))
                .await
            {
                tracing::warn!(error = %e, action_id = %value.action_id, "views.open failed");
                return reply("Slack could not open the review form in time; click again.".into())
                    .await;
            }
            return;
        }
        let review = ReviewRequest {
            decision,
            reason: None,
            params: None,
            seen_digest: Some(value.digest.clone()),
            channel: CHANNEL.into(),
            // A click in chat carries no passkey: step-up actions are refused.
            step_up: None,
        };
        let result = match action_id(&value.action_id) {
            Ok(id) => self.gate.review(&approver, &id, review).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(outcome) => {
                tracing::info!(action_id = %value.action_id, approver = %approver, decision = %decision, "slack review recorded");
                reply(recorded_text(decision, &outcome.notification)).await;
            }
            Err(e) => reply(self.refusal_text(&e)).await,
        }
    }

    async fn on_submission(self: &Arc<Self>, payload: Value) -> Ack {
        let view = &payload["view"];
        let reason_error = |text: String| {
            Ack::Json(blocks::errors_response(&FieldErrors::from([(
                blocks::REASON_BLOCK.to_string(),
                text,
            )])))
        };
        let Some(meta) = view["private_metadata"]
            .as_str()
            .and_then(|m| serde_json::from_str::<ModalMeta>(m).ok())
        else {
            return reason_error("This form is not from actiongate.".into());
        };
        let user = payload["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(approver) = self.approver(&user).await else {
            return reason_error(format!("Your Slack account (<@{user}>) is not linked to anyone in the actiongate directory; nothing was recorded."));
        };
        let value = ButtonValue {
            action_id: meta.action_id.clone(),
            digest: meta.digest.clone(),
        };
        let current = match self.current(&value).await {
            Ok(current) => current,
            Err(text) => return reason_error(text),
        };
        let modifiable = if meta.decision == Decision::Modify {
            match self.modifiable(&meta.action_id).await {
                Ok(m) => m,
                Err(e) => return reason_error(self.gate_failure(&e)),
            }
        } else {
            Vec::new()
        };
        let input = match blocks::read_submission(
            view,
            &meta,
            &current.action.params,
            &modifiable,
            &current.action.redacted,
        ) {
            Ok(input) => input,
            Err(errors) => return Ack::Json(blocks::errors_response(&errors)),
        };

        // The review runs to completion even when Slack's clock runs out;
        // then its answer goes to the channel instead of the modal.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let meta_for_task = meta.clone();
        tokio::spawn(async move {
            let review = ReviewRequest {
                decision: meta_for_task.decision,
                reason: Some(input.reason),
                params: input.changes,
                seen_digest: Some(meta_for_task.digest.clone()),
                channel: CHANNEL.into(),
                // A click in chat carries no passkey: step-up actions are refused.
                step_up: None,
            };
            let result = match action_id(&meta_for_task.action_id) {
                Ok(id) => this.gate.review(&approver, &id, review).await,
                Err(e) => Err(e.into()),
            };
            if let Err(result) = tx.send(result) {
                let text = match &result {
                    Ok(outcome) => recorded_text(meta_for_task.decision, &outcome.notification),
                    Err(e) => this.refusal_text(e),
                };
                this.ephemeral(meta_for_task.channel.as_deref(), &user, &text)
                    .await;
            }
        });
        match tokio::time::timeout(SUBMISSION_BUDGET, rx).await {
            Ok(Ok(Ok(_))) => Ack::Json(json!({"response_action": "clear"})),
            Ok(Ok(Err(e))) => {
                let text = self.refusal_text(&e);
                let block = match &e {
                    ReviewError::Refused(Refusal::ParamNotModifiable { key, .. }) => {
                        format!("{}{key}", blocks::PARAM_BLOCK_PREFIX)
                    }
                    ReviewError::Refused(Refusal::NoChange) => modifiable
                        .first()
                        .map(|m| format!("{}{m}", blocks::PARAM_BLOCK_PREFIX))
                        .unwrap_or_else(|| blocks::REASON_BLOCK.into()),
                    _ => blocks::REASON_BLOCK.into(),
                };
                Ack::Json(blocks::errors_response(&FieldErrors::from([(block, text)])))
            }
            // Out of time (or the task died): close the modal; the task replies.
            _ => Ack::Empty,
        }
    }

    /// The action as it stands, if the click was on its current version.
    async fn current(&self, value: &ButtonValue) -> Result<Notification, String> {
        let notification = match action_id(&value.action_id) {
            Ok(id) => {
                self.gate
                    .notification_for(&id, NotificationKind::Pending)
                    .await
            }
            Err(e) => Err(e),
        };
        match notification {
            Ok(n) if n.action.digest != value.digest => Err(
                "This card is out of date: the action was modified since. Review the updated card; nothing was recorded.".into(),
            ),
            Ok(n) => Ok(n),
            Err(e) => Err(self.gate_failure(&e)),
        }
    }

    /// The params reviewers may change, from the governing route.
    async fn modifiable(&self, raw_id: &str) -> Result<Vec<String>, GateError> {
        let record = self.gate.record(&action_id(raw_id)?).await?;
        Ok(record.modifiable_params().to_vec())
    }

    fn refusal_text(&self, e: &ReviewError) -> String {
        match e {
            ReviewError::Refused(refusal) => {
                format!("Not recorded: {refusal}.")
            }
            ReviewError::StepUp(e) => format!("Not recorded: {e}."),
            ReviewError::Gate(e) => self.gate_failure(e),
        }
    }

    fn gate_failure(&self, e: &GateError) -> String {
        match e {
            GateError::NotFound(_) => "actiongate has no such action; nothing was recorded.".into(),
            e => {
                tracing::error!(error = %e, "slack review could not be recorded");
                "actiongate could not record this right now; nothing was recorded. Try again shortly.".into()
            }
        }
    }

    /// A message only `user` sees, in `channel`.
    async fn ephemeral(&self, channel: Option<&str>, user: &str, text: &str) {
        let Some(channel) = channel else {
            tracing::warn!(slack_user = user, "no channel to answer in");
            return;
        };
        let body = json!({"channel": channel, "user": user, "text": text});
        if let Err(e) = self.client.call("chat.postEphemeral", &body).await {
            tracing::warn!(error = %e, "chat.postEphemeral failed");
        }
    }
}

fn recorded_text(decision: Decision, n: &Notification) -> String {
    let done = match decision {
        Decision::Approve => "approved",
        Decision::Deny => "denied",
        Decision::Modify => "modified and approved",
    };
    format!(
        "Recorded: you {done} `{}` ({} of {} approvals).",
        blocks::escape(&n.action.kind),
        n.approval.approvals.len(),
        n.approval.quorum.max(1)
    )
}

/// `POST /slack/interactivity`: verifies the signature and freshness,
/// refuses replays, then answers what Slack expects.
pub fn routes(reviews: Arc<SlackReviews>) -> Router {
    Router::new()
        .route("/slack/interactivity", post(interactivity))
        .with_state(reviews)
}

/// Slack's interactivity requests (button clicks, modal submissions).
#[utoipa::path(post, path = "/slack/interactivity", tag = "chat",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`payload=<JSON>`, signed with X-Slack-Signature and X-Slack-Request-Timestamp"),
    responses(
        (status = 200, description = "Acknowledged (empty), or a modal `response_action`"),
        (status = 400, description = "Not a form with a JSON `payload`"),
        (status = 401, description = "Signature, timestamp or replay refused"),
        (status = 404, description = "Slack HTTP mode is not enabled"),
        (status = 503, description = "The request could not be recorded; Slack retries"),
    ))]
pub(crate) async fn interactivity(
    State(reviews): State<Arc<SlackReviews>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &reviews.settings.signing_secret else {
        return Problem::not_found("Slack interactivity is not enabled").into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = Utc::now();
    let signature = header(verify::SIGNATURE_HEADER);
    if let Err(e) = verify::verify(
        secret.expose().as_bytes(),
        header(verify::TIMESTAMP_HEADER),
        signature,
        &body,
        now.timestamp(),
    ) {
        tracing::warn!(error = %e, "slack request refused");
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "slack-signature-refused",
            "Slack request signature or timestamp not verified",
            format!("Slack request not verified: {e}"),
        )
        .into_response();
    }
    let signature = signature.unwrap_or_default().trim().to_ascii_lowercase();
    let forget_before = now - chrono::Duration::seconds(2 * verify::MAX_SKEW_SECONDS);
    match reviews
        .gate
        .store()
        .first_slack_request(&signature, now, forget_before)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("slack request replayed; refused");
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "slack-replay-refused",
                "Slack request already handled (replay refused)",
                "Slack request not verified: already handled (replay)",
            )
            .into_response();
        }
        Err(e) if e.is_unavailable() => {
            tracing::error!(error = %e, "could not record the slack request signature");
            return Problem::unavailable("try again").into_response();
        }
        Err(e) => {
            // Retrying cannot fix this: not a 503.
            tracing::error!(error = %e, "could not record the slack request signature");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "see the server log",
            )
            .into_response();
        }
    }
    let payload = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|form| form.into_iter().find(|(k, _)| k == "payload"))
        .map(|(_, p)| crate::ijson::value(&p));
    let payload = match payload {
        Some(Ok(payload)) => payload,
        Some(Err(e)) if !e.is_syntax() => {
            return Problem::bad_request(format!("payload: {e}")).into_response()
        }
        _ => {
            return Problem::bad_request("expected a form body with a JSON `payload`")
                .into_response()
        }
    };
    match reviews.handle(payload).await {
        Ack::Empty => StatusCode::OK.into_response(),
        Ack::Json(value) => Json(value).into_response(),
    }
}

/// The action a card or modal names; a malformed id names no action, as on
/// every channel.
fn action_id(raw: &str) -> Result<ActionId, GateError> {
    raw.parse::<ActionId>().map_err(GateError::from)
}
