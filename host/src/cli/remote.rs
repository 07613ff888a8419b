//! Calls to the actiongate API as a person, with their own key (the one
//! `actiongate approver key EMAIL` issues): the server says who they are
//! and applies every rule.

use std::io::Write;

use serde_json::Value;

use super::approvals::Remote;

/// Sends `request` (path and optional JSON body); on a refusal (4xx) prints
/// it and returns `Ok(None)` (exit 1), on success the status and body.
pub async fn call(
    remote: &Remote,
    path: &str,
    body: Option<&Value>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Option<(reqwest::StatusCode, Value)>> {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let request = match body {
        Some(body) => client.post(&url).json(body),
        None => client.get(&url),
    };
    let response = request.bearer_auth(&remote.key).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_client_error() {
        writeln!(
            out,
            "refused ({status}): {}",
            body["detail"].as_str().unwrap_or("no detail")
        )?;
        return Ok(None);
    }
    anyhow::ensure!(
        status.is_success(),
        "{url}: {status}: {}",
        body["detail"].as_str().unwrap_or("no detail")
    );
    Ok(Some((status, body)))
}

/// A JSON field as text for a table cell (`-` when absent).
pub fn cell(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}
