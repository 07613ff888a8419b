//! Bearer-key authentication. An agent's identity is whatever its key says,
//! never anything from the body. Logs never contain the key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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

/// The bearer key, as sent. The scheme's name is case-insensitive (RFC 9110
/// section 11.1), so `bearer KEY` is the same key.
fn bearer_key(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send Authorization: Bearer <API key>"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim_matches(' '))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Problem::invalid_key("the Authorization header is not a Bearer key"))
}

fn store_problem(e: crate::store::StoreError) -> Problem {
    if e.is_unavailable() {
        Problem::unavailable("the database is unavailable; retry later")
    } else {
        crate::gate::GateError::from(e).into()
    }
}

fn unknown_key() -> Problem {
    Problem::invalid_key("unknown or revoked API key")
}

pub(super) async fn key_holder(parts: &Parts, app: &App) -> Result<KeyHolder, Problem> {
    let key = bearer_key(parts)?;
    match app.gate.store().key_principal(&hash_api_key(key)).await {
        Ok(Some((role, subject))) => Ok(KeyHolder { role, subject }),
        Ok(None) => Err(unknown_key()),
        Err(e) => Err(store_problem(e)),
    }
}

/// The live agent whose key hashes to `key_hash`, or why not.
async fn agent_by_key(app: &App, key_hash: &str) -> Result<AgentRow, Problem> {
    match app.gate.store().key_agent(key_hash).await {
        Ok(Some((KeyRole::Agent, _, Some(agent)))) if agent.revoked_at.is_none() => Ok(agent),
        Ok(Some((KeyRole::Agent, _, _))) => Err(Problem::invalid_key("the agent is revoked")),
        Ok(Some((role, _, _))) => Err(Problem::forbidden(format!(
            "this endpoint is for agents; the key is an {} key",
            role.as_str()
        ))),
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
        let key_hash = hash_api_key(bearer_key(parts)?);
        Ok(AgentCaller(agent_by_key(&app, &key_hash).await?))
    }
}

/// An agent submitting an action, authenticated from [`Submitters`] when
/// its key was seen lately. `key_hash` goes with the decision, which commits
/// only if the key and its agent are still live then.
pub struct Submitter {
    pub agent: Arc<AgentRow>,
    pub key_hash: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Submitter
where
    Arc<super::AppState>: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let key_hash = hash_api_key(bearer_key(parts)?);
        let agent = match app.submitters.get(&key_hash) {
            Some(agent) => agent,
            None => {
                let agent = Arc::new(agent_by_key(&app, &key_hash).await?);
                app.submitters.put(&key_hash, agent.clone());
                agent
            }
        };
        Ok(Submitter { agent, key_hash })
    }
}

/// The MCP gateway's caller check: a submitter's, handed to `mcp` when the
/// API mounts its routes (mcp never reaches up into the API).
pub struct SubmitterKeys(pub App);

impl crate::mcp::front::AgentKeys for SubmitterKeys {
    fn agent<'a>(&'a self, parts: &'a mut Parts) -> crate::mcp::front::AgentLookup<'a> {
        Box::pin(async move {
            let Submitter { agent, key_hash } =
                Submitter::from_request_parts(parts, &self.0).await?;
            Ok((agent, key_hash))
        })
    }
}

/// Agents recently authenticated to submit, by key hash: it spares every
/// submission a database round trip. Safe only for submissions, because
/// each decision confirms its key as its evidence commits (migration 0009),
/// so a revoked key may be evaluated but is never decided; every other
/// endpoint looks the key up. Entries live `SUBMITTER_TTL`.
#[derive(Default)]
pub struct Submitters {
    agents: RwLock<HashMap<String, (Arc<AgentRow>, Instant)>>,
}

const SUBMITTER_TTL: Duration = Duration::from_secs(60);
const SUBMITTERS_MAX: usize = 10_000;

impl Submitters {
    fn get(&self, key_hash: &str) -> Option<Arc<AgentRow>> {
        let agents = self.agents.read().unwrap_or_else(|e| e.into_inner());
        let (agent, at) = agents.get(key_hash)?;
        (at.elapsed() < SUBMITTER_TTL).then(|| agent.clone())
    }

    fn put(&self, key_hash: &str, agent: Arc<AgentRow>) {
        let mut agents = self.agents.write().unwrap_or_else(|e| e.into_inner());
        if agents.len() >= SUBMITTERS_MAX {
            agents.retain(|_, (_, at)| at.elapsed() < SUBMITTER_TTL);
            if agents.len() >= SUBMITTERS_MAX {
                agents.clear();
            }
        }
        agents.insert(key_hash.to_owned(), (agent, Instant::now()));
    }

    /// Drops a key found revoked.
    pub fn forget(&self, key_hash: &str) {
        let mut agents = self.agents.write().unwrap_or_else(|e| e.into_inner());
        agents.remove(key_hash);
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
