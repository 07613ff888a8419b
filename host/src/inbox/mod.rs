//! The approver web inbox at `/inbox`: OpenID Connect sign-in, server-side
//! sessions, server-rendered pages and live updates. Every review goes
//! through `Gate::review` like every other channel; the inbox never
//! decides, and never shows an action to someone it is not routed to.

pub mod config;
mod live;
pub mod oidc;
mod pages;
mod passkeys;
mod queue;
mod review;
pub mod session;
mod signin;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use config::{InboxConfig, InboxConfigError, Settings};

use crate::evidence::EvidenceLog;
use crate::gate::Gate;
use session::Cookies;

/// What the inbox's pages reach: the gate, the evidence log and the inbox
/// itself. Never the whole app: the inbox is an entry point beside the
/// API, not above it.
pub struct InboxState {
    pub gate: Arc<Gate>,
    pub evidence: EvidenceLog,
    pub inbox: Option<Arc<Inbox>>,
}

pub type App = Arc<InboxState>;

/// The pages' Content-Security-Policy: nothing inline, nothing from
/// elsewhere, no framing; forms only post back here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The inbox as configured: settings and the provider. What it shows of an
/// action is the one approval summary (`approvals::summary`), redacted by
/// the rules every channel shares.
pub struct Inbox {
    pub settings: Arc<Settings>,
    pub cookies: Cookies,
    provider: oidc::Provider,
}

impl Inbox {
    /// Checks `[inbox]`, with the client secret from the process
    /// environment when the file has none.
    pub fn new(config: &InboxConfig) -> Result<Inbox, InboxConfigError> {
        let settings = Arc::new(config.settings(|name| std::env::var(name).ok())?);
        let provider =
            oidc::Provider::new(settings.clone()).map_err(|e| InboxConfigError::Issuer {
                url: settings.issuer.clone(),
                reason: e.to_string(),
            })?;
        Ok(Inbox {
            cookies: Cookies {
                secure: settings.secure,
            },
            settings,
            provider,
        })
    }

    /// The inbox page of one action, for chat cards and webhooks.
    pub fn action_url(&self, action_id: &str) -> String {
        action_url(&self.settings.public_url, action_id)
    }
}

/// `BASE/inbox/actions/ID`: notifications link there too, so `notify` owns it.
pub use crate::notify::inbox_action_url as action_url;

/// The inbox of a running service. Its routes exist only when it does.
pub(crate) fn inbox(app: &App) -> &Inbox {
    app.inbox
        .as_deref()
        .expect("inbox routes are mounted only with an [inbox] section")
}

/// The `/inbox` routes; none without `[inbox]`.
pub fn routes(gate: Arc<Gate>, evidence: EvidenceLog, inbox: Option<Arc<Inbox>>) -> Router {
    if inbox.is_none() {
        return Router::new();
    }
    let app: App = Arc::new(InboxState {
        gate,
        evidence,
        inbox,
    });
    Router::new()
        .route("/inbox", get(review::list))
        .route("/inbox/live", get(live::stream))
        .route("/inbox/history", get(review::history))
        .route("/inbox/actions/{id}", get(review::action))
        .route("/inbox/actions/{id}/review", post(review::submit))
        .route("/inbox/actions/{id}/step-up", post(passkeys::challenge))
        .route(
            "/inbox/passkeys",
            get(passkeys::page).post(passkeys::registration_finish),
        )
        .route(
            "/inbox/passkeys/registration",
            post(passkeys::registration_start),
        )
        .route("/inbox/passkeys/{id}/remove", post(passkeys::remove))
        .route("/inbox/login", get(signin::login))
        .route("/inbox/callback", get(signin::callback))
        .route("/inbox/logout", post(signin::logout))
        .route("/inbox/static/inbox.css", get(stylesheet))
        .route("/inbox/static/inbox.js", get(script))
        .route("/inbox/static/passkeys.js", get(passkeys_script))
        .with_state(app)
        .layer(axum::middleware::map_response(security_headers))
}

/// Every inbox response: the CSP, no sniffing, no framing, no caching of
/// pages that show actions, no referrer sent to other sites (`same-origin`:
/// with `no-referrer` browsers send `Origin: null` on form posts).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("static/inbox.css"),
    )
        .into_response()
}

async fn script() -> Response {
    javascript(include_str!("static/inbox.js"))
}

async fn passkeys_script() -> Response {
    javascript(include_str!("static/passkeys.js"))
}

fn javascript(source: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        source,
    )
        .into_response()
}
