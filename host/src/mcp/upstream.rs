//! One upstream MCP server and the gateway's connection to it (Streamable
//! HTTP, or a child process over stdio spawned without a shell). Connects on
//! first use and again after it dies. Never sees an agent's credentials, and
//! answers none of the upstream's requests to the client.

// Sampling and roots are deprecated by the newest protocol revision, but
// upstreams on older revisions still send them, and refusing them needs
// their types.
#![allow(deprecated)]

use std::sync::{Arc, Once};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorData,
    Implementation, ListRootsResult, PaginatedRequestParams, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::Mutex;

use super::config::{Transport, UpstreamConfig};
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, EvidenceLog};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {name}: could not connect: {message}")]
    Connect { name: String, message: String },
    #[error("upstream {name}: did not answer within {seconds} s")]
    Timeout { name: String, seconds: u64 },
    #[error("upstream {name}: {message}")]
    Call { name: String, message: String },
}

/// What the gateway tells upstreams about itself: no capabilities, so a
/// well-behaved upstream asks the client nothing.
fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("actiongate-mcp-gateway", env!("CARGO_PKG_VERSION")),
    )
}

/// The gateway's side of an upstream session. Refuses sampling, elicitation
/// and roots (they would reach past the gate to the agent's model or user,
/// and elicitation would let the agent's own user approve), recording each.
#[derive(Clone)]
pub struct Refuser {
    upstream: String,
    evidence: EvidenceLog,
    /// Set when the upstream says its tools changed.
    pub stale: Arc<std::sync::atomic::AtomicBool>,
}

impl Refuser {
    async fn refuse(&self, what: &'static str) -> ErrorData {
        tracing::warn!(upstream = %self.upstream, request = what, "upstream asked the client; refused");
        let event = payload::McpRequestRefused {
            upstream: self.upstream.clone(),
            request: what.to_string(),
        }
        .event(None, Actor::system(format!("mcp:{}", self.upstream)));
        if let Err(e) = self.evidence.append(event).await {
            tracing::error!(upstream = %self.upstream, error = %e, "could not record a refused upstream request");
        }
        ErrorData::invalid_request(
            format!("actiongate refuses {what} from upstream servers"),
            None,
        )
    }
}

impl ClientHandler for Refuser {
    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Err(self.refuse("sampling/createMessage").await)
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Err(self.refuse("elicitation/create").await)
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Err(self.refuse("roots/list").await)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.stale.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn get_info(&self) -> ClientConfig {
        client_info()
    }
}

type Session = RunningService<RoleClient, Refuser>;

/// A listing follows at most this many pages and keeps at most this many
/// tools: an upstream that pages without end or lists without bound is
/// refused at once, rather than followed until its timeout while the
/// listing holds every caller's `tools/list`.
pub const MAX_LIST_PAGES: usize = 100;
pub const MAX_LISTED_TOOLS: usize = 10_000;

/// One configured upstream.
pub struct Upstream {
    pub name: String,
    transport: Transport,
    config: UpstreamConfig,
    refuser: Refuser,
    session: Mutex<Option<Arc<Session>>>,
}

/// Installs the process's rustls provider (ring) once; rmcp's HTTP client
/// needs one. Harmless when another part of the process installed one.
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    // rmcp's HTTP client takes the process default; another part of the
    // process may have installed one already, which is as good.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Upstream {
    pub fn new(
        config: UpstreamConfig,
        evidence: EvidenceLog,
    ) -> Result<Self, super::config::McpConfigError> {
        Ok(Upstream {
            name: config.name.clone(),
            transport: config.transport()?,
            refuser: Refuser {
                upstream: config.name.clone(),
                evidence,
                stale: Default::default(),
            },
            config,
            session: Mutex::new(None),
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_seconds.max(1))
    }

    /// True once the upstream said its tool list changed (cleared by the caller).
    pub fn take_stale(&self) -> bool {
        self.refuser
            .stale
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn connect_error(&self, message: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Connect {
            name: self.name.clone(),
            message: message.to_string(),
        }
    }

    /// The live session, started (again) when there is none or it died.
    async fn session(&self) -> Result<Arc<Session>, UpstreamError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
            tracing::warn!(upstream = %self.name, "upstream session ended; restarting it");
        }
        let started = tokio::time::timeout(self.timeout(), self.start()).await;
        let session = Arc::new(match started {
            Ok(s) => s?,
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    name: self.name.clone(),
                    seconds: self.timeout().as_secs(),
                })
            }
        });
        // Every listing must reach the upstream: a cached one would hide a
        // changed definition (and serve one the upstream no longer has).
        session
            .peer()
            .set_response_cache_config(rmcp::service::ClientCacheConfig::disabled())
            .await;
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn start(&self) -> Result<Session, UpstreamError> {
        let refuser = self.refuser.clone();
        match &self.transport {
            Transport::Http { url } => {
                install_tls_provider();
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(token) = &self.config.bearer_token {
                    config = config.auth_header(token.clone());
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                refuser
                    .serve(transport)
                    .await
                    .map_err(|e| self.connect_error(e))
            }
            Transport::Stdio { command, args } => {
                // No shell: the program and its arguments as configured, and
                // an environment of its own (PATH and HOME, then `env`), so
                // the gateway's secrets never reach the child.
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                for var in ["PATH", "HOME"] {
                    if let Some(v) = std::env::var_os(var) {
                        cmd.env(var, v);
                    }
                }
                cmd.envs(&self.config.env);
                // Its stderr goes to the log through `stderr`, never
                // straight to the gateway's own.
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| self.connect_error(e))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(super::stderr::log(self.name.clone(), stderr));
                }
                refuser
                    .serve(transport)
                    .await
                    .map_err(|e| self.connect_error(e))
            }
        }
    }

    /// Every tool the upstream lists now, page after page, up to
    /// `MAX_LIST_PAGES` and `MAX_LISTED_TOOLS`.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, UpstreamError> {
        let session = self.session().await?;
        match tokio::time::timeout(self.timeout(), self.list_pages(&session)).await {
            Ok(listed) => listed,
            Err(_) => Err(UpstreamError::Timeout {
                name: self.name.clone(),
                seconds: self.timeout().as_secs(),
            }),
        }
    }

    async fn list_pages(&self, session: &Arc<Session>) -> Result<Vec<Tool>, UpstreamError> {
        let mut tools = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = PaginatedRequestParams::default().with_cursor(cursor);
            let page = match session.peer().list_tools(Some(params)).await {
                Ok(page) => page,
                Err(e) => {
                    self.forget_if_dead(session, &e).await;
                    return Err(self.call_error(e));
                }
            };
            tools.extend(page.tools);
            if tools.len() > MAX_LISTED_TOOLS {
                return Err(self.unbounded(format!("more than {MAX_LISTED_TOOLS} tools")));
            }
            match page.next_cursor {
                None => return Ok(tools),
                next => cursor = next,
            }
        }
        Err(self.unbounded(format!("more than {MAX_LIST_PAGES} pages")))
    }

    fn unbounded(&self, what: String) -> UpstreamError {
        UpstreamError::Call {
            name: self.name.clone(),
            message: format!("its tool listing runs to {what}; it is not listed"),
        }
    }

    /// Calls `params.name` upstream. A timeout cancels the request.
    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, UpstreamError> {
        let session = self.session().await?;
        match tokio::time::timeout(self.timeout(), session.peer().call_tool(params)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                self.forget_if_dead(&session, &e).await;
                Err(self.call_error(e))
            }
            Err(_) => Err(UpstreamError::Timeout {
                name: self.name.clone(),
                seconds: self.timeout().as_secs(),
            }),
        }
    }

    /// Drops a session whose transport is gone, so the next use starts the
    /// upstream again (a stdio child that died is respawned).
    async fn forget_if_dead(&self, session: &Arc<Session>, e: &rmcp::ServiceError) {
        let dead = session.is_closed()
            || matches!(
                e,
                rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_)
            );
        if dead {
            let mut slot = self.session.lock().await;
            if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
                tracing::warn!(upstream = %self.name, error = %e, "upstream connection lost; it restarts on next use");
                *slot = None;
                session.cancellation_token().cancel();
            }
        }
    }

    fn call_error(&self, e: rmcp::ServiceError) -> UpstreamError {
        UpstreamError::Call {
            name: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// Ends the session (a stdio child is stopped).
    pub async fn close(&self) {
        if let Some(s) = self.session.lock().await.take() {
            s.cancellation_token().cancel();
        }
    }
}
