//! Bearer-key authentication. An agent's identity is whatever its key says,
//! never anything from the body. Logs never contain the key.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::error::Problem;
use super::App;
use crate::keys::hash_api_key;
use crate::store::{AgentRow, KeyRole};

/// The calling agent, authenticated by its API key.
pub struct AgentCaller(pub AgentRow);

/// A caller whose key has `role`; `subject` is the agent id or person email.
pub struct KeyHolder {
    pub role: KeyRole,
    pub subject: String,
}

/// The bearer key, as sent.
fn bearer_key(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send Authorization: Bearer <API key>"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Problem::unauthorized("the Authorization header is not a Bearer key"))
}

fn store_problem(e: crate::store::StoreError) -> Problem {
    if e.is_unavailable() {
        Problem::unavailable("the database is unavailable; retry later")
    } else {
        crate::gate::GateError::from(e).into()
    }
}

fn unknown_key() -> Problem {
    Problem::unauthorized("unknown or revoked API key")
}

pub(super) async fn key_holder(parts: &Parts, app: &App) -> Result<KeyHolder, Problem> {
    let key = bearer_key(parts)?;
    match app.gate.store.key_principal(&hash_api_key(key)).await {
        Ok(Some((role, subject))) => Ok(KeyHolder { role, subject }),
        Ok(None) => Err(unknown_key()),
        Err(e) => Err(store_problem(e)),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AgentCaller
where
    Arc<super::AppState>: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let key = bearer_key(parts)?;
        match app.gate.store.key_agent(&hash_api_key(key)).await {
            Ok(Some((KeyRole::Agent, _, Some(agent)))) if agent.revoked_at.is_none() => {
                Ok(AgentCaller(agent))
            }
            Ok(Some((KeyRole::Agent, _, _))) => Err(Problem::unauthorized("the agent is revoked")),
            Ok(Some((role, _, _))) => Err(Problem::forbidden(format!(
                "this endpoint is for agents; the key is an {} key",
                role.as_str()
            ))),
            Ok(None) => Err(unknown_key()),
            Err(e) => Err(store_problem(e)),
        }
    }
}

/// Middleware for the evidence log's routes: auditor or admin keys only.
pub async fn require_auditor(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Result<Response, Problem> {
    let (parts, body) = request.into_parts();
    let holder = key_holder(&parts, &app).await?;
    if !matches!(holder.role, KeyRole::Auditor | KeyRole::Admin) {
        return Err(Problem::forbidden(
            "the evidence log is served to auditor keys",
        ));
    }
    Ok(next.run(Request::from_parts(parts, body)).await)
}
