//! One `tools/call` as an action: submit it through the gate (or reattach an
//! identical retry to its held action), hold it while approvers decide, run
//! it upstream once it is allowed, and record the outcome with the grant
//! (after the caller has its result: `outcomes`). A call never reaches its
//! upstream without a claimed grant.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock as Content, MetaObject, RequestMetaObject,
};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::catalog::Entry;
use super::Gateway;
use crate::execution::{Claim, ClaimedRun, RunReport};
use crate::gate::{ActionId, ActionStatus, GateError, OutcomeStatus, State, Submission};
use crate::store::AgentRow;

/// Where actiongate's own facts go in a result's `_meta`.
pub const META_KEY: &str = "io.actiongate/decision";

/// Who calls, from where.
pub struct Caller {
    pub agent: Arc<AgentRow>,
    pub key_hash: String,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub protocol_version: Option<String>,
}

/// Sends a progress notification to the caller (when it asked for them).
pub type Progress =
    Box<dyn Fn(f64, f64, String) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// What the call path can fail with before there is a tool result: the
/// front turns these into JSON-RPC errors (unknown tool) or 503-like
/// internal errors (the store or log is unavailable).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The caller went away (cancelled, or closed its stream) before the
    /// call ran; a held action stays for an identical retry.
    #[error("the caller left before the call ran")]
    Abandoned,
}

type Shared = Arc<CallToolResult>;

/// Calls in flight on this replica.
#[derive(Default)]
pub struct Calls {
    /// (agent, call digest) → its turn, so identical calls attach in turn.
    attaching: Mutex<HashMap<String, Arc<Turn>>>,
    /// Each run's result, for identical retries that arrive while (or
    /// shortly after) it runs.
    runs: Mutex<Runs>,
}

/// Runs on this replica, and the results of those that ended less than
/// `RESULT_KEPT` ago.
#[derive(Default)]
struct Runs {
    /// action id → its run's result.
    results: HashMap<String, watch::Receiver<Option<Shared>>>,
    /// When each ended run's result goes, in the order they ended. Pruned
    /// as runs end: no timer or task per run.
    ended: VecDeque<(Instant, String)>,
}

impl Runs {
    /// `id`'s run ended at `now`: its result stays `RESULT_KEPT`, and
    /// results kept longer than that go.
    fn ended(&mut self, id: String, now: Instant) {
        while self.ended.front().is_some_and(|(until, _)| *until <= now) {
            if let Some((_, gone)) = self.ended.pop_front() {
                self.results.remove(&gone);
            }
        }
        self.ended.push_back((now + RESULT_KEPT, id));
    }
}

/// The turn identical calls take while one of them may become a held
/// action that the others must attach to.
#[derive(Default)]
struct Turn {
    lock: tokio::sync::Mutex<()>,
    /// Set while the latest identical submission was decided at once
    /// (allowed or denied): then identical calls are independent actions
    /// and submit side by side instead of queueing behind each other's
    /// decision (a read-only tool called in a loop by many sessions of one
    /// agent). Cleared when one is held. Should a policy start holding a
    /// call it decided at once before, identical calls already past their
    /// turn may each become a held action (the latest is the one retries
    /// attach to); none of them runs unapproved.
    decided_at_once: std::sync::atomic::AtomicBool,
}

/// How long a run's result stays available to identical retries.
const RESULT_KEPT: Duration = Duration::from_secs(120);

/// sha256 of the canonical `{"tool", "arguments"}`: a retry is identical
/// when this and the agent are.
pub fn call_digest(tool: &str, arguments: &serde_json::Value) -> String {
    let canonical = crate::evidence::canonical::digest_bytes(&serde_json::json!({
        "tool": tool,
        "arguments": arguments,
    }));
    hex::encode(Sha256::digest(canonical))
}

/// A tool result the model can read, marked as actiongate's.
fn gate_result(text: String, facts: serde_json::Value, is_error: bool) -> CallToolResult {
    let mut result = if is_error {
        CallToolResult::error(vec![Content::text(text)])
    } else {
        CallToolResult::success(vec![Content::text(text)])
    };
    let mut meta = MetaObject::new();
    meta.0.insert(META_KEY.into(), facts);
    result.meta = Some(meta);
    result
}

fn pending_result(status: &ActionStatus, tool: &str) -> CallToolResult {
    let (groups, quorum, until) = match &status.approval {
        Some(a) => (a.groups.join(", "), a.quorum, a.expires_at.to_rfc3339()),
        None => (String::new(), 0, String::new()),
    };
    gate_result(
        format!(
            "actiongate: {tool} has NOT run yet. It waits for approval (action {id}): {quorum} approval(s) from {groups}, until {until}. \
             Call {tool} again with identical arguments to continue; it runs at most once.",
            id = status.action_id
        ),
        serde_json::json!({"action_id": status.action_id, "state": "pending", "approval": status.approval}),
        true,
    )
}

fn refused_result(status: &ActionStatus, tool: &str) -> CallToolResult {
    let reason = status.reason.clone().unwrap_or_default();
    let verb = match status.state {
        State::Expired => "expired without approval",
        _ => "was denied",
    };
    gate_result(
        format!(
            "actiongate: {tool} {verb} and did not run (action {id}): {reason}",
            id = status.action_id
        ),
        serde_json::json!({"action_id": status.action_id, "state": status.state, "reason": reason}),
        true,
    )
}

pub(super) fn error_result(text: String, action_id: Option<&str>) -> CallToolResult {
    gate_result(
        format!("actiongate: {text}"),
        serde_json::json!({"action_id": action_id, "state": "error"}),
        true,
    )
}

/// The caller's request `_meta` as forwarded upstream: everything but the
/// protocol's own keys (progress token, per-request version and client
/// facts), which belong to the gateway's session with the caller.
fn passed_meta(meta: Option<&RequestMetaObject>) -> Option<RequestMetaObject> {
    let mut kept = meta?.clone();
    kept.0
         .0
        .retain(|k, _| k != "progressToken" && !k.starts_with("io.modelcontextprotocol/"));
    (!kept.0 .0.is_empty()).then_some(kept)
}

/// Where actiongate's own `_meta` keys live (`META_KEY`): only the gateway
/// speaks there.
const OWN_META_PREFIX: &str = "io.actiongate/";

/// The action context key of the request `_meta` the run forwards.
const REQUEST_META: &str = "request_meta";

/// The gateway's keys in an action's context: `mcp.` and the fact's name.
fn context_key(name: &str) -> String {
    format!("mcp.{name}")
}

/// `_meta` as the action records it: its canonical JSON (RFC 8785).
fn recorded_meta(meta: &RequestMetaObject) -> String {
    String::from_utf8(crate::evidence::canonical::digest_bytes(meta))
        .expect("canonical JSON is UTF-8")
}

/// The request `_meta` a run forwards: the one recorded in its action when
/// it was submitted (an identical retry that continues an approved action
/// may carry another, which no one approved).
fn forwarded_meta(action: &crate::action::Action) -> Option<RequestMetaObject> {
    let recorded = action.context.get(&context_key(REQUEST_META))?;
    serde_json::from_str(recorded).ok()
}

/// The upstream's result as the caller's: the content, structured content,
/// error flag and `_meta` stay as they are, but the protocol's own `_meta`
/// keys (the upstream's server identity on its hop) and any in actiongate's
/// namespace, in any ASCII case and after leading whitespace (an upstream's
/// word dressed as the gateway's, such as a decision it did not make) are
/// dropped, and the result type the newest revision requires is set (rmcp
/// clears it for callers on older revisions).
fn own_envelope(result: &mut CallToolResult) {
    if let Some(meta) = result.meta.as_mut() {
        meta.0.retain(|k, _| {
            let folded = k.trim_start().to_ascii_lowercase();
            !k.starts_with("io.modelcontextprotocol/") && !folded.starts_with(OWN_META_PREFIX)
        });
        if meta.0.is_empty() {
            result.meta = None;
        }
    }
    if result.result_type.is_none() {
        result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    }
}

impl Gateway {
    /// Answers one `tools/call`. Every refusal the model should read is a
    /// tool result with `isError`, never a protocol error.
    pub async fn call(
        &self,
        caller: &Caller,
        params: CallToolRequestParams,
        progress: Option<Progress>,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, CallError> {
        let name = params.name.to_string();
        let Some(entry) = self.entry(&name).await else {
            // A configured upstream that could not be listed is not the
            // model's mistake: say so in a result it reads.
            if let Some((upstream, _)) = super::catalog::split(&name) {
                if self.upstream(upstream).is_some() {
                    return Ok(error_result(
                        format!("{name} is not offered now: its upstream {upstream} could not be listed or does not have it; nothing was submitted or run"),
                        None,
                    ));
                }
            }
            return Err(CallError::UnknownTool(name));
        };
        let arguments = serde_json::Value::Object(params.arguments.clone().unwrap_or_default());
        let size = crate::evidence::canonical::digest_bytes(&arguments).len();
        if size > self.config.max_argument_bytes {
            return Ok(error_result(
                format!(
                    "the arguments are {size} bytes; this gateway accepts at most {} (nothing was submitted or run)",
                    self.config.max_argument_bytes
                ),
                None,
            ));
        }
        let digest = call_digest(&name, &arguments);
        let started = std::time::Instant::now();
        let meta = passed_meta(params.meta.as_ref());
        let (status, claimed) = self
            .attach(caller, &entry, &arguments, meta.as_ref(), &digest)
            .await?;
        tracing::debug!(action_id = %status.action_id, tool = %name, state = status.state.as_str(), decide_ms = started.elapsed().as_secs_f64() * 1e3, "tool call decided");
        let status = match status.state {
            State::Pending => {
                self.hold(caller, status, progress.as_ref(), &cancel)
                    .await?
            }
            _ => status,
        };
        if cancel.is_cancelled() {
            // Nobody would read the result: leave an approved action to the
            // caller's retry rather than run it for no one. One allowed at
            // once was claimed by its decision, so nothing can run it later:
            // its outcome says it did not run, and the log holds no action
            // left open with its grant spent. (A retry is a new action, as
            // for any call allowed at once.)
            if let Some(run) = claimed {
                tracing::info!(action_id = %status.action_id, agent = %caller.agent.id, tool = %name, "caller left before its allowed call ran; recorded as not run");
                let report = RunReport {
                    status: OutcomeStatus::Failed,
                    summary: format!("{name} did not run: the caller left before it ran"),
                    result: serde_json::Value::Null,
                };
                self.outcomes
                    .record(self.gate.clone(), caller.agent.clone(), run, report);
            }
            return Err(CallError::Abandoned);
        }
        Ok(match status.state {
            State::Allowed | State::Approved | State::Executed => {
                self.run(caller, &entry, &status, claimed, &arguments)
                    .await?
            }
            State::Pending => pending_result(&status, &name),
            State::Denied | State::Expired => refused_result(&status, &name),
        })
    }

    /// The action this call belongs to: the held action an identical call
    /// is attached to (while it is pending or approved, or recently refused),
    /// else a new one submitted through the gate, which comes back claimed
    /// for this call to run when it is allowed at once.
    async fn attach(
        &self,
        caller: &Caller,
        entry: &Entry,
        arguments: &serde_json::Value,
        meta: Option<&RequestMetaObject>,
        digest: &str,
    ) -> Result<(ActionStatus, Option<ClaimedRun>), CallError> {
        let agent = &caller.agent;
        let turn = {
            let mut attaching = self.calls.attaching.lock().expect("not poisoned");
            if attaching.len() > 10_000 {
                attaching.retain(|_, t| Arc::strong_count(t) > 1);
            }
            attaching
                .entry(format!("{}\n{digest}", agent.id))
                .or_default()
                .clone()
        };
        let mut held = Some(turn.lock.lock().await);
        if turn.decided_at_once.load(Ordering::Acquire) {
            held = None;
        }
        let store = self.gate.store();
        // The lookup's round trip and the evaluation overlap: the lookup is
        // sent first, the evaluation runs meanwhile. The evaluation writes
        // nothing, so a call that continues an attached action drops it.
        let (attached, evaluated) = tokio::join!(
            store.mcp_call_action(&agent.id, digest),
            self.gate.evaluate_new(
                agent,
                Some(caller.key_hash.clone()),
                self.submission(caller, entry, arguments, meta),
            )
        );
        if let Some(id) = attached.map_err(GateError::from)? {
            let status = self.gate.status(agent, &action_id(&id)?).await?;
            if self.reattaches(&status) {
                tracing::info!(action_id = %id, agent = %agent.id, tool = %entry.name(), state = status.state.as_str(), "identical call reattached");
                return Ok((status, None));
            }
        }
        let (status, claimed) = self.gate.record_to_run(agent, evaluated?).await?;
        let pending = status.state == State::Pending;
        if pending {
            store
                .attach_mcp_call(&agent.id, digest, &status.action_id)
                .await
                .map_err(GateError::from)?;
        }
        // INVARIANT: a held action is attached before the turn passes on,
        // so the next identical call in line finds it.
        turn.decided_at_once.store(!pending, Ordering::Release);
        drop(held);
        Ok((status, claimed))
    }

    /// Whether an identical call continues `status`'s action rather than
    /// asking anew.
    fn reattaches(&self, status: &ActionStatus) -> bool {
        let recent = |at: DateTime<Utc>| {
            Utc::now() - at < chrono::Duration::seconds(self.config.reattach_seconds as i64)
        };
        match status.state {
            State::Pending => true,
            // Unless its grant lapsed before anyone ran it.
            State::Approved => status
                .grant
                .as_deref()
                .is_some_and(|g| self.gate.grants().verify(g, Utc::now()).is_ok()),
            State::Denied | State::Expired => recent(status.updated_at),
            // Ran already: identical retries racing the run get its result.
            State::Executed => self
                .calls
                .runs
                .lock()
                .expect("not poisoned")
                .results
                .contains_key(&status.action_id),
            State::Allowed => false,
        }
    }

    fn submission(
        &self,
        caller: &Caller,
        entry: &Entry,
        arguments: &serde_json::Value,
        meta: Option<&RequestMetaObject>,
    ) -> Submission {
        let mut context = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                context.insert(context_key(k), v);
            }
        };
        put("tool", Some(entry.name()));
        put("tool_sha256", Some(entry.sha256.clone()));
        put("client_name", caller.client_name.clone());
        put("client_version", caller.client_version.clone());
        put("protocol_version", caller.protocol_version.clone());
        // What goes upstream beside the arguments: in the action, so policy,
        // approvers and the log see it, and the run forwards this, not a
        // retry's.
        put(REQUEST_META, meta.map(recorded_meta));
        if let Some(a) = &entry.definition.annotations {
            let hint = |b: Option<bool>| b.map(|b| b.to_string());
            put("read_only_hint", hint(a.read_only_hint));
            put("destructive_hint", hint(a.destructive_hint));
            put("idempotent_hint", hint(a.idempotent_hint));
            put("open_world_hint", hint(a.open_world_hint));
        }
        Submission {
            kind: entry.kind.to_string(),
            resource: entry.resource(),
            params: arguments.clone(),
            justification: None,
            context,
            on_behalf_of: None,
        }
    }

    /// Holds a pending action up to `hold_seconds`, with progress
    /// notifications, until it is decided.
    async fn hold(
        &self,
        caller: &Caller,
        status: ActionStatus,
        progress: Option<&Progress>,
        cancel: &CancellationToken,
    ) -> Result<ActionStatus, CallError> {
        let hold = Duration::from_secs(self.config.hold_seconds);
        let step = Duration::from_secs(self.config.progress_seconds.max(1));
        let start = tokio::time::Instant::now();
        let deadline = start + hold;
        let mut status = status;
        let id = action_id(&status.action_id)?;
        while !status.state.is_final() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let wait = (deadline - now).min(step);
            status = tokio::select! {
                s = self.gate.wait(&caller.agent, &id, wait) => s?,
                _ = cancel.cancelled() => {
                    tracing::info!(action_id = %status.action_id, agent = %caller.agent.id, "caller left while its call was held; an identical retry continues it");
                    return Err(CallError::Abandoned);
                }
            };
            if let (false, Some(progress)) = (status.state.is_final(), progress) {
                let elapsed = start.elapsed().as_secs_f64().round();
                progress(
                    elapsed,
                    hold.as_secs_f64(),
                    format!("waiting for approval of action {}", status.action_id),
                )
                .await;
            }
        }
        Ok(status)
    }

    /// Runs an allowed or approved action once; identical retries racing it
    /// get the same result. `claimed`: its grant, claimed with the decision.
    async fn run(
        &self,
        caller: &Caller,
        entry: &Entry,
        status: &ActionStatus,
        claimed: Option<ClaimedRun>,
        arguments: &serde_json::Value,
    ) -> Result<CallToolResult, CallError> {
        let id = status.action_id.clone();
        let (sender, waiting) = {
            let mut runs = self.calls.runs.lock().expect("not poisoned");
            match runs.results.get(&id) {
                Some(rx) => (None, Some(rx.clone())),
                None => {
                    let (tx, rx) = watch::channel(None);
                    runs.results.insert(id.clone(), rx);
                    (Some(tx), None)
                }
            }
        };
        if let Some(mut rx) = waiting {
            let result = rx
                .wait_for(Option::is_some)
                .await
                .map(|r| r.clone())
                .ok()
                .flatten();
            return Ok(match result {
                Some(r) => (*r).clone(),
                None => error_result(
                    "the run this call waited for was interrupted".into(),
                    Some(&id),
                ),
            });
        }
        let sender = sender.expect("one of the two");
        let result = self
            .claim_and_run(caller, entry, &id, claimed, arguments)
            .await;
        let shared = Arc::new(match &result {
            Ok(r) => r.clone(),
            Err(e) => error_result(e.to_string(), Some(&id)),
        });
        let _ = sender.send(Some(shared));
        self.calls
            .runs
            .lock()
            .expect("not poisoned")
            .ended(id, Instant::now());
        result
    }

    async fn claim_and_run(
        &self,
        caller: &Caller,
        entry: &Entry,
        id: &str,
        claimed: Option<ClaimedRun>,
        arguments: &serde_json::Value,
    ) -> Result<CallToolResult, CallError> {
        let claim = match claimed {
            Some(run) => Claim::Run(Box::new(run)),
            None => self.gate.claim_run(&caller.agent, &action_id(id)?).await?,
        };
        let run = match claim {
            Claim::Run(run) => run,
            Claim::Taken => {
                return Ok(gate_result(
                    format!("actiongate: action {id} already ran once for an identical call; it does not run twice. Its result went to that call."),
                    serde_json::json!({"action_id": id, "state": "executed"}),
                    false,
                ))
            }
            Claim::GrantExpired => {
                return Ok(error_result(
                    format!("the grant of action {id} expired before it ran; call again to ask anew"),
                    Some(id),
                ))
            }
            Claim::NotRunnable(state) => {
                return Ok(error_result(
                    format!("action {id} is {}; it cannot run", state.as_str()),
                    Some(id),
                ))
            }
        };
        let upstream = self
            .upstream(&entry.upstream)
            .expect("catalog entries name configured upstreams");
        let modified = run.action.params != *arguments;
        let mut forward = CallToolRequestParams::new(entry.tool.clone());
        forward.arguments = run.action.params.as_object().cloned();
        forward.meta = forwarded_meta(&run.action);
        let started = std::time::Instant::now();
        let outcome = upstream.call_tool(forward).await;
        let upstream_ms = started.elapsed().as_secs_f64() * 1e3;
        let (result, report) = match outcome {
            Ok(result) => {
                let bytes = crate::evidence::canonical::digest_bytes(&result);
                let sha256 = hex::encode(Sha256::digest(&bytes));
                let facts = serde_json::json!({"sha256": sha256, "size": bytes.len()});
                if bytes.len() > self.config.max_result_bytes {
                    let text = format!(
                        "the result of {} is {} bytes; this gateway passes at most {}",
                        entry.name(),
                        bytes.len(),
                        self.config.max_result_bytes
                    );
                    (
                        error_result(text.clone(), Some(id)),
                        RunReport {
                            status: OutcomeStatus::Failed,
                            summary: text,
                            result: facts,
                        },
                    )
                } else {
                    let failed = result.is_error == Some(true);
                    (
                        result,
                        RunReport {
                            status: if failed {
                                OutcomeStatus::Failed
                            } else {
                                OutcomeStatus::Succeeded
                            },
                            summary: format!(
                                "{} {} upstream",
                                entry.name(),
                                if failed { "returned an error" } else { "ran" }
                            ),
                            result: facts,
                        },
                    )
                }
            }
            Err(e) => (
                error_result(format!("{e}; the tool may not have run"), Some(id)),
                RunReport {
                    status: OutcomeStatus::Failed,
                    summary: e.to_string(),
                    result: serde_json::Value::Null,
                },
            ),
        };
        tracing::debug!(action_id = %id, upstream_ms, "tool call ran");
        // The modified arguments, for the caller, before the run moves on.
        let ran_with = modified.then(|| run.action.params.clone());
        // After the fact, off the response path (see `outcomes`).
        self.outcomes
            .record(self.gate.clone(), caller.agent.clone(), *run, report);
        let mut result = result;
        own_envelope(&mut result);
        if let Some(ran_with) = ran_with {
            // The agent learns its call ran with other arguments than it sent.
            result.content.insert(
                0,
                Content::text(format!(
                    "actiongate: an approver modified the arguments before this ran; it ran with {ran_with}"
                )),
            );
            let meta = result.meta.get_or_insert_with(MetaObject::new);
            meta.0.insert(
                META_KEY.into(),
                serde_json::json!({"action_id": id, "state": "executed", "modified_arguments": ran_with}),
            );
        }
        Ok(result)
    }
}

/// An id the gate handed out, parsed back: one that does not parse names
/// no action.
fn action_id(id: &str) -> Result<ActionId, GateError> {
    Ok(id.parse::<ActionId>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_runs_result_stays_for_retries_then_goes_as_later_runs_end() {
        let mut runs = Runs::default();
        for id in ["a", "b", "c"] {
            runs.results.insert(id.into(), watch::channel(None).1);
        }
        let t0 = Instant::now();
        runs.ended("a".into(), t0);
        runs.ended("b".into(), t0 + RESULT_KEPT / 2);
        assert_eq!(runs.results.len(), 3, "nothing is due yet");
        runs.ended("c".into(), t0 + RESULT_KEPT);
        assert!(!runs.results.contains_key("a"), "kept its time, then gone");
        assert!(runs.results.contains_key("b") && runs.results.contains_key("c"));
        assert_eq!(runs.ended.len(), 2);
    }

    #[test]
    fn identical_calls_share_a_digest_whatever_the_key_order() {
        let a = call_digest(
            "fs__write_file",
            &serde_json::json!({"path": "/a", "content": "x"}),
        );
        let b = call_digest(
            "fs__write_file",
            &serde_json::json!({"content": "x", "path": "/a"}),
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            call_digest(
                "fs__write_file",
                &serde_json::json!({"path": "/a", "content": "y"})
            )
        );
        assert_ne!(
            a,
            call_digest(
                "fs__edit_file",
                &serde_json::json!({"path": "/a", "content": "x"})
            )
        );
    }

    #[test]
    fn request_meta_passes_through_but_the_protocols_own_keys() {
        let meta: RequestMetaObject = serde_json::from_value(serde_json::json!({
            "progressToken": 7,
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "x", "version": "1"},
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
            "com.example/ticket": "T-1"
        }))
        .unwrap();
        let kept = serde_json::to_value(passed_meta(Some(&meta))).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
                "com.example/ticket": "T-1"
            })
        );
        let only_protocol: RequestMetaObject =
            serde_json::from_value(serde_json::json!({"progressToken": "p"})).unwrap();
        assert!(passed_meta(Some(&only_protocol)).is_none());
        assert!(passed_meta(None).is_none());
    }

    #[test]
    fn refusals_are_tool_errors_that_name_the_action() {
        let status = ActionStatus {
            action_id: "0190-abc".into(),
            state: State::Denied,
            kind: "mcp.fs.write_file".into(),
            resource: "mcp://fs/write_file".into(),
            risk: crate::action::Risk::High,
            reasons: vec![],
            reason: Some("denied by sam@example.com: no".into()),
            approval: None,
            grant: None,
            digest: "d".into(),
            updated_at: Utc::now(),
        };
        let r = refused_result(&status, "fs__write_file");
        assert_eq!(r.is_error, Some(true));
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("0190-abc"));
        assert_eq!(v["_meta"][META_KEY]["state"], "denied");
    }
}
