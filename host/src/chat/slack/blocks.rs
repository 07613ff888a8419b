//! Block Kit for approvals: the card, the review modals, and reading a modal
//! submission back. Pure functions of a `Notification`; they never decide
//! anything and escape every agent-supplied string (no mentions, no links).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::action::Risk;
use crate::approvals::Decision;
use crate::notify::{Notification, NotificationKind};

/// `action_id`s of the card's buttons.
pub const APPROVE: &str = "actiongate_approve";
pub const DENY: &str = "actiongate_deny";
pub const MODIFY: &str = "actiongate_modify";
/// A link button to the inbox, in place of Approve, for step-up actions.
pub const STEP_UP: &str = "actiongate_step_up";
/// `callback_id` of every review modal.
pub const REVIEW_CALLBACK: &str = "actiongate_review";
/// `block_id` of the reason input; params are `param:<name>`.
pub const REASON_BLOCK: &str = "reason";
pub const PARAM_BLOCK_PREFIX: &str = "param:";
const INPUT_ACTION: &str = "value";

/// Slack's documented limits (Block Kit reference).
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const CONTEXT_MAX: usize = 2000;
const INPUT_MAX: usize = 3000;
const FALLBACK_MAX: usize = 3000;

/// What a button carries: the action and the digest the card showed, so a
/// click on a stale card (the action was modified since) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonValue {
    pub action_id: String,
    pub digest: String,
}

impl ButtonValue {
    pub fn encode(&self) -> String {
        format!("{}|{}", self.action_id, self.digest)
    }
    pub fn decode(value: &str) -> Option<ButtonValue> {
        let (action_id, digest) = value.split_once('|')?;
        (!action_id.is_empty() && !digest.is_empty()).then(|| ButtonValue {
            action_id: action_id.into(),
            digest: digest.into(),
        })
    }
}

/// Kept in a modal's `private_metadata` (Slack returns it untouched, signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalMeta {
    pub action_id: String,
    pub digest: String,
    #[serde(with = "decision_text")]
    pub decision: Decision,
    /// Where the card was, for an ephemeral reply after the modal closes.
    pub channel: Option<String>,
}

/// `Decision` as its name (the approvals module keeps it serialize-only).
mod decision_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::approvals::Decision;

    pub fn serialize<S: Serializer>(decision: &Decision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(decision.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decision, D::Error> {
        match String::deserialize(d)?.as_str() {
            "approve" => Ok(Decision::Approve),
            "deny" => Ok(Decision::Deny),
            "modify" => Ok(Decision::Modify),
            other => Err(serde::de::Error::custom(format!(
                "unknown decision {other:?}"
            ))),
        }
    }
}

/// Escapes text for mrkdwn: `&`, `<`, `>` (so `<!channel>` and links from
/// an agent are shown, not acted on).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": true})
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// A Slack date token: shown in each reader's time zone, with a fallback.
fn date(at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        at.timestamp(),
        at.format("%Y-%m-%d %H:%M UTC")
    )
}

fn risk_label(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "🟢 low",
        Risk::Medium => "🟡 medium",
        Risk::High => "🟠 high",
        Risk::Critical => "🔴 critical",
    }
}

fn code_block(text: &str, max: usize) -> String {
    // A literal ``` in agent text would end the block early.
    let body = escape(text).replace("```", "ʼʼʼ");
    format!("```{}```", truncate(&body, max.saturating_sub(6)))
}

fn is_final(kind: NotificationKind) -> bool {
    matches!(
        kind,
        NotificationKind::Approved | NotificationKind::Denied | NotificationKind::Expired
    )
}

/// The approval state in one line: who approved, what remains.
fn tally_text(n: &Notification) -> String {
    let a = &n.approval;
    let have = a.approvals.len();
    let need = a.quorum.max(1) as usize;
    let who = if a.approvals.is_empty() {
        "none yet".to_string()
    } else {
        a.approvals
            .iter()
            .map(|e| format!("{} ({})", escape(&e.name), escape(&e.approver)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!("*Approvals:* {have} of {need}: {who}");
    if !is_final(n.kind) && have < need {
        let mut groups = a.groups.clone();
        if n.kind == NotificationKind::Escalated {
            groups.extend(a.escalate_to.iter().cloned());
        }
        text.push_str(&format!(
            "\n*Remaining:* {} more from {}",
            need - have,
            escape(&groups.join(", "))
        ));
    }
    text
}

fn outcome_text(n: &Notification) -> Option<String> {
    let review = n.review.as_ref();
    let by =
        |r: &crate::notify::ReviewEntry| format!("{} ({})", escape(&r.name), escape(&r.approver));
    let reason = |r: &crate::notify::ReviewEntry| {
        r.reason
            .as_deref()
            .map(|t| format!(": {}", escape(&truncate(t, 500))))
            .unwrap_or_default()
    };
    match n.kind {
        NotificationKind::Approved => {
            Some("✅ *Approved.* A grant was issued to the agent.".into())
        }
        NotificationKind::Denied => Some(match review {
            Some(r) => format!("⛔ *Denied* by {}{}", by(r), reason(r)),
            None => "⛔ *Denied.*".into(),
        }),
        NotificationKind::Expired => Some(format!(
            "⌛ *Expired* at {} with no decision; the action failed closed.",
            date(n.approval.expires_at)
        )),
        NotificationKind::Reviewed => review.map(|r| {
            let verb = match r.decision.as_str() {
                "approve" => "approved",
                "deny" => "denied",
                "modify" => "modified the action (earlier approvals no longer count)",
                other => other,
            };
            format!("{} {verb}{}", by(r), reason(r))
        }),
        NotificationKind::Escalated => Some(format!(
            "📣 *Escalated* to {}.",
            escape(&n.approval.escalate_to.join(", "))
        )),
        _ => None,
    }
}

/// The fallback text (notifications, screen readers) for a card.
pub fn card_text(n: &Notification) -> String {
    let s = &n.action;
    let state = match n.kind {
        NotificationKind::Approved => "Approved",
        NotificationKind::Denied => "Denied",
        NotificationKind::Expired => "Expired",
        _ => "Approval needed",
    };
    truncate(
        &format!(
            "{state}: {} on {} by {} ({} risk)",
            escape(&s.kind),
            escape(&s.resource),
            escape(&s.agent_id),
            s.risk.as_str()
        ),
        FALLBACK_MAX,
    )
}

/// The card for `n`: the approval summary (its params already redacted by
/// the one rule set), the tally, and, while pending, the review buttons.
/// Final cards have no buttons.
pub fn card(n: &Notification) -> Value {
    let s = &n.action;
    let title = match n.kind {
        NotificationKind::Approved => format!("✅ Approved: {}", s.kind),
        NotificationKind::Denied => format!("⛔ Denied: {}", s.kind),
        NotificationKind::Expired => format!("⌛ Expired: {}", s.kind),
        _ => format!("✋ Approval needed: {}", s.kind),
    };
    let mut fields = vec![
        format!("*Agent*\n`{}`", escape(&s.agent_id)),
        format!("*Owner*\n{}", escape(&s.owner)),
        format!("*Kind*\n`{}`", escape(&s.kind)),
        format!("*Resource*\n`{}`", escape(&s.resource)),
        format!("*Risk*\n{}", risk_label(s.risk)),
        format!("*Expires*\n{}", date(n.approval.expires_at)),
    ];
    if let Some(behalf) = &s.on_behalf_of {
        fields.push(format!("*On behalf of*\n{}", escape(behalf)));
    }
    fields.push(match &s.plugin {
        Some(p) => format!("*Plugin*\n`{}` {}", escape(&p.name), escape(&p.version)),
        None => "*Plugin*\nnone (failed closed)".into(),
    });
    if !n.approval.escalate_to.is_empty() {
        fields.push(format!(
            "*Escalates to*\n{}{}",
            escape(&n.approval.escalate_to.join(", ")),
            if n.approval.escalated {
                " (escalated)"
            } else {
                ""
            }
        ));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": plain(&truncate(&title, HEADER_MAX))}),
        json!({"type": "section", "fields": fields.iter().map(|f| mrkdwn(&truncate(f, FIELD_MAX))).collect::<Vec<_>>()}),
    ];
    if !s.reasons.is_empty() {
        let reasons = s
            .reasons
            .iter()
            .map(|r| format!("• {}", escape(r)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({"type": "section", "text": mrkdwn(&truncate(&format!("*Why it was held*\n{reasons}"), SECTION_MAX))}));
    }
    if let Some(justification) = &s.justification {
        blocks.push(json!({"type": "section", "text": mrkdwn(&truncate(&format!("*Justification*\n>{}", escape(justification).replace('\n', "\n>")), SECTION_MAX))}));
    }
    if !s.context.is_empty() {
        let context = s
            .context
            .iter()
            .map(|(k, v)| format!("• *{}*: {}", escape(k), escape(v)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({"type": "section", "text": mrkdwn(&truncate(&format!("*Context*\n{context}"), SECTION_MAX))}));
    }
    let params = serde_json::to_string_pretty(&s.params).expect("JSON values serialize");
    blocks.push(json!({"type": "section", "text": mrkdwn(&format!("*Params*\n{}", code_block(&params, SECTION_MAX - 20)))}));
    if !n.approval.reviews.is_empty() {
        let reviews = n
            .approval
            .reviews
            .iter()
            .map(|r| {
                format!(
                    "• {} ({}) {} {}{}",
                    escape(&r.name),
                    escape(&r.approver),
                    r.decision,
                    date(r.at),
                    r.reason
                        .as_deref()
                        .map(|t| format!(": {}", escape(&truncate(t, 300))))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({"type": "section", "text": mrkdwn(&truncate(&format!("*Reviews so far*\n{reviews}"), SECTION_MAX))}));
    }
    blocks.push(json!({"type": "section", "text": mrkdwn(&truncate(&tally_text(n), SECTION_MAX))}));
    if let Some(outcome) = outcome_text(n) {
        blocks.push(json!({"type": "section", "text": mrkdwn(&truncate(&outcome, SECTION_MAX))}));
    }
    if !is_final(n.kind) {
        blocks.push(buttons(n));
    }
    // A link, not a button: it opens the inbox and sends Slack no click.
    let inbox = n
        .inbox_url
        .as_deref()
        .map(|url| format!(" · <{}|Open in the inbox>", escape(url)))
        .unwrap_or_default();
    blocks.push(
        json!({"type": "context", "elements": [mrkdwn(&truncate(&format!(
        "action `{}` · digest `{}` · groups {} · quorum {} · plugin sha256 `{}`{inbox}",
        escape(&s.action_id),
        escape(&s.digest.chars().take(12).collect::<String>()),
        escape(&n.approval.groups.join(", ")),
        n.approval.quorum,
        s.plugin.as_ref().map_or("none", |p| p.sha256.as_str())
    ), CONTEXT_MAX))]}),
    );
    Value::Array(blocks)
}

fn buttons(n: &Notification) -> Value {
    let value = ButtonValue {
        action_id: n.action.action_id.clone(),
        digest: n.action.digest.clone(),
    }
    .encode();
    let mut approve = json!({
        "type": "button", "action_id": APPROVE, "style": "primary",
        "text": plain("Approve"), "value": value,
    });
    if n.action.risk >= Risk::High {
        approve["confirm"] = json!({
            "title": plain(&format!("Approve a {} risk action?", n.action.risk.as_str())),
            "text": mrkdwn(&truncate(&format!(
                "`{}` on `{}`. You will be asked for a reason.",
                escape(&n.action.kind),
                escape(&n.action.resource)
            ), 300)),
            "confirm": plain("Continue"),
            "deny": plain("Cancel"),
            "style": "primary",
        });
    }
    if let Some(link) = &n.approval.step_up {
        // Approving needs the approver's passkey, which chat cannot ask
        // for: the button opens the inbox page instead.
        approve = json!({
            "type": "button", "action_id": STEP_UP, "style": "primary",
            "text": plain("Approve with passkey"), "url": link,
        });
    }
    json!({
        "type": "actions",
        "block_id": "actiongate_review",
        "elements": [
            approve,
            {"type": "button", "action_id": DENY, "style": "danger", "text": plain("Deny"), "value": value},
            {"type": "button", "action_id": MODIFY, "text": plain("Modify"), "value": value},
        ],
    })
}

/// The thread reply for a reminder.
pub fn reminder_text(n: &Notification) -> String {
    let need = (n.approval.quorum.max(1) as usize).saturating_sub(n.approval.approvals.len());
    format!(
        "⏰ Reminder: `{}` still needs {need} approval(s) from {}; it expires {} and then fails closed.",
        escape(&n.action.kind),
        escape(&n.approval.groups.join(", ")),
        date(n.approval.expires_at)
    )
}

/// The visible (broadcast) reply for an escalation.
pub fn escalation_text(n: &Notification) -> String {
    format!(
        "📣 Escalated: `{}` on `{}` had no decision in time; {} may now review it (expires {}).",
        escape(&n.action.kind),
        escape(&n.action.resource),
        escape(&n.approval.escalate_to.join(", ")),
        date(n.approval.expires_at)
    )
}

/// A param's current value as the modal shows it: strings as they are,
/// anything else as compact JSON.
fn param_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The modal for `decision`: a reason, and for a modify one field per
/// modifiable param, prefilled. `params` is the action's current params.
pub fn review_modal(
    n: &Notification,
    meta: &ModalMeta,
    modifiable: &[String],
    redact_keys: &[String],
) -> Value {
    let (title, submit, reason_label) = match meta.decision {
        Decision::Approve => ("Approve action", "Approve", "Why do you approve?"),
        Decision::Deny => ("Deny action", "Deny", "Why do you deny it?"),
        Decision::Modify => ("Modify action", "Modify & approve", "Why this change?"),
    };
    let mut blocks = vec![json!({"type": "section", "text": mrkdwn(&truncate(&format!(
        "`{}` on `{}` by `{}` ({} risk)",
        escape(&n.action.kind),
        escape(&n.action.resource),
        escape(&n.action.agent_id),
        n.action.risk.as_str()
    ), SECTION_MAX))})];
    if meta.decision == Decision::Modify {
        blocks.push(json!({"type": "context", "elements": [mrkdwn(
            "Change the params below. Your modification counts as your approval of the new version; approvals of the old version no longer count, and the new version is evaluated again."
        )]}));
        let current = n.action.params.as_object();
        for name in modifiable {
            let mut element = json!({
                "type": "plain_text_input",
                "action_id": INPUT_ACTION,
                "max_length": INPUT_MAX,
            });
            let value = current.and_then(|p| p.get(name));
            let redacted = redact_keys.iter().any(|r| r.eq_ignore_ascii_case(name));
            if let (Some(value), false) = (value, redacted) {
                let text = param_text(value);
                if text.chars().count() <= INPUT_MAX {
                    element["initial_value"] = Value::String(text);
                }
            }
            let hint = match value {
                Some(Value::String(_)) => "text",
                Some(Value::Number(_)) => "a number",
                Some(Value::Bool(_)) => "true or false",
                Some(Value::Array(_)) => "a JSON array",
                Some(Value::Object(_)) => "a JSON object",
                _ => "JSON, or text",
            };
            blocks.push(json!({
                "type": "input",
                "block_id": format!("{PARAM_BLOCK_PREFIX}{name}"),
                "optional": redacted,
                "label": plain(&truncate(name, 2000)),
                "hint": plain(&format!("Enter {hint}.{}", if redacted { " Leave empty to keep the current (redacted) value." } else { "" })),
                "element": element,
            }));
        }
    }
    blocks.push(json!({
        "type": "input",
        "block_id": REASON_BLOCK,
        "label": plain(reason_label),
        "element": {"type": "plain_text_input", "action_id": INPUT_ACTION, "multiline": true, "max_length": 1000},
    }));
    json!({
        "type": "modal",
        "callback_id": REVIEW_CALLBACK,
        "title": plain(title),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "private_metadata": serde_json::to_string(meta).expect("metadata serializes"),
        "blocks": blocks,
    })
}

/// What a submitted review modal asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ModalInput {
    pub reason: String,
    /// For a modify: the changed params only (a merge patch).
    pub changes: Option<Value>,
}

/// Field errors, by `block_id`, as `response_action: errors` wants them.
pub type FieldErrors = BTreeMap<String, String>;

fn input_value<'a>(view: &'a Value, block: &str) -> Option<&'a str> {
    view["state"]["values"][block][INPUT_ACTION]["value"].as_str()
}

/// Reads and checks a submitted modal against the action's current params.
/// Every bad field is reported at once.
pub fn read_submission(
    view: &Value,
    meta: &ModalMeta,
    current: &Value,
    modifiable: &[String],
    redact_keys: &[String],
) -> Result<ModalInput, FieldErrors> {
    let mut errors = FieldErrors::new();
    let reason = input_value(view, REASON_BLOCK)
        .unwrap_or("")
        .trim()
        .to_string();
    if reason.is_empty() {
        errors.insert(REASON_BLOCK.into(), "Give a reason.".into());
    }
    let mut changes = serde_json::Map::new();
    if meta.decision == Decision::Modify {
        let current = current.as_object();
        for name in modifiable {
            let block = format!("{PARAM_BLOCK_PREFIX}{name}");
            let old = current.and_then(|p| p.get(name));
            let text = input_value(view, &block).unwrap_or("");
            if text.trim().is_empty() {
                // A redacted field is shown empty and optional: empty keeps its
                // value. Params are never removed from here.
                let redacted = redact_keys.iter().any(|r| r.eq_ignore_ascii_case(name));
                if !redacted && old.is_some() {
                    errors.insert(block, "Enter a value.".into());
                }
                continue;
            }
            let parsed = match old {
                Some(Value::String(_)) => Ok(Value::String(text.to_string())),
                Some(Value::Number(_)) => {
                    json_input(name, text, Value::is_number, "Enter a number.")
                }
                Some(Value::Bool(_)) => match text.trim() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    _ => Err("Enter true or false.".to_string()),
                },
                Some(Value::Array(_)) => json_input(
                    name,
                    text,
                    Value::is_array,
                    "Enter a JSON array, e.g. [\"a\", \"b\"].",
                ),
                Some(Value::Object(_)) => {
                    json_input(name, text, Value::is_object, "Enter a JSON object.")
                }
                Some(Value::Null) | None => match crate::ijson::value(text.trim()) {
                    Ok(value) => Ok(value),
                    Err(e) if e.is_syntax() => Ok(Value::String(text.to_string())),
                    Err(e) => Err(e.within(name).to_string()),
                },
            };
            match parsed {
                Ok(value) if Some(&value) == old => {}
                Ok(value) => {
                    changes.insert(name.clone(), value);
                }
                Err(message) => {
                    errors.insert(block, message);
                }
            }
        }
        if errors.is_empty() && changes.is_empty() {
            let block = modifiable
                .first()
                .map(|m| format!("{PARAM_BLOCK_PREFIX}{m}"))
                .unwrap_or_else(|| REASON_BLOCK.into());
            errors.insert(
                block,
                "Change at least one parameter (or use Approve).".into(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ModalInput {
        reason,
        changes: (meta.decision == Decision::Modify).then_some(Value::Object(changes)),
    })
}

/// One modify input read as JSON of the kind `is_kind` accepts. JSON that
/// parsers would read differently (I-JSON) is refused with what to enter
/// instead; anything else that is not of the kind gets `hint`.
fn json_input(
    name: &str,
    text: &str,
    is_kind: fn(&Value) -> bool,
    hint: &str,
) -> Result<Value, String> {
    match crate::ijson::value(text.trim()) {
        Ok(value) if is_kind(&value) => Ok(value),
        Err(e) if !e.is_syntax() => Err(e.within(name).to_string()),
        _ => Err(hint.to_string()),
    }
}

/// A modal's `response_action: errors` body.
pub fn errors_response(errors: &FieldErrors) -> Value {
    json!({"response_action": "errors", "errors": errors})
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::notify::{ActionSummary, ApprovalEntry, ApprovalState, ReviewEntry};

    fn notification(kind: NotificationKind, risk: Risk) -> Notification {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        Notification {
            id: "n1".into(),
            kind,
            action: ActionSummary {
                action_id: "a1".into(),
                digest: "d".repeat(64),
                kind: "db.export".into(),
                resource: "postgres://prod <!channel>".into(),
                agent_id: "etl".into(),
                owner: "sam@example.com".into(),
                on_behalf_of: None,
                risk,
                reasons: vec!["rows over 10000 <@U123>".into()],
                justification: Some("report ```x```".into()),
                params: crate::approvals::Redaction::default().redact(
                    &json!({"rows": 50000, "destination": "s3://x", "auth": {"Password": "hunter2"}}),
                    "",
                    &mut vec![],
                ),
                context: Default::default(),
                plugin: None,
                redacted: vec![],
            },
            approval: ApprovalState {
                groups: vec!["data-owners".into()],
                quorum: 2,
                approvals: vec![ApprovalEntry {
                    approver: "dana@example.com".into(),
                    name: "Dana".into(),
                    at,
                }],
                expires_at: at + chrono::Duration::hours(1),
                escalate_to: vec!["security".into()],
                escalated: false,
                modifiable_params: vec![],
                reviews: vec![],
                step_up: None,
            },
            review: Some(ReviewEntry {
                approver: "dana@example.com".into(),
                name: "Dana".into(),
                decision: "approve".into(),
                reason: None,
                at,
            }),
            occurred_at: at,
            inbox_url: None,
        }
    }

    #[test]
    fn a_step_up_card_links_to_the_inbox_instead_of_approving() {
        let mut n = notification(NotificationKind::Pending, Risk::Critical);
        n.approval.step_up = Some("https://inbox.example/inbox/actions/a1".into());
        let blocks = card(&n);
        let actions = blocks
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        let first = &actions["elements"][0];
        assert_eq!(first["action_id"], STEP_UP);
        assert_eq!(first["url"], "https://inbox.example/inbox/actions/a1");
        assert!(first.get("value").is_none(), "the link carries no review");
        assert!(!blocks.to_string().contains(APPROVE));
        assert_eq!(actions["elements"][1]["action_id"], DENY);
    }

    #[test]
    fn cards_link_to_the_inbox_page_when_there_is_one() {
        let mut n = notification(NotificationKind::Pending, Risk::High);
        assert!(!card(&n).to_string().contains("Open in the inbox"));
        n.inbox_url = Some("https://ag.example.com/inbox/actions/a1".into());
        let text = card(&n).to_string();
        assert!(
            text.contains("<https://ag.example.com/inbox/actions/a1|Open in the inbox>"),
            "{text}"
        );
    }

    #[test]
    fn pending_card_has_buttons_confirm_and_escaped_text() {
        let n = notification(NotificationKind::Reviewed, Risk::Critical);
        let blocks = card(&n);
        let text = blocks.to_string();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains("<@U123>"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"));
        assert!(text.contains("1 of 2"));
        assert!(text.contains("1 more from data-owners"));
        let actions = blocks
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        let approve = &actions["elements"][0];
        assert_eq!(approve["action_id"], APPROVE);
        assert_eq!(approve["style"], "primary");
        assert!(approve["confirm"].is_object());
        assert_eq!(
            ButtonValue::decode(approve["value"].as_str().unwrap()).unwrap(),
            ButtonValue {
                action_id: "a1".into(),
                digest: "d".repeat(64)
            }
        );
        // Low risk: no confirm dialog.
        let low = card(&notification(NotificationKind::Pending, Risk::Low));
        let actions = low
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        assert!(actions["elements"][0].get("confirm").is_none());
    }

    #[test]
    fn final_cards_have_no_buttons() {
        for kind in [
            NotificationKind::Approved,
            NotificationKind::Denied,
            NotificationKind::Expired,
        ] {
            let blocks = card(&notification(kind, Risk::High));
            assert!(
                blocks
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|b| b["type"] != "actions"),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn long_params_are_cut_to_slack_limits() {
        let mut n = notification(NotificationKind::Pending, Risk::Low);
        n.action.params = json!({"big": "x".repeat(10_000)});
        for block in card(&n).as_array().unwrap() {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(text.chars().count() <= SECTION_MAX);
            }
        }
    }

    #[test]
    fn modify_modal_round_trip_and_field_errors() {
        let n = notification(NotificationKind::Pending, Risk::High);
        let meta = ModalMeta {
            action_id: "a1".into(),
            digest: "d".into(),
            decision: Decision::Modify,
            channel: Some("C1".into()),
        };
        let modifiable = vec!["rows".to_string(), "destination".to_string()];
        let modal = review_modal(&n, &meta, &modifiable, &[]);
        assert_eq!(modal["callback_id"], REVIEW_CALLBACK);
        let back: ModalMeta =
            serde_json::from_str(modal["private_metadata"].as_str().unwrap()).unwrap();
        assert_eq!(back, meta);
        let rows_block = modal["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["block_id"] == "param:rows")
            .unwrap();
        assert_eq!(rows_block["element"]["initial_value"], "50000");

        let view = |rows: &str, dest: &str, reason: &str| {
            json!({"state": {"values": {
                "param:rows": {"value": {"type": "plain_text_input", "value": rows}},
                "param:destination": {"value": {"type": "plain_text_input", "value": dest}},
                "reason": {"value": {"type": "plain_text_input", "value": reason}},
            }}})
        };
        let ok = read_submission(
            &view("1000", "s3://x", "fewer rows"),
            &meta,
            &n.action.params,
            &modifiable,
            &[],
        )
        .unwrap();
        assert_eq!(ok.changes, Some(json!({"rows": 1000})));
        assert_eq!(ok.reason, "fewer rows");

        let errors = read_submission(
            &view("lots", "s3://x", "  "),
            &meta,
            &n.action.params,
            &modifiable,
            &[],
        )
        .unwrap_err();
        assert_eq!(errors["param:rows"], "Enter a number.");
        assert_eq!(errors["reason"], "Give a reason.");
        let unchanged = read_submission(
            &view("50000", "s3://x", "why"),
            &meta,
            &n.action.params,
            &modifiable,
            &[],
        )
        .unwrap_err();
        assert!(unchanged.contains_key("param:rows"));
        assert_eq!(errors_response(&errors)["response_action"], "errors");

        // A number parsers read differently is refused on its field, with
        // what to send instead; nothing reaches the review.
        for (rows, want) in [
            (
                "9007199254740993",
                "send it as a string (\"9007199254740993\")",
            ),
            ("1e400", "beyond ±9007199254740991"),
            ("0.30000000000000001", "send 0.3"),
        ] {
            let errors = read_submission(
                &view(rows, "s3://x", "fewer"),
                &meta,
                &n.action.params,
                &modifiable,
                &[],
            )
            .unwrap_err();
            let message = &errors["param:rows"];
            assert!(message.starts_with("rows: the number"), "{message}");
            assert!(message.contains(want), "{message}");
        }
    }

    #[test]
    fn deny_modal_needs_a_reason() {
        let n = notification(NotificationKind::Pending, Risk::Low);
        let meta = ModalMeta {
            action_id: "a1".into(),
            digest: "d".into(),
            decision: Decision::Deny,
            channel: None,
        };
        let view = json!({"state": {"values": {"reason": {"value": {"value": "no"}}}}});
        let input = read_submission(&view, &meta, &n.action.params, &[], &[]).unwrap();
        assert_eq!(input.reason, "no");
        assert_eq!(input.changes, None);
        let empty = json!({"state": {"values": {}}});
        assert!(read_submission(&empty, &meta, &n.action.params, &[], &[]).is_err());
    }
}
