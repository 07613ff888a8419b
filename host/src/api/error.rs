//! JSON request bodies at the API: a body that does not parse whole is a
//! problem+json naming the failing field; never a partial value. (The
//! problem type itself lives in `crate::problem`, shared with chat.)

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use crate::problem::{ApiJson, Problem};

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
