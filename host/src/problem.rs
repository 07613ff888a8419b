//! Every error the HTTP edges (API, chat callbacks, the MCP gateway, the
//! inbox's script calls) return, as RFC 9457 problem+json, mapped in one
//! place, and the JSON body extractor whose errors are problems. Below the edges, above the workflow:
//! never decides anything. Details name the field or the rule; they never
//! carry secrets or database internals.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::evidence::EvidenceError;
use crate::gate::GateError;

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A short stable slug; the `type` URI is built from it.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The `WWW-Authenticate` challenge of a 401 whose credentials are an
    /// API key (RFC 6750); none for refusals of other credentials (a Slack
    /// signature, an inbox session), which no bearer token would answer.
    pub challenge: Option<&'static str>,
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
            challenge: None,
        }
    }

    /// No API key was sent: the challenge names the scheme only (RFC 6750
    /// section 3.1: no error code when no credentials came).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem {
            challenge: Some("Bearer"),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing, unknown or revoked API key",
                detail,
            )
        }
    }

    /// An API key was sent and is malformed, unknown or revoked.
    pub fn invalid_key(detail: impl Into<String>) -> Self {
        Problem {
            challenge: Some(r#"Bearer error="invalid_token""#),
            ..Problem::unauthorized(detail)
        }
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

/// Request bodies larger than this are refused with 413, by every HTTP
/// edge (the API and the chat callbacks).
pub const BODY_LIMIT: usize = 256 * 1024;

/// Every problem `type` is this prefix and a slug: one scheme for the whole
/// service (the evidence routes use it too).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:actiongate:problem:";

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
                            format!("the limit is {} bytes", BODY_LIMIT),
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
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<EvidenceError> for Problem {
    /// The auditors' log routes: database details stay in the server log.
    fn from(e: EvidenceError) -> Self {
        match &e {
            EvidenceError::OutOfRange(d) => Problem::new(
                StatusCode::BAD_REQUEST,
                "out-of-range",
                "Out of range",
                d.clone(),
            ),
            EvidenceError::Unavailable(_) => {
                tracing::warn!(error = %e, "evidence log unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "evidence-unavailable",
                    "Evidence log unavailable",
                    "the evidence store cannot be reached; retry later",
                )
            }
            _ => {
                tracing::error!(error = %e, "evidence log request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "evidence-error",
                    "Evidence log error",
                    "the evidence log could not answer; see the server log",
                )
            }
        }
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
            GateError::KeyRevoked => Problem::invalid_key("unknown or revoked API key"),
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

/// A refused review is a 403 whose `type` names the rule, or 409 when the
/// request is no longer open.
pub fn review_problem(e: crate::approvals::ReviewError) -> Problem {
    match e {
        crate::approvals::ReviewError::Refused(refusal) => {
            let status = match refusal.code() {
                "not-pending" | "expired" | "duplicate" | "stale" => StatusCode::CONFLICT,
                "nothing-modifiable"
                | "param-not-modifiable"
                | "no-change"
                | "not-an-object"
                | "reason-required" => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::FORBIDDEN,
            };
            Problem::new(
                status,
                refusal.code(),
                "The review was refused by an approval rule",
                refusal.to_string(),
            )
        }
        crate::approvals::ReviewError::StepUp(e) => e.into(),
        crate::approvals::ReviewError::Gate(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(p: Problem) -> Option<String> {
        let r = p.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        r.headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// A 401 challenges for a bearer key only where one is the credential;
    /// with an error code only when a key was sent (RFC 6750 section 3.1).
    #[test]
    fn a_401_names_the_challenge_its_credential_answers() {
        assert_eq!(
            challenge(Problem::unauthorized("none")).as_deref(),
            Some("Bearer")
        );
        assert_eq!(
            challenge(Problem::invalid_key("unknown")).as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
        // A refused Slack signature or inbox session: no bearer token helps.
        let signature = Problem::new(StatusCode::UNAUTHORIZED, "slack", "Slack", "not verified");
        assert_eq!(challenge(signature), None);
    }
}
