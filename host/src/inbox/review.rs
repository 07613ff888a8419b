//! The inbox's pages for approvers: the pending list, one action, the
//! review forms and the person's history. Reviews go to the gate with
//! channel `inbox` (with the passkey assertion the page's script adds for a
//! step-up action); a refusal is shown in the rule's own words.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::Value;

use super::inbox;
use super::pages::{self, ActionPage, HistoryItem, HistoryPage, ListPage, Notice};
use super::queue;
use super::session::{origin_refusal, SignedIn};
use super::App;
use crate::approvals::Redaction;
use crate::approvals::{Decision, ReviewError, ReviewRequest};
use crate::gate::{ActionRecord, GateError};
use crate::stepup::{StepUpAssertion, StepUpError};

fn gate_failure(e: &GateError, me: &SignedIn) -> Response {
    if e.is_unavailable() {
        return pages::unavailable();
    }
    tracing::error!(error = %e, "inbox page failed");
    pages::problem_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The action could not be shown. Nothing was changed.",
        Some(me.me()),
    )
}

/// `GET /inbox`: what waits for this person, newest first.
pub async fn list(State(app): State<App>, me: SignedIn) -> Response {
    match queue::pending_items(&app, &me).await {
        Ok(items) => pages::render(
            StatusCode::OK,
            &ListPage {
                me: Some(me.me()),
                items,
            },
        ),
        Err(e) => gate_failure(&e, &me),
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionQuery {
    done: Option<String>,
}

/// `GET /inbox/actions/{id}`: the whole context of one action.
pub async fn action(
    State(app): State<App>,
    me: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<ActionQuery>,
) -> Response {
    let notice = q.done.as_deref().and_then(|done| {
        let (title, text) = match done {
            "approve" => ("Approved", "Your approval of this version is recorded."),
            "deny" => ("Denied", "Your denial is recorded; the action is denied."),
            "modify" => (
                "Modified",
                "Your modification is recorded as your approval of the new version, which was evaluated again.",
            ),
            _ => return None,
        };
        Some(Notice {
            kind: "ok",
            title: title.into(),
            text: text.into(),
            code: None,
        })
    });
    show(&app, &me, &id, StatusCode::OK, notice).await
}

async fn show(
    app: &App,
    me: &SignedIn,
    id: &str,
    status: StatusCode,
    notice: Option<Notice>,
) -> Response {
    let loaded = match queue::load(app, id).await {
        Ok(Some(loaded)) if queue::may_see(app.gate.directory(), me, &loaded) => loaded,
        Ok(_) => return pages::not_found(Some(me.me())),
        Err(e) => return gate_failure(&e, me),
    };
    let mut a = queue::action_view(app.gate.directory(), app.gate.redaction(), &loaded);
    if let Some(su) = app.gate.step_up() {
        // A modify that raises a plain action to step-up level is refused
        // as `step-up-required`: the page then offers the passkey prompt,
        // whose challenge binds the version the modify starts from.
        let required = notice.as_ref().and_then(|n| n.code.as_deref()) == Some("step-up-required");
        a.step_up = required
            || match app
                .gate
                .step_up_in_force(&loaded.record.action, &loaded.record.verdict)
                .await
            {
                Ok(in_force) => in_force,
                Err(e) => return gate_failure(&e, me),
            };
        a.has_passkey = match su.list(&me.approver).await {
            Ok(keys) => !keys.is_empty(),
            Err(e) => return gate_failure(&e.into_store().into(), me),
        };
    }
    pages::render(
        status,
        &ActionPage {
            me: Some(me.me()),
            a,
            notice,
        },
    )
}

fn refused_notice(code: &str, text: String) -> Notice {
    Notice {
        kind: "refused",
        title: "Your review was refused".into(),
        text,
        code: Some(code.into()),
    }
}

/// A form field typed like the parameter's current value, as the chat
/// modals read them.
fn parse_param(old: Option<&Value>, text: &str) -> Result<Value, &'static str> {
    let trimmed = text.trim();
    match old {
        Some(Value::String(_)) => Ok(Value::String(text.to_string())),
        Some(Value::Number(_)) => serde_json::from_str::<Value>(trimmed)
            .ok()
            .filter(Value::is_number)
            .ok_or("enter a number"),
        Some(Value::Bool(_)) => match trimmed {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("enter true or false"),
        },
        Some(Value::Array(_)) => serde_json::from_str::<Value>(trimmed)
            .ok()
            .filter(Value::is_array)
            .ok_or("enter a JSON array, e.g. [\"a\", \"b\"]"),
        Some(Value::Object(_)) => serde_json::from_str::<Value>(trimmed)
            .ok()
            .filter(Value::is_object)
            .ok_or("enter a JSON object"),
        Some(Value::Null) | None => {
            Ok(serde_json::from_str::<Value>(trimmed)
                .unwrap_or_else(|_| Value::String(text.into())))
        }
    }
}

/// The changes a modify form asks for: every `param.NAME` field that
/// differs from the current value. Fields for params that may not be
/// modified are passed on, so that the rule refuses them in its own words.
fn changes(
    fields: &[(String, String)],
    current: &Value,
    redaction: &Redaction,
) -> Result<Value, String> {
    let mut changes = serde_json::Map::new();
    for (key, text) in fields {
        let Some(name) = key.strip_prefix("param.") else {
            continue;
        };
        if text.trim().is_empty() && redaction.is_secret(name) {
            // Shown empty because redacted: empty keeps the value.
            continue;
        }
        let old = current.get(name);
        let new = parse_param(old, text).map_err(|why| format!("parameter `{name}`: {why}"))?;
        if Some(&new) != old {
            changes.insert(name.to_string(), new);
        }
    }
    Ok(Value::Object(changes))
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /inbox/actions/{id}/review`: approve, deny or modify.
pub async fn submit(
    State(app): State<App>,
    me: Result<SignedIn, Response>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    // The session is judged once the form is read: answering before the
    // body is consumed resets the connection, and the browser shows an
    // aborted load instead of the page.
    let me = match me {
        Ok(me) => me,
        Err(refused) => return refused,
    };
    let inbox = inbox(&app);
    if let Some(refused) = origin_refusal(&headers, &inbox.settings.public_url)
        .or_else(|| me.csrf_refusal(field(&fields, "csrf")))
    {
        return refused;
    }
    let decision = match field(&fields, "decision") {
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        Some("modify") => Decision::Modify,
        _ => return pages::problem_page(
            StatusCode::BAD_REQUEST,
            "Unknown decision",
            "The form asked for no known decision (approve, deny or modify). Nothing was changed.",
            Some(me.me()),
        ),
    };
    let loaded = match queue::load(&app, &id).await {
        Ok(Some(loaded)) if queue::may_see(app.gate.directory(), &me, &loaded) => loaded,
        Ok(_) => return pages::not_found(Some(me.me())),
        Err(e) => return gate_failure(&e, &me),
    };
    if let Some(refusal) = queue::provider_refusal(app.gate.directory(), &me, &loaded.request) {
        let notice = refused_notice(refusal.code(), refusal.to_string());
        return show(&app, &me, &id, StatusCode::FORBIDDEN, Some(notice)).await;
    }
    let params = match decision {
        Decision::Modify => {
            match changes(&fields, &loaded.record.action.params, app.gate.redaction()) {
                Ok(changes) => Some(changes),
                Err(why) => {
                    let notice = refused_notice("invalid-param", why);
                    return show(
                        &app,
                        &me,
                        &id,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some(notice),
                    )
                    .await;
                }
            }
        }
        _ => None,
    };
    // The page's script fills `step_up` with the passkey's answer to a
    // challenge for this version; without it a step-up action's approval
    // is refused by the gate, in the rule's own words.
    let step_up = match field(&fields, "step_up").filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(text) => match serde_json::from_str::<StepUpAssertion>(text) {
            Ok(assertion) => Some(assertion),
            Err(e) => {
                let notice = refused_notice(
                    "step-up-invalid",
                    format!("The passkey answer sent with the form is not readable ({e}). Nothing was changed."),
                );
                return show(&app, &me, &id, StatusCode::BAD_REQUEST, Some(notice)).await;
            }
        },
    };
    let reason = field(&fields, "reason").map(str::to_string);
    let review = ReviewRequest {
        decision,
        reason,
        params,
        seen_digest: field(&fields, "digest").map(str::to_string),
        channel: "inbox".into(),
        step_up,
    };
    let outcome = app
        .gate
        .review(&me.approver, &loaded.record.id, review)
        .await;
    match outcome {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(
                header::LOCATION,
                format!("/inbox/actions/{id}?done={}", decision.as_str()),
            )],
        )
            .into_response(),
        Err(ReviewError::Refused(refusal)) => {
            let status =
                crate::problem::review_problem(ReviewError::Refused(refusal.clone())).status;
            let notice = refused_notice(refusal.code(), refusal.to_string());
            show(&app, &me, &id, status, Some(notice)).await
        }
        Err(ReviewError::StepUp(StepUpError::Store(e))) => gate_failure(&e.into(), &me),
        Err(ReviewError::StepUp(e)) => {
            let notice = refused_notice(e.code(), e.to_string());
            let status = crate::problem::Problem::from(e).status;
            show(&app, &me, &id, status, Some(notice)).await
        }
        Err(ReviewError::Gate(GateError::Invalid(why))) => {
            let notice = refused_notice("invalid-review", why);
            show(
                &app,
                &me,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
            )
            .await
        }
        Err(ReviewError::Gate(GateError::NotFound(_))) => pages::not_found(Some(me.me())),
        Err(ReviewError::Gate(e)) => gate_failure(&e, &me),
    }
}

/// `GET /inbox/history`: what this person decided, on every channel.
pub async fn history(State(app): State<App>, me: SignedIn) -> Response {
    let store = app.gate.store();
    let reviews = match store.reviews_by(me.approver.as_str(), 200).await {
        Ok(reviews) => reviews,
        Err(e) => return gate_failure(&e.into(), &me),
    };
    let mut items = Vec::with_capacity(reviews.len());
    for r in reviews {
        let row = match store.action(&r.action_id).await {
            Ok(row) => row,
            Err(e) => return gate_failure(&e.into(), &me),
        };
        let (kind, resource, state) = match row.map(ActionRecord::decode) {
            Some(Ok(record)) => (
                record.action.kind,
                record.action.resource,
                record.state.as_str().to_string(),
            ),
            _ => ("?".into(), "?".into(), "unknown".into()),
        };
        let (at, at_iso) = pages::times(r.at);
        items.push(HistoryItem {
            action_id: r.action_id,
            kind,
            resource,
            decision: r.decision,
            reason: r.reason,
            channel: r.channel,
            state,
            at,
            at_iso,
        });
    }
    pages::render(
        StatusCode::OK,
        &HistoryPage {
            me: Some(me.me()),
            items,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modify_fields_keep_types_and_skip_unchanged() {
        let current =
            json!({"rows": 500000, "tables": ["customers"], "destination": "s3://x", "token": "t"});
        let redact = Redaction::new(&["token".to_string()]);
        let fields = vec![
            ("csrf".to_string(), "c".to_string()),
            ("param.rows".to_string(), "1000".to_string()),
            ("param.tables".to_string(), "[\"customers\"]".to_string()),
            ("param.destination".to_string(), "s3://x".to_string()),
            ("param.token".to_string(), "".to_string()),
        ];
        assert_eq!(
            changes(&fields, &current, &redact).unwrap(),
            json!({"rows": 1000})
        );
        let bad = vec![("param.rows".to_string(), "many".to_string())];
        assert!(changes(&bad, &current, &redact)
            .unwrap_err()
            .contains("enter a number"));
        // A field for a param nobody may modify is passed on, for the rule to refuse.
        let forged = vec![("param.format".to_string(), "csv".to_string())];
        assert_eq!(
            changes(&forged, &current, &redact).unwrap(),
            json!({"format": "csv"})
        );
    }
}
