//! Every error the API returns, as RFC 9457 problem+json, mapped in one
//! place. Details name the field or the rule; they never carry secrets or
//! database internals.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::gate::GateError;

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A short stable slug; the `type` URI is built from it.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing, unknown or revoked API key",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed for this key",
            detail,
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "The request is not valid",
            detail,
        )
    }

    /// A kind or kind pattern outside the one kind grammar; the detail
    /// states the rule.
    pub fn invalid_kind(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-kind",
            "The action kind does not follow the kind grammar",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such resource",
            detail,
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Evidence or state could not be committed; nothing was allowed",
            detail,
        )
    }
}

/// Every problem `type` is this prefix and a slug: one scheme for the whole
/// service (the evidence routes use it too).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:actiongate:problem:";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": format!("{PROBLEM_TYPE_PREFIX}{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<GateError> for Problem {
    fn from(e: GateError) -> Self {
        if e.is_unavailable() {
            tracing::error!(error = %e, "failing closed: database unavailable");
            return Problem::unavailable("the database is unavailable; retry later");
        }
        match &e {
            GateError::Busy(busy) => {
                tracing::warn!(plugin = %busy.plugin, waited_ms = busy.waited_ms, "sandbox busy; nothing decided");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "The policy sandbox is busy; nothing was decided",
                    e.to_string(),
                )
            }
            GateError::IdempotencyConflict(_) => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-conflict",
                "Idempotency key reused with a different request",
                e.to_string(),
            ),
            GateError::NotFound(_) => Problem::not_found(e.to_string()),
            GateError::Invalid(_) => Problem::bad_request(e.to_string()),
            GateError::Kind(_) => Problem::invalid_kind(e.to_string()),
            GateError::KeyRevoked => Problem::unauthorized("unknown or revoked API key"),
            GateError::GrantRefused(_) => Problem::new(
                StatusCode::FORBIDDEN,
                "grant-refused",
                "The grant is not valid for this action",
                e.to_string(),
            ),
            GateError::GrantReused { .. } => Problem::new(
                StatusCode::CONFLICT,
                "grant-reused",
                "The grant was already used",
                e.to_string(),
            ),
            GateError::WrongState { .. } => Problem::new(
                StatusCode::CONFLICT,
                "wrong-state",
                "The action is not in a state that allows this",
                e.to_string(),
            ),
            GateError::Evidence(_) | GateError::Store(_) => {
                tracing::error!(error = %e, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "see the server log",
                )
            }
        }
    }
}

impl From<crate::stepup::StepUpError> for Problem {
    fn from(e: crate::stepup::StepUpError) -> Self {
        use crate::stepup::StepUpError as E;
        if let E::Store(_) = e {
            return crate::gate::GateError::from(e.into_store()).into();
        }
        let status = match &e {
            E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::NotConfigured | E::NoSuchPasskey(_) => StatusCode::NOT_FOUND,
            E::AlreadyRegistered => StatusCode::CONFLICT,
            E::UnknownRegistration | E::RegistrationInvalid(_) => StatusCode::BAD_REQUEST,
            E::Config(_) => {
                tracing::error!(error = %e, "step-up misconfigured");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            E::Required { .. }
            | E::NoPasskey
            | E::UnknownChallenge
            | E::Expired
            | E::WrongAction { .. }
            | E::Invalid(_)
            | E::NotVerified => StatusCode::FORBIDDEN,
        };
        let title = match &e {
            E::Required { .. } => "This approval needs a passkey step-up",
            E::NoPasskey => "No passkey registered for step-up",
            E::NotVerified => "The authenticator did not verify the user",
            E::UnknownRegistration | E::RegistrationInvalid(_) | E::AlreadyRegistered => {
                "The passkey registration was refused"
            }
            _ => "The passkey step-up was refused",
        };
        Problem::new(status, e.code(), title, e.to_string())
    }
}

/// A JSON body whose errors are problem+json naming the failing field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected application/json",
                "set Content-Type: application/json",
            ));
        }
        let bytes =
            axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e: BytesRejection| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        Problem::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body-too-large",
                            "Request body too large",
                            format!("the limit is {} bytes", super::BODY_LIMIT),
                        )
                    } else {
                        Problem::bad_request(e.body_text())
                    }
                })?;
        // Before anything reads the body: input that parsers would read
        // differently is refused here, never after an evaluation.
        crate::ijson::check(&bytes).map_err(|e| Problem::bad_request(e.to_string()))?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                Problem::bad_request(format!("body: {inner}"))
            } else {
                Problem::bad_request(format!("{path}: {inner}"))
            }
        })?;
        de.end()
            .map_err(|e| Problem::bad_request(format!("body: {e}")))?;
        Ok(ApiJson(value))
    }
}

/// Middleware: any error response that is not already JSON (axum's 405 for
/// a known path with another method, extractor rejections, layer refusals)
/// becomes problem+json with the same status and headers (`Allow` kept).
/// JSON error bodies pass untouched: ours are problem+json already, and the
/// Bot Framework expects its invoke errors as they are.
pub async fn problem_for_every_error(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start().to_ascii_lowercase();
            ct.starts_with("application/json") || ct.starts_with("application/problem+json")
        });
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection texts are short; a long body is not a message for people.
    let text = axum::body::to_bytes(body, 2048)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let problem = generic_problem(status, &method, &path, &parts.headers, text);
    let mut answer = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The problem for an error response that arrived without one: a slug and
/// a title per status, the original text as detail (never for 5xx, whose
/// text may carry internals).
fn generic_problem(
    status: StatusCode,
    method: &Method,
    path: &str,
    headers: &axum::http::HeaderMap,
    text: String,
) -> Problem {
    let detail = |fallback: String| {
        if text.is_empty() {
            fallback
        } else {
            text.clone()
        }
    };
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .replace(',', ", ");
            Problem::new(
                status,
                "method-not-allowed",
                "Method not allowed on this path",
                format!("{method} is not allowed on {path}; allowed: {allowed}"),
            )
        }
        StatusCode::BAD_REQUEST => Problem::bad_request(detail("bad request".into())),
        StatusCode::NOT_FOUND => Problem::not_found(detail(format!("nothing at {path}"))),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "body-too-large",
            "Request body too large",
            format!("the limit is {} bytes", super::BODY_LIMIT),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            status,
            "unsupported-media-type",
            "Expected application/json",
            detail("set Content-Type: application/json".into()),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => Problem::new(
            status,
            "unprocessable",
            "The request could not be processed",
            detail("the request is well-formed but cannot be processed".into()),
        ),
        StatusCode::NOT_IMPLEMENTED => Problem::new(
            status,
            "not-implemented",
            "Not implemented",
            detail(format!("{method} {path} is not implemented")),
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            Problem::unavailable("the service cannot answer now; retry later")
        }
        s if s.is_server_error() => {
            Problem::new(s, "internal", "Internal error", "see the server log")
        }
        _ => Problem::new(
            status,
            "refused",
            "The request was refused",
            detail(status.canonical_reason().unwrap_or("refused").into()),
        ),
    }
}
