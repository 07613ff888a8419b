//! The HTTP API (axum). Handlers extract, call the domain (`gate`), and map
//! errors to problem+json in one place (`error`). No SQL here.

mod actions;
mod admin;
mod approvals;
mod auth;
mod error;
pub mod log;
mod openapi;
mod ops;
mod passkeys;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use utoipa::OpenApi;

pub use approvals::review_problem;
pub use auth::Submitter;
pub use error::{ApiJson, Problem};
use openapi::ProblemResponses;
pub use passkeys::RegistrationFinish;

use crate::evidence::EvidenceLog;
use crate::gate::Gate;

/// Request bodies larger than this are refused with 413 (shared with the
/// chat callbacks, so it lives below both).
pub use crate::problem::BODY_LIMIT;

/// What every handler can reach.
pub struct AppState {
    pub gate: Arc<Gate>,
    pub evidence: EvidenceLog,
    /// The bindings store (admin changes, four-eyes requests).
    pub bindings: Arc<crate::bindings::Bindings>,
    /// The Teams bot, when `[teams]` is configured.
    pub teams: Option<Arc<crate::chat::teams::Teams>>,
    /// Slack reviews, when `[slack]` is configured.
    pub slack: Option<Arc<crate::chat::slack::SlackApp>>,
    /// What a plugin must show to be registered (signature policy).
    pub admission: Arc<crate::registry::admit::Admission>,
    /// Agents recently authenticated to submit.
    pub submitters: auth::Submitters,
    /// The approver web inbox, when `[inbox]` is configured.
    pub inbox: Option<Arc<crate::inbox::Inbox>>,
    /// The MCP gateway at `/mcp`, when `[[mcp.upstreams]]` are configured.
    pub mcp: Option<Arc<crate::mcp::Gateway>>,
}

pub type App = Arc<AppState>;

#[derive(OpenApi)]
#[openapi(
    info(title = "actiongate", description = "Human approval in front of AI agents' privileged actions."),
    paths(actions::submit, actions::get_action, actions::events, actions::outcome, approvals::list, approvals::detail, approvals::review, passkeys::challenge, passkeys::registration_start, passkeys::registration_finish, passkeys::list, passkeys::remove, admin::list_bindings, admin::bind, admin::list_plugins, admin::register, ops::keys, ops::healthz, ops::readyz, ops::metrics, ops::openapi,
        log::checkpoint, log::inclusion, log::consistency, log::entries,
        crate::chat::slack::interactivity::interactivity, crate::chat::teams::invoke::messages),
    components(schemas(openapi::ProblemDoc)),
    modifiers(&BearerAuth, &ProblemResponses),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole service, ready to serve (tests call this too).
pub fn router(app: App) -> Router {
    let log_routes = log::router(app.evidence.clone()).layer(axum::middleware::from_fn_with_state(
        app.clone(),
        auth::require_auditor,
    ));
    let teams_routes = crate::chat::teams::invoke::router(app.gate.clone(), app.teams.clone());
    let slack_routes = crate::chat::slack::routes(app.slack.as_deref());
    let inbox_routes =
        crate::inbox::routes(app.gate.clone(), app.evidence.clone(), app.inbox.clone());
    let mcp_routes = match &app.mcp {
        Some(gateway) => {
            crate::mcp::front::routes(Arc::new(auth::SubmitterKeys(app.clone())), gateway.clone())
        }
        None => Router::new(),
    };
    Router::new()
        .route("/v1/actions", post(actions::submit))
        .route("/v1/actions/{id}", get(actions::get_action))
        .route("/v1/actions/{id}/events", get(actions::events))
        .route("/v1/actions/{id}/outcome", post(actions::outcome))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::detail))
        .route("/v1/approvals/{id}/reviews", post(approvals::review))
        .route("/v1/approvals/{id}/step-up", post(passkeys::challenge))
        .route(
            "/v1/passkeys",
            get(passkeys::list).post(passkeys::registration_finish),
        )
        .route(
            "/v1/passkeys/registration",
            post(passkeys::registration_start),
        )
        .route("/v1/passkeys/{id}", delete(passkeys::remove))
        .route(
            "/v1/admin/bindings",
            get(admin::list_bindings).post(admin::bind),
        )
        .route(
            "/v1/admin/plugins",
            get(admin::list_plugins)
                .post(admin::register)
                .layer(DefaultBodyLimit::max(admin::PLUGIN_BODY_LIMIT)),
        )
        .route("/v1/keys", get(ops::keys))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .with_state(app)
        .merge(log_routes)
        .merge(teams_routes)
        .merge(slack_routes)
        .merge(mcp_routes)
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::problem_for_every_error))
        // The inbox answers people in a browser: its refusals are HTML
        // pages in the rule's words, not problem+json.
        .merge(inbox_routes.layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
