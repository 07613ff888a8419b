//! Operational endpoints: health, readiness, metrics, keys, OpenAPI.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use utoipa::OpenApi as _;

use super::error::Problem;
use super::{ApiDoc, App};

/// The JWKS with the grant-signing key; executors verify grants offline with it.
#[utoipa::path(get, path = "/v1/keys", tag = "executors", responses((status = 200, description = "JWKS (RFC 7517)")))]
pub async fn keys(State(app): State<App>) -> Json<serde_json::Value> {
    Json(app.gate.grants().jwks())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200), (status = 503)))]
pub async fn readyz(State(app): State<App>) -> Result<&'static str, Problem> {
    app.gate
        .store()
        .ping()
        .await
        .map(|_| "ready")
        .map_err(|_| Problem::unavailable("the database does not answer"))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let pending = app.gate.store().count_pending().await.unwrap_or(-1);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.gate
            .metrics()
            .render(pending, app.gate.evaluator().sandbox().prepared_counts()),
    )
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
