//! The gateway's front: the MCP server agents reach at `/mcp` (Streamable
//! HTTP, rmcp's transport, both protocol eras). Authenticates every HTTP
//! request with the agent's API key through the `AgentKeys` check the API
//! hands it (the HTTP API's own), keeps each session to the agent that
//! opened it, and hands the protocol's calls to the gateway. Never decides
//! anything itself, and never reaches into the API.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, ErrorData, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};

use super::call::{CallError, Caller, Progress};
use super::sessions::{Named, SessionOwners};
use super::Gateway;
use crate::problem::Problem;
use crate::store::AgentRow;

/// How `/mcp` learns its caller's agent from the request's key: the API's
/// submitter check, handed down when the API mounts these routes.
pub trait AgentKeys: Send + Sync {
    /// The key's agent and the key's hash, or the problem to answer.
    fn agent<'a>(&'a self, parts: &'a mut http::request::Parts) -> AgentLookup<'a>;
}

/// The agent of a key and the key's hash, once looked up.
pub type AgentLookup<'a> =
    Pin<Box<dyn Future<Output = Result<(Arc<AgentRow>, String), Problem>> + Send + 'a>>;

/// The authenticated agent of one HTTP request, for the handler below.
#[derive(Clone)]
struct McpAgent {
    agent: Arc<AgentRow>,
    key_hash: String,
}

/// What every request to `/mcp` passes before rmcp sees it.
#[derive(Clone)]
struct Edge {
    keys: Arc<dyn AgentKeys>,
    body_limit: usize,
    sessions: Arc<SessionOwners>,
}

/// rmcp's session header (2025-11-25).
const SESSION_HEADER: &str = "mcp-session-id";

/// Every request to `/mcp` (POST, GET, DELETE) names its agent by key; one
/// that names a session must name one its agent opened (`sessions`); and
/// every JSON-RPC message passes the host's one I-JSON check before rmcp
/// parses it (so tool arguments that parsers would read differently, such
/// as duplicate keys, never become an action).
async fn authenticate(
    State(edge): State<Edge>,
    request: Request,
    next: Next,
) -> Result<Response, Problem> {
    let (mut parts, body) = request.into_parts();
    let (agent, key_hash) = edge.keys.agent(&mut parts).await?;
    let session = match parts.headers.get(SESSION_HEADER) {
        None => None,
        Some(value) => {
            let id = value.to_str().unwrap_or_default().to_string();
            match edge.sessions.named(&id, &agent.id).await {
                Named::Own => Some(id),
                Named::Other => {
                    tracing::warn!(agent = %agent.id, method = %parts.method, "a request named an MCP session another agent opened; answered as unknown");
                    return Err(session_not_found());
                }
                Named::Unknown => return Err(session_not_found()),
            }
        }
    };
    let agent_id = agent.id.clone();
    parts.extensions.insert(McpAgent { agent, key_hash });
    let method = parts.method.clone();
    let body = if method == http::Method::POST {
        let bytes = axum::body::to_bytes(body, edge.body_limit)
            .await
            .map_err(|_| {
                Problem::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                    format!("the limit is {} bytes", edge.body_limit),
                )
            })?;
        crate::ijson::check(&bytes).map_err(|e| Problem::bad_request(e.to_string()))?;
        axum::body::Body::from(bytes)
    } else {
        body
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    match session {
        // rmcp handed out a session (to an `initialize`): it is this agent's.
        None => {
            if let Some(id) = response.headers().get(SESSION_HEADER) {
                if let Ok(id) = id.to_str() {
                    edge.sessions.opened(id.to_string(), agent_id).await;
                }
            }
        }
        Some(id) if method == http::Method::DELETE && response.status().is_success() => {
            edge.sessions.closed(&id);
        }
        Some(_) => {}
    }
    Ok(response)
}

/// The answer to a session id that names no live session of the caller's:
/// the same whether it never existed, ended, or is another agent's, so an
/// agent learns nothing of other agents' sessions. MCP clients start a new
/// session on a 404.
fn session_not_found() -> Problem {
    Problem::new(
        http::StatusCode::NOT_FOUND,
        "session-not-found",
        "No such MCP session",
        "this MCP session does not exist or has ended; initialize a new one",
    )
}

/// `/mcp`, when the gateway is configured.
pub fn routes(keys: Arc<dyn AgentKeys>, gateway: Arc<Gateway>) -> Router {
    let config = gateway.config();
    let mut http = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    http = if config.allowed_hosts.is_empty() {
        http.disable_allowed_hosts()
    } else {
        http.with_allowed_hosts(config.allowed_hosts.clone())
    };
    // The body limit is the arguments' plus room for the envelope; larger
    // arguments are refused as a tool result, so the model reads why.
    let body_limit = config.max_argument_bytes.saturating_mul(2) + 64 * 1024;
    http.max_request_body_bytes = body_limit;
    let manager = Arc::new(LocalSessionManager::default());
    let edge = Edge {
        keys,
        body_limit,
        sessions: Arc::new(SessionOwners::new(
            manager.clone(),
            config.sessions_per_agent,
        )),
    };
    let front = Front { gateway };
    let service = StreamableHttpService::new(move || Ok(front.clone()), manager, http);
    Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(edge, authenticate))
}

/// rmcp's server handler: one per session (or per request, stateless).
#[derive(Clone)]
pub struct Front {
    gateway: Arc<Gateway>,
}

fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    let agent = context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<McpAgent>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("no authenticated agent on this request", None))?;
    let client = context.client_info();
    Ok(Caller {
        agent: agent.agent,
        key_hash: agent.key_hash,
        client_name: client.as_ref().map(|c| c.name.clone()),
        client_version: client.as_ref().map(|c| c.version.clone()),
        protocol_version: context.protocol_version().map(|v| v.to_string()),
    })
}

fn progress(context: &RequestContext<RoleServer>) -> Option<Progress> {
    let token = context.meta.get_progress_token()?;
    let peer = context.peer.clone();
    Some(Box::new(move |progress, total, message| {
        let peer = peer.clone();
        let param = ProgressNotificationParam::new(token.clone(), progress)
            .with_total(total)
            .with_message(message);
        Box::pin(async move {
            if let Err(e) = peer.notify_progress(param).await {
                tracing::debug!(error = %e, "progress notification not delivered");
            }
        })
    }))
}

impl ServerHandler for Front {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("actiongate", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of several MCP servers behind actiongate. Each call is checked by policy; \
                 some wait for human approval. A result saying a call waits for approval means \
                 it has not run: call it again with identical arguments to continue.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .gateway
            .refresh()
            .await
            .iter()
            .map(|e| e.offered())
            .collect();
        // Listed afresh every time, so that a changed definition is seen
        // (and recorded) at once.
        Ok(ListToolsResult::with_all_items(tools)
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        let progress = progress(&context);
        // rmcp hands the request's `_meta` over in the context, not in the
        // params; the gateway forwards it (but the protocol's own keys).
        let mut request = request;
        if request.meta.is_none() {
            request.meta = Some(context.meta.clone());
        }
        match self
            .gateway
            .call(&caller, request, progress, context.ct.clone())
            .await
        {
            Ok(result) => Ok(CallToolResponse::Complete(result)),
            Err(CallError::UnknownTool(name)) => Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            )),
            Err(CallError::Abandoned) => Ok(CallToolResponse::Complete(super::call::error_result(
                "the call was cancelled before it ran".into(),
                None,
            ))),
            Err(CallError::Gate(e)) => {
                tracing::warn!(agent = %caller.agent.id, error = %e, "tool call failed before a decision");
                // No decision was made or none could be committed: fail
                // closed, with a reason the model can read.
                Ok(CallToolResponse::Complete(super::call::error_result(
                    format!("the call could not be decided: {e}"),
                    None,
                )))
            }
        }
    }
}
