//! A local fake of Slack for the tests: the Web API methods actiongate uses
//! (with Slack's wire formats, token checks, `{ok:false,error}`, 429 with
//! `Retry-After`, and Block Kit limits) and the Socket Mode websocket
//! (hello, envelopes, acks, disconnect). The suite checks it against the
//! official `slack_sdk` (tests/python/slack_fake_check.py) so the tests
//! below it exercise the real protocol, not our reading of it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

pub const BOT_TOKEN: &str = "xoxb-fake-bot-token";
pub const APP_TOKEN: &str = "xapp-1-fake-app-token";
pub const SIGNING_SECRET: &str = "fake-signing-secret-0123456789";
pub const TEAM_ID: &str = "T0FAKE";

/// One Web API call as the fake received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The arguments, from a JSON body, a form body or the query string.
    pub args: Value,
}

/// A scripted answer to the next call of a method.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited { retry_after: u64 },
    /// HTTP 200 `{"ok": false, "error": …}`.
    Error(&'static str),
    /// A bare HTTP status (e.g. 503).
    Status(u16),
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<Call>>,
    script: Mutex<HashMap<String, VecDeque<Scripted>>>,
    /// (channel, ts) -> message.
    messages: Mutex<BTreeMap<(String, String), Value>>,
    users: Mutex<HashMap<String, String>>,
    triggers: Mutex<HashSet<String>>,
    tickets: Mutex<HashSet<String>>,
    sockets: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    acks: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    counter: AtomicU64,
    connections: AtomicU64,
    addr: Mutex<String>,
}

#[derive(Clone)]
pub struct FakeSlack {
    /// `http://127.0.0.1:port`; the Web API is under `/api/`.
    pub url: String,
    inner: Arc<Inner>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/api/{method}", any(web_api))
            .route("/link/", get(socket))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        *inner.addr.lock().unwrap() = addr.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSlack {
            url: format!("http://{addr}"),
            inner,
        }
    }

    /// The Web API base URL, as `api_base_url` / `WebClient(base_url=…)` want it.
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.url)
    }

    /// A workspace member `users.lookupByEmail` finds.
    pub fn add_user(&self, email: &str, id: &str) {
        self.inner
            .users
            .lock()
            .unwrap()
            .insert(email.to_ascii_lowercase(), id.into());
    }

    pub fn script(&self, method: &str, answer: Scripted) {
        self.inner
            .script
            .lock()
            .unwrap()
            .entry(method.into())
            .or_default()
            .push_back(answer);
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.inner
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// A message as it stands now (after any `chat.update`).
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.inner
            .messages
            .lock()
            .unwrap()
            .get(&(channel.to_string(), ts.to_string()))
            .cloned()
    }

    /// A fresh `trigger_id`, as Slack puts in an interaction payload; valid
    /// for one `views.open`.
    pub fn trigger(&self) -> String {
        let n = self.inner.counter.fetch_add(1, Ordering::SeqCst);
        let trigger = format!("{n}.1234567890.fake{n:08x}");
        self.inner.triggers.lock().unwrap().insert(trigger.clone());
        trigger
    }

    /// Socket Mode connections opened so far.
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::SeqCst)
    }

    fn live_sockets(&self) -> usize {
        let mut sockets = self.inner.sockets.lock().unwrap();
        sockets.retain(|s| !s.is_closed());
        sockets.len()
    }

    /// Waits until a Socket Mode client is connected.
    pub async fn wait_for_socket(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.live_sockets() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no Socket Mode client connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends an `interactive` envelope over the newest socket and returns
    /// the client's ack (`{"envelope_id": …, "payload"?: …}`).
    pub async fn push_interactive(&self, payload: Value) -> Value {
        self.wait_for_socket(Duration::from_secs(10)).await;
        let n = self.inner.counter.fetch_add(1, Ordering::SeqCst);
        let envelope_id = format!("env-{n}");
        let (tx, rx) = oneshot::channel();
        self.inner
            .acks
            .lock()
            .unwrap()
            .insert(envelope_id.clone(), tx);
        let envelope = json!({
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "interactive",
            "accepts_response_payload": true,
            "retry_attempt": 0,
            "retry_reason": "",
        });
        let socket = self.inner.sockets.lock().unwrap().last().cloned().unwrap();
        socket.send(envelope.to_string()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the envelope is acked within Slack's 3 s (5 s here)")
            .unwrap()
    }

    /// Asks every connected client to reconnect, as Slack does before it
    /// recycles a connection.
    pub fn disconnect_all(&self, reason: &str) {
        let frame =
            json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})
                .to_string();
        for socket in self.inner.sockets.lock().unwrap().drain(..) {
            let _ = socket.send(frame.clone());
        }
    }

    /// Polls until `check` holds (cards are posted after the API answers).
    pub async fn wait_until(&self, what: &str, check: impl Fn(&FakeSlack) -> bool) {
        self.wait_until_within(what, Duration::from_secs(10), check)
            .await
    }

    pub async fn wait_until_within(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&FakeSlack) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn ok(mut fields: Value) -> Response {
    fields["ok"] = Value::Bool(true);
    Json(fields).into_response()
}

fn fail(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

/// Arguments from a JSON body, a form body or the query string.
fn arguments(headers: &HeaderMap, query: &HashMap<String, String>, body: &[u8]) -> Option<Value> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut args = Map::new();
    for (k, v) in query {
        args.insert(k.clone(), Value::String(v.clone()));
    }
    if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body).ok()? {
            Value::Object(map) => args.extend(map),
            _ => return None,
        }
    } else if !body.is_empty() {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
        for (k, v) in form {
            // Form bodies carry structured arguments (blocks, view) as JSON text.
            let value = match k.as_str() {
                "blocks" | "view" | "attachments" => {
                    serde_json::from_str(&v).unwrap_or(Value::String(v))
                }
                _ => Value::String(v),
            };
            args.insert(k, value);
        }
    }
    Some(Value::Object(args))
}

async fn web_api(
    State(inner): State<Arc<Inner>>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(args) = arguments(&headers, &query, &body) else {
        return fail("invalid_json");
    };
    inner.calls.lock().unwrap().push(Call {
        method: method.clone(),
        args: args.clone(),
    });
    let scripted = inner
        .script
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(VecDeque::pop_front);
    match scripted {
        Some(Scripted::RateLimited { retry_after }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
                Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response()
        }
        Some(Scripted::Error(error)) => return fail(error),
        Some(Scripted::Status(status)) => {
            return StatusCode::from_u16(status).unwrap().into_response()
        }
        None => {}
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(String::from)
        .or_else(|| args["token"].as_str().map(String::from));
    let Some(token) = token else {
        return fail("not_authed");
    };
    let wants_app_token = method == "apps.connections.open";
    match (wants_app_token, token.as_str()) {
        (true, APP_TOKEN) | (false, BOT_TOKEN) => {}
        (true, t) if t.starts_with("xoxb-") => return fail("not_allowed_token_type"),
        (false, t) if t.starts_with("xapp-") => return fail("not_allowed_token_type"),
        _ => return fail("invalid_auth"),
    }
    let s = |key: &str| args[key].as_str().filter(|v| !v.is_empty());
    match method.as_str() {
        "auth.test" => ok(json!({
            "url": "https://fake.slack.test/", "team": "Fake", "user": "actiongate",
            "team_id": TEAM_ID, "user_id": "U0BOT", "bot_id": "B0BOT",
        })),
        "chat.postMessage" => {
            let Some(channel) = s("channel") else {
                return fail("channel_not_found");
            };
            if let Some(e) = check_message(&args) {
                return e;
            }
            if let Some(thread) = s("thread_ts") {
                if !inner
                    .messages
                    .lock()
                    .unwrap()
                    .contains_key(&(channel.to_string(), thread.to_string()))
                {
                    return fail("thread_not_found");
                }
            }
            let n = inner.counter.fetch_add(1, Ordering::SeqCst);
            let ts = format!("{}.{:06}", 1_700_000_000 + n, n);
            let mut message =
                json!({"type": "message", "user": "U0BOT", "bot_id": "B0BOT", "ts": ts});
            for key in ["text", "blocks", "thread_ts", "reply_broadcast"] {
                if !args[key].is_null() {
                    message[key] = args[key].clone();
                }
            }
            inner
                .messages
                .lock()
                .unwrap()
                .insert((channel.to_string(), ts.clone()), message.clone());
            ok(json!({"channel": channel, "ts": ts, "message": message}))
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (s("channel"), s("ts")) else {
                return fail("invalid_arguments");
            };
            if let Some(e) = check_message(&args) {
                return e;
            }
            let mut messages = inner.messages.lock().unwrap();
            let Some(message) = messages.get_mut(&(channel.to_string(), ts.to_string())) else {
                return fail("message_not_found");
            };
            for key in ["text", "blocks"] {
                if !args[key].is_null() {
                    message[key] = args[key].clone();
                }
            }
            message["edited"] = json!({"user": "U0BOT"});
            ok(json!({"channel": channel, "ts": ts, "text": message["text"].clone()}))
        }
        "chat.postEphemeral" => {
            if s("channel").is_none() {
                return fail("channel_not_found");
            }
            if s("user").is_none() {
                return fail("user_not_in_channel");
            }
            if let Some(e) = check_message(&args) {
                return e;
            }
            let n = inner.counter.fetch_add(1, Ordering::SeqCst);
            ok(json!({"message_ts": format!("{}.{:06}", 1_700_000_000 + n, n)}))
        }
        "views.open" => {
            let Some(trigger) = s("trigger_id") else {
                return fail("invalid_arguments");
            };
            if !inner.triggers.lock().unwrap().remove(trigger) {
                return fail("invalid_trigger_id");
            }
            if let Err(problem) = check_view(&args["view"]) {
                return Json(json!({"ok": false, "error": "invalid_arguments", "response_metadata": {"messages": [problem]}})).into_response();
            }
            let n = inner.counter.fetch_add(1, Ordering::SeqCst);
            let mut view = args["view"].clone();
            view["id"] = json!(format!("V0FAKE{n}"));
            view["team_id"] = json!(TEAM_ID);
            view["state"] = json!({"values": {}});
            view["hash"] = json!(format!("{n}.hash"));
            ok(json!({"view": view}))
        }
        "users.lookupByEmail" => {
            let email = s("email").unwrap_or_default().to_ascii_lowercase();
            match inner.users.lock().unwrap().get(&email) {
                Some(id) => {
                    ok(json!({"user": {"id": id, "team_id": TEAM_ID, "profile": {"email": email}}}))
                }
                None => fail("users_not_found"),
            }
        }
        "apps.connections.open" => {
            let n = inner.counter.fetch_add(1, Ordering::SeqCst);
            let ticket = format!("ticket-{n}");
            inner.tickets.lock().unwrap().insert(ticket.clone());
            let addr = inner.addr.lock().unwrap().clone();
            ok(json!({"url": format!("ws://{addr}/link/?ticket={ticket}&app_id=A0FAKE")}))
        }
        _ => fail("unknown_method"),
    }
}

fn text_len(object: &Value) -> usize {
    object["text"].as_str().map_or(0, |t| t.chars().count())
}

fn invalid_blocks(problem: String) -> Response {
    Json(json!({"ok": false, "error": "invalid_blocks", "errors": [problem]})).into_response()
}

/// The Block Kit limits Slack enforces on messages (a subset: those our
/// cards could break). `Some` is the refusal.
fn check_message(args: &Value) -> Option<Response> {
    let has_text = args["text"].as_str().is_some_and(|t| !t.is_empty());
    let blocks = &args["blocks"];
    if !has_text && blocks.is_null() {
        return Some(fail("no_text"));
    }
    if blocks.is_null() {
        return None;
    }
    let Some(blocks) = blocks.as_array() else {
        return Some(fail("invalid_blocks_format"));
    };
    if blocks.len() > 50 {
        return Some(invalid_blocks("more than 50 blocks".into()));
    }
    blocks.iter().enumerate().find_map(|(i, block)| {
        check_block(block, false)
            .err()
            .map(|p| invalid_blocks(format!("blocks[{i}]: {p}")))
    })
}

fn check_block(block: &Value, in_modal: bool) -> Result<(), String> {
    let limit = |what: &str, len: usize, max: usize| {
        if len > max {
            Err(format!("{what} is {len} characters (max {max})"))
        } else {
            Ok(())
        }
    };
    if let Some(id) = block["block_id"].as_str() {
        limit("block_id", id.len(), 255)?;
    }
    match block["type"].as_str() {
        Some("header") => {
            if block["text"]["type"] != "plain_text" {
                return Err("header text must be plain_text".into());
            }
            limit("header text", text_len(&block["text"]), 150)
        }
        Some("section") => {
            if block["text"].is_null() && block["fields"].is_null() {
                return Err("section needs text or fields".into());
            }
            limit("section text", text_len(&block["text"]), 3000)?;
            if let Some(fields) = block["fields"].as_array() {
                if fields.len() > 10 {
                    return Err("more than 10 fields".into());
                }
                for field in fields {
                    limit("field", text_len(field), 2000)?;
                }
            }
            Ok(())
        }
        Some("context") => {
            let elements = block["elements"]
                .as_array()
                .ok_or("context needs elements")?;
            if elements.len() > 10 {
                return Err("more than 10 context elements".into());
            }
            for e in elements {
                limit("context text", text_len(e), 3000)?;
            }
            Ok(())
        }
        Some("actions") => {
            let elements = block["elements"]
                .as_array()
                .ok_or("actions needs elements")?;
            if elements.len() > 25 {
                return Err("more than 25 actions".into());
            }
            let mut ids = HashSet::new();
            for e in elements {
                if e["type"] == "button" {
                    let id = e["action_id"].as_str().ok_or("button needs an action_id")?;
                    limit("action_id", id.len(), 255)?;
                    if !ids.insert(id) {
                        return Err(format!("duplicate action_id {id}"));
                    }
                    limit("button text", text_len(&e["text"]), 75)?;
                    limit(
                        "button value",
                        e["value"].as_str().map_or(0, str::len),
                        2000,
                    )?;
                    if let Some(style) = e["style"].as_str() {
                        if style != "primary" && style != "danger" {
                            return Err(format!("bad button style {style}"));
                        }
                    }
                    let confirm = &e["confirm"];
                    if !confirm.is_null() {
                        limit("confirm title", text_len(&confirm["title"]), 100)?;
                        limit("confirm text", text_len(&confirm["text"]), 300)?;
                        limit("confirm button", text_len(&confirm["confirm"]), 30)?;
                        limit("deny button", text_len(&confirm["deny"]), 30)?;
                        if confirm["title"].is_null()
                            || confirm["text"].is_null()
                            || confirm["confirm"].is_null()
                            || confirm["deny"].is_null()
                        {
                            return Err("confirm needs title, text, confirm and deny".into());
                        }
                    }
                }
            }
            Ok(())
        }
        Some("input") if in_modal => {
            limit("input label", text_len(&block["label"]), 2000)?;
            let element = &block["element"];
            if element["type"] != "plain_text_input" {
                return Err("only plain_text_input is faked".into());
            }
            let max = element["max_length"].as_u64().unwrap_or(3000) as usize;
            limit("max_length", max, 3000)?;
            if let Some(initial) = element["initial_value"].as_str() {
                limit("initial_value", initial.chars().count(), max)?;
            }
            Ok(())
        }
        Some("divider") => Ok(()),
        other => Err(format!("unsupported block type {other:?}")),
    }
}

/// `views.open` checks (the subset our modals could break).
fn check_view(view: &Value) -> Result<(), String> {
    if view["type"] != "modal" {
        return Err("view type must be modal".into());
    }
    if text_len(&view["title"]) > 24 {
        return Err("title is over 24 characters".into());
    }
    for button in ["submit", "close"] {
        if text_len(&view[button]) > 24 {
            return Err(format!("{button} is over 24 characters"));
        }
    }
    if view["private_metadata"].as_str().map_or(0, str::len) > 3000 {
        return Err("private_metadata is over 3000 characters".into());
    }
    let blocks = view["blocks"].as_array().ok_or("view needs blocks")?;
    if blocks.len() > 100 {
        return Err("more than 100 blocks".into());
    }
    let has_input = blocks.iter().any(|b| b["type"] == "input");
    if has_input && view["submit"].is_null() {
        return Err("a view with inputs needs submit".into());
    }
    for (i, block) in blocks.iter().enumerate() {
        check_block(block, true).map_err(|p| format!("blocks[{i}]: {p}"))?;
    }
    Ok(())
}

async fn socket(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let ticket = query.get("ticket").cloned().unwrap_or_default();
    if !inner.tickets.lock().unwrap().remove(&ticket) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    upgrade.on_upgrade(move |ws| connection(inner, ws))
}

async fn connection(inner: Arc<Inner>, mut ws: WebSocket) {
    inner.connections.fetch_add(1, Ordering::SeqCst);
    let hello = json!({
        "type": "hello",
        "num_connections": 1,
        "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0FAKE"},
    });
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    inner.sockets.lock().unwrap().push(tx);
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                let disconnect = out.contains("\"type\":\"disconnect\"");
                if ws.send(Message::text(out)).await.is_err() {
                    break;
                }
                if disconnect {
                    // Like Slack, keep the old link open for a grace period
                    // (the client closes it once its new one is up). Shorter
                    // than Slack's, to keep tests quick; slack_sdk sometimes
                    // leaves its old session hanging until the server closes.
                    let grace = tokio::time::sleep(Duration::from_secs(3));
                    tokio::pin!(grace);
                    loop {
                        tokio::select! {
                            _ = &mut grace => break,
                            incoming = ws.recv() => match incoming {
                                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                                Some(Ok(_)) => {}
                            },
                        }
                    }
                    break;
                }
            }
            incoming = ws.recv() => {
                let Some(Ok(message)) = incoming else { break };
                if let Message::Text(text) = message {
                    let Ok(ack) = serde_json::from_str::<Value>(&text) else { continue };
                    if let Some(id) = ack["envelope_id"].as_str() {
                        if let Some(waiter) = inner.acks.lock().unwrap().remove(id) {
                            let _ = waiter.send(ack.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Slack's `block_actions` payload for a click on `action_id` (one of the
/// card's buttons carrying `value`) by `user` on the message at `ts`.
pub fn block_actions(
    user: &str,
    channel: &str,
    ts: &str,
    action_id: &str,
    value: &str,
    trigger_id: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM_ID},
        "api_app_id": "A0FAKE",
        "token": "verification-token-not-used",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": trigger_id,
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": ts},
        "response_url": "https://hooks.slack.com/actions/T0FAKE/1/fake",
        "actions": [{
            "action_id": action_id,
            "block_id": "actiongate_review",
            "text": {"type": "plain_text", "text": "button", "emoji": true},
            "value": value,
            "type": "button",
            "action_ts": "1700000000.000001",
        }],
    })
}

/// Slack's `view_submission` payload for `view` (as `views.open` returned
/// it) with the inputs filled in: `values` maps block_id -> text.
pub fn view_submission(user: &str, view: &Value, values: &[(&str, &str)]) -> Value {
    let mut state = Map::new();
    for (block, text) in values {
        state.insert(
            (*block).to_string(),
            json!({"value": {"type": "plain_text_input", "value": text}}),
        );
    }
    let mut view = view.clone();
    view["state"] = json!({"values": state});
    json!({
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM_ID},
        "api_app_id": "A0FAKE",
        "token": "verification-token-not-used",
        "trigger_id": "0.0.submission",
        "view": view,
        "response_urls": [],
    })
}
