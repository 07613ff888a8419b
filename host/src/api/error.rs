//! JSON request bodies at the API: a body that does not parse whole is a
//! problem+json naming the failing field; never a partial value. (The
//! problem type itself lives in `crate::problem`, shared with chat.)

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

pub use crate::problem::Problem;

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
