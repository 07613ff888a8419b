//! The inbox's pages: askama templates (host/templates/inbox/) and the view
//! models they render. Views only show; they never decide or write.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

/// The signed-in person, as the page header shows them.
#[derive(Debug, Clone)]
pub struct Me {
    pub name: String,
    pub email: String,
    pub csrf: String,
    /// Whether passkeys are in use here (`[step_up]`): only then does the
    /// menu offer them.
    pub passkeys: bool,
}

/// One row of the pending list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    pub id: String,
    pub digest: String,
    pub kind: String,
    pub resource: String,
    pub agent: String,
    pub owner: String,
    pub risk: &'static str,
    pub approvals: usize,
    pub quorum: u32,
    pub requested: String,
    pub requested_iso: String,
    pub expires: String,
    pub expires_iso: String,
}

#[derive(Template)]
#[template(path = "inbox/list.html")]
pub struct ListPage {
    pub me: Option<Me>,
    pub items: Vec<PendingItem>,
}

/// The list alone, as the live updates send it.
#[derive(Template)]
#[template(path = "inbox/pending.html")]
pub struct PendingFragment<'a> {
    pub items: &'a [PendingItem],
}

pub struct Pair {
    pub key: String,
    pub value: String,
}

pub struct PluginView {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A modifiable parameter as a form field.
pub struct ParamField {
    pub name: String,
    /// The current value as text (empty when redacted).
    pub value: String,
    pub hint: &'static str,
    pub redacted: bool,
}

pub struct ReviewView {
    pub who: String,
    pub decision: String,
    pub reason: Option<String>,
    pub channel: String,
    pub at: String,
    pub at_iso: String,
    /// Given for the action as it stands now.
    pub current: bool,
}

/// Everything an approver sees of one action.
pub struct ActionView {
    pub id: String,
    pub digest: String,
    pub digest_short: String,
    pub state: &'static str,
    pub pending: bool,
    pub kind: String,
    pub resource: String,
    pub agent: String,
    pub owner: String,
    pub on_behalf_of: Option<String>,
    pub requested: String,
    pub requested_iso: String,
    pub justification: Option<String>,
    pub context: Vec<Pair>,
    /// Pretty JSON, secrets redacted.
    pub params: String,
    pub risk: &'static str,
    pub approve_needs_reason: bool,
    pub reasons: Vec<String>,
    pub plugin: Option<PluginView>,
    pub failure: Option<String>,
    pub groups: String,
    pub quorum: u32,
    pub approvals: usize,
    pub expires: String,
    pub expires_iso: String,
    pub escalate_to: String,
    pub escalated: bool,
    pub modifiable: Vec<ParamField>,
    pub reviews: Vec<ReviewView>,
    /// Approving (or modifying) needs this person's passkey assertion.
    pub step_up: bool,
    /// The person has a passkey to answer the step-up with.
    pub has_passkey: bool,
}

/// The outcome of a review, shown above the action.
pub struct Notice {
    /// `ok` or `refused`.
    pub kind: &'static str,
    pub title: String,
    pub text: String,
    pub code: Option<String>,
}

#[derive(Template)]
#[template(path = "inbox/action.html")]
pub struct ActionPage {
    pub me: Option<Me>,
    pub a: ActionView,
    pub notice: Option<Notice>,
}

pub struct HistoryItem {
    pub action_id: String,
    pub kind: String,
    pub resource: String,
    pub decision: String,
    pub reason: Option<String>,
    pub channel: String,
    pub state: String,
    pub at: String,
    pub at_iso: String,
}

#[derive(Template)]
#[template(path = "inbox/history.html")]
pub struct HistoryPage {
    pub me: Option<Me>,
    pub items: Vec<HistoryItem>,
}

/// One of the person's passkeys, as their passkeys page lists it.
pub struct PasskeyView {
    pub id: String,
    pub label: String,
    pub credential_short: String,
    pub created: String,
    pub created_iso: String,
    pub last_used: Option<String>,
    pub sign_count: i64,
}

#[derive(Template)]
#[template(path = "inbox/passkeys.html")]
pub struct PasskeysPage {
    pub me: Option<Me>,
    pub passkeys: Vec<PasskeyView>,
    pub notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "inbox/message.html")]
pub struct MessagePage {
    pub me: Option<Me>,
    pub title: String,
    pub text: String,
    pub code: Option<String>,
    pub sign_in: bool,
}

/// A time as people read it, and as `<time datetime>` wants it.
pub fn times(at: DateTime<Utc>) -> (String, String) {
    (
        at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Renders `page` with `status`. A template that fails to render is a bug,
/// answered with a plain 500 rather than a half page.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "inbox template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A page that explains a refusal or a failure.
pub fn problem_page(status: StatusCode, title: &str, text: &str, me: Option<Me>) -> Response {
    render(
        status,
        &MessagePage {
            me,
            title: title.into(),
            text: text.into(),
            code: None,
            sign_in: false,
        },
    )
}

/// A refused sign-in: what went wrong, its code, a way to try again.
pub fn sign_in_refused(code: &str, text: &str) -> Response {
    render(
        StatusCode::FORBIDDEN,
        &MessagePage {
            me: None,
            title: "Sign-in refused".into(),
            text: text.into(),
            code: Some(code.into()),
            sign_in: true,
        },
    )
}

pub fn signed_out_page(why: &str) -> Response {
    render(
        StatusCode::UNAUTHORIZED,
        &MessagePage {
            me: None,
            title: "Signed out".into(),
            text: format!("{why} Sign in again to continue."),
            code: None,
            sign_in: true,
        },
    )
}

pub fn unavailable() -> Response {
    problem_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The approval service cannot reach its database right now. Nothing was changed; try again shortly.",
        None,
    )
}

pub fn not_found(me: Option<Me>) -> Response {
    problem_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such action, or it is not routed to any group you review for.",
        me,
    )
}
