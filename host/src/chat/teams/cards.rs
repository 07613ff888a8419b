//! Adaptive Cards (schema 1.5) for a held action: the facts an approver
//! judges by, the approvals so far and what remains, and `Action.Execute`
//! buttons while it is pending. Pure rendering; never sends or decides.

use serde_json::{json, Value};

use crate::notify::{Notification, NotificationKind};

/// The attachment content type of an Adaptive Card.
pub const CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// `Action.Execute` verbs on our cards.
pub const VERB_APPROVE: &str = "approve";
pub const VERB_DENY: &str = "deny";
pub const VERB_MODIFY: &str = "modify";
/// Sent by Teams for a card's `refresh`; also accepted from a button.
pub const VERB_REFRESH: &str = "refresh";

/// The reason input's id; its value arrives in `action.data.reason`.
pub const INPUT_REASON: &str = "reason";
/// Prefix of a modifiable parameter's input id: `param.<name>`.
pub const INPUT_PARAM_PREFIX: &str = "param.";

/// Where the action stands, as the card shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl CardState {
    /// The state a notification of `kind` announces.
    pub fn of_kind(kind: NotificationKind) -> CardState {
        match kind {
            NotificationKind::Approved => CardState::Approved,
            NotificationKind::Denied => CardState::Denied,
            NotificationKind::Expired => CardState::Expired,
            NotificationKind::Pending
            | NotificationKind::Reviewed
            | NotificationKind::Reminder
            | NotificationKind::Escalated => CardState::Pending,
        }
    }
}

/// A line for the person who clicked: what happened, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Done(String),
    Refused(String),
}

/// Everything one card shows.
#[derive(Debug, Clone, Copy)]
pub struct CardView<'a> {
    pub notification: &'a Notification,
    pub state: CardState,
    /// Parameters reviewers may change (inputs on the pending card).
    pub modifiable: &'a [String],
    pub notice: Option<&'a Notice>,
}

fn text(value: impl Into<String>) -> Value {
    json!({"type": "TextBlock", "text": value.into(), "wrap": true})
}

/// Adaptive Cards render a subset of Markdown in TextBlocks; action data
/// from agents must not turn into links or emphasis.
fn plain(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '*' | '_' | '[' | ']' | '`' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn title(view: &CardView<'_>) -> String {
    let kind = plain(&view.notification.action.kind);
    match view.state {
        CardState::Pending => match view.notification.kind {
            NotificationKind::Escalated => format!("Escalated: approval needed for {kind}"),
            NotificationKind::Reminder => format!("Reminder: approval needed for {kind}"),
            _ => format!("Approval needed: {kind}"),
        },
        CardState::Approved => format!("Approved: {kind}"),
        CardState::Denied => format!("Denied: {kind}"),
        CardState::Expired => format!("Expired: {kind}"),
    }
}

/// The card for `view`.
pub fn card(view: &CardView<'_>) -> Value {
    let n = view.notification;
    let a = &n.action;
    let approval = &n.approval;
    let (style, color) = match view.state {
        CardState::Pending => ("warning", "Warning"),
        CardState::Approved => ("good", "Good"),
        CardState::Denied | CardState::Expired => ("attention", "Attention"),
    };

    let mut facts = vec![
        json!({"title": "Resource", "value": plain(&a.resource)}),
        json!({"title": "Agent", "value": plain(&a.agent_id)}),
        json!({"title": "Owner", "value": plain(&a.owner)}),
    ];
    if let Some(on_behalf_of) = &a.on_behalf_of {
        facts.push(json!({"title": "On behalf of", "value": plain(on_behalf_of)}));
    }
    facts.push(json!({"title": "Risk", "value": a.risk.as_str()}));
    if !a.reasons.is_empty() {
        facts.push(json!({"title": "Why", "value": plain(&a.reasons.join("; "))}));
    }
    if let Some(justification) = &a.justification {
        facts.push(json!({"title": "Justification", "value": plain(justification)}));
    }
    for (key, value) in &a.context {
        facts.push(json!({"title": format!("Context: {}", plain(key)), "value": plain(value)}));
    }
    match &a.plugin {
        Some(p) => {
            facts.push(
                json!({"title": "Plugin", "value": format!("{} {}", plain(&p.name), plain(&p.version))}),
            );
            facts.push(json!({"title": "Plugin sha256", "value": p.sha256}));
        }
        None => facts.push(json!({"title": "Plugin", "value": "none (failed closed)"})),
    }
    facts.push(json!({"title": "Groups", "value": plain(&approval.groups.join(", "))}));
    facts.push(json!({"title": "Quorum", "value": approval.quorum.max(1).to_string()}));
    if !approval.escalate_to.is_empty() {
        let escalated = if approval.escalated {
            " (escalated)"
        } else {
            ""
        };
        facts.push(
            json!({"title": "Escalates to", "value": format!("{}{escalated}", plain(&approval.escalate_to.join(", ")))}),
        );
    }
    facts.push(json!({"title": "Expires", "value": approval.expires_at.to_rfc3339()}));
    facts.push(json!({"title": "Digest", "value": a.digest.chars().take(16).collect::<String>()}));

    let mut body = vec![
        json!({
            "type": "Container",
            "style": style,
            "bleed": true,
            "items": [
                {"type": "TextBlock", "text": title(view), "weight": "Bolder", "size": "Medium", "wrap": true, "color": color},
                {"type": "TextBlock", "text": format!("Action {}", plain(&a.action_id)), "isSubtle": true, "spacing": "None", "wrap": true},
            ],
        }),
        json!({"type": "FactSet", "facts": facts}),
        json!({"type": "TextBlock", "text": "Parameters", "weight": "Bolder", "wrap": true}),
        json!({
            "type": "TextBlock",
            "text": plain(&serde_json::to_string_pretty(&a.params).unwrap_or_default()),
            "fontType": "Monospace",
            "wrap": true,
        }),
    ];

    let quorum = approval.quorum.max(1);
    let given = u32::try_from(approval.approvals.len()).unwrap_or(u32::MAX);
    let mut tally = format!("Approvals: {given} of {quorum}");
    if !approval.approvals.is_empty() {
        let names: Vec<String> = approval
            .approvals
            .iter()
            .map(|e| format!("{} ({})", plain(&e.name), plain(&e.approver)))
            .collect();
        tally.push_str(&format!(": {}", names.join(", ")));
    }
    body.push(text(tally));
    if !approval.reviews.is_empty() {
        body.push(json!({"type": "TextBlock", "text": "Reviews so far", "weight": "Bolder", "wrap": true}));
        for r in &approval.reviews {
            let mut line = format!(
                "{} ({}) {} at {}",
                plain(&r.name),
                plain(&r.approver),
                r.decision,
                r.at.to_rfc3339()
            );
            if let Some(reason) = &r.reason {
                line.push_str(&format!(": {}", plain(reason)));
            }
            body.push(text(line));
        }
    }
    if view.state == CardState::Pending {
        let remaining = quorum.saturating_sub(given);
        body.push(text(format!(
            "Still needed: {remaining} more from {}",
            plain(&approval.groups.join(", "))
        )));
    }
    if let Some(review) = &n.review {
        let verb = match review.decision.as_str() {
            "approve" => "Approved",
            "deny" => "Denied",
            "modify" => "Modified",
            other => other,
        };
        let mut line = format!(
            "{verb} by {} ({})",
            plain(&review.name),
            plain(&review.approver)
        );
        if let Some(reason) = &review.reason {
            line.push_str(&format!(": {}", plain(reason)));
        }
        body.push(json!({"type": "TextBlock", "text": line, "wrap": true, "isSubtle": true}));
    }
    match view.notice {
        Some(Notice::Done(message)) => body.push(json!({
            "type": "TextBlock", "text": plain(message), "wrap": true, "color": "Good", "weight": "Bolder",
        })),
        Some(Notice::Refused(message)) => body.push(json!({
            "type": "TextBlock", "text": plain(message), "wrap": true, "color": "Attention", "weight": "Bolder",
        })),
        None => {}
    }

    let mut card = json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
    });
    if view.state == CardState::Pending {
        let data = json!({"action_id": a.action_id, "digest": a.digest});
        let body = card["body"].as_array_mut().expect("body is an array");
        body.push(json!({
            "type": "Input.Text",
            "id": INPUT_REASON,
            "label": "Reason (required to deny or modify, and to approve high risk)",
            "isMultiline": true,
            "maxLength": 1000,
        }));
        for name in view.modifiable {
            let current = a
                .params
                .get(name)
                .map(|v| v.to_string())
                .unwrap_or_default();
            body.push(json!({
                "type": "Input.Text",
                "id": format!("{INPUT_PARAM_PREFIX}{name}"),
                "label": format!("{} (JSON; used by Modify)", plain(name)),
                "value": current,
            }));
        }
        // Approving a step-up action needs the approver's passkey, which a
        // card cannot ask for: the button opens the inbox page instead.
        let approve = match &approval.step_up {
            Some(link) => {
                json!({"type": "Action.OpenUrl", "title": "Approve with passkey", "url": link, "style": "positive"})
            }
            None => {
                json!({"type": "Action.Execute", "title": "Approve", "verb": VERB_APPROVE, "style": "positive", "data": data})
            }
        };
        let mut actions = vec![
            approve,
            json!({"type": "Action.Execute", "title": "Deny", "verb": VERB_DENY, "style": "destructive", "data": data}),
        ];
        if !view.modifiable.is_empty() {
            actions.push(json!({"type": "Action.Execute", "title": "Modify", "verb": VERB_MODIFY, "data": data}));
        }
        card["actions"] = Value::Array(actions);
    }
    if let Some(url) = &n.inbox_url {
        let link = json!({"type": "Action.OpenUrl", "title": "Open in the inbox", "url": url});
        match card["actions"].as_array_mut() {
            Some(actions) => actions.push(link),
            None => card["actions"] = json!([link]),
        }
    }
    card
}

/// A message activity carrying `card`, for the Connector.
pub fn message(card: Value, summary: &str) -> Value {
    json!({
        "type": "message",
        "summary": summary,
        "attachments": [{"contentType": CONTENT_TYPE, "content": card}],
    })
}

/// The changes a Modify click asks for: each modifiable parameter whose
/// input differs from the current value, read as JSON (or as a string when
/// it is not JSON). An emptied input removes the parameter. JSON that parsers
/// would read differently (not I-JSON, e.g. `9007199254740993`) is refused,
/// naming the parameter.
pub fn modify_changes(
    data: &serde_json::Map<String, Value>,
    current: &Value,
    modifiable: &[String],
) -> Result<Value, crate::ijson::IJsonError> {
    let mut changes = serde_json::Map::new();
    for name in modifiable {
        let Some(input) = data
            .get(&format!("{INPUT_PARAM_PREFIX}{name}"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let input = input.trim();
        let value = if input.is_empty() {
            Value::Null
        } else {
            match crate::ijson::value(input) {
                Ok(value) => value,
                Err(e) if e.is_syntax() => Value::String(input.into()),
                Err(e) => return Err(e.within(name)),
            }
        };
        let old = current.get(name).cloned().unwrap_or(Value::Null);
        if value != old {
            changes.insert(name.clone(), value);
        }
    }
    Ok(Value::Object(changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Risk;
    use crate::notify::{ActionSummary, ApprovalEntry, ApprovalState};

    fn notification(kind: NotificationKind) -> Notification {
        Notification {
            id: "n1".into(),
            kind,
            action: ActionSummary {
                action_id: "a1".into(),
                digest: "ab".repeat(32),
                kind: "db.export".into(),
                resource: "db://warehouse/customers".into(),
                agent_id: "etl".into(),
                owner: "sam@example.com".into(),
                on_behalf_of: None,
                risk: Risk::High,
                reasons: vec!["exports [personal](http://evil) data".into()],
                justification: Some("report".into()),
                params: json!({"rows": 1000, "table": "customers"}),
                context: Default::default(),
                plugin: None,
                redacted: vec![],
            },
            approval: ApprovalState {
                groups: vec!["data-owners".into()],
                quorum: 2,
                approvals: vec![ApprovalEntry {
                    approver: "erin@example.com".into(),
                    name: "Erin".into(),
                    at: chrono::Utc::now(),
                }],
                expires_at: chrono::Utc::now(),
                escalate_to: vec![],
                escalated: false,
                modifiable_params: vec![],
                reviews: vec![],
                step_up: None,
            },
            review: None,
            occurred_at: chrono::Utc::now(),
            inbox_url: None,
        }
    }

    #[test]
    fn a_step_up_card_links_to_the_inbox_instead_of_approving() {
        let mut n = notification(NotificationKind::Pending);
        n.approval.step_up = Some("https://inbox.example/inbox/actions/a1".into());
        let card = card(&CardView {
            notification: &n,
            state: CardState::Pending,
            modifiable: &[],
            notice: None,
        });
        let actions = card["actions"].as_array().unwrap();
        assert_eq!(actions[0]["type"], "Action.OpenUrl");
        assert_eq!(actions[0]["url"], "https://inbox.example/inbox/actions/a1");
        assert!(actions.iter().all(|a| a["verb"] != VERB_APPROVE));
        assert_eq!(actions[1]["verb"], VERB_DENY, "deny stays in chat");
    }

    #[test]
    fn pending_card_has_buttons_inputs_and_tally() {
        let n = notification(NotificationKind::Pending);
        let modifiable = vec!["rows".to_string()];
        let card = card(&CardView {
            notification: &n,
            state: CardState::Pending,
            modifiable: &modifiable,
            notice: None,
        });
        assert_eq!(card["version"], "1.5");
        let verbs: Vec<_> = card["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                assert_eq!(a["type"], "Action.Execute");
                assert_eq!(a["data"]["action_id"], "a1");
                a["verb"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(verbs, ["approve", "deny", "modify"]);
        let text = card.to_string();
        assert!(
            text.contains("Approvals: 1 of 2: Erin (erin@example.com)"),
            "{text}"
        );
        assert!(
            text.contains("Still needed: 1 more from data-owners"),
            "{text}"
        );
        assert!(text.contains("\"id\":\"param.rows\""), "{text}");
        assert!(text.contains("\"value\":\"1000\""), "{text}");
        // Markdown from the action is shown literally.
        assert!(text.contains("\\\\[personal\\\\]"), "{text}");
    }

    #[test]
    fn cards_link_to_the_inbox_page_when_there_is_one() {
        let mut n = notification(NotificationKind::Approved);
        n.inbox_url = Some("https://ag.example.com/inbox/actions/a1".into());
        let card = card(&CardView {
            notification: &n,
            state: CardState::of_kind(n.kind),
            modifiable: &[],
            notice: None,
        });
        assert_eq!(
            card["actions"],
            json!([{"type": "Action.OpenUrl", "title": "Open in the inbox", "url": "https://ag.example.com/inbox/actions/a1"}])
        );
    }

    #[test]
    fn final_card_has_no_buttons() {
        let n = notification(NotificationKind::Approved);
        let card = card(&CardView {
            notification: &n,
            state: CardState::of_kind(n.kind),
            modifiable: &["rows".to_string()],
            notice: Some(&Notice::Done("You approved.".into())),
        });
        assert!(card.get("actions").is_none());
        assert!(!card.to_string().contains("Input.Text"));
        assert!(card.to_string().contains("Approved: db.export"));
    }

    #[test]
    fn modify_changes_only_what_changed() {
        let data = serde_json::from_value::<serde_json::Map<String, Value>>(json!({
            "param.rows": "100",
            "param.table": "customers_eu",
            "param.columns": "",
            "param.secret": "1",
            "reason": "fewer",
        }))
        .unwrap();
        let modifiable = ["rows", "table", "columns"].map(String::from);
        let current = json!({"rows": 1000, "table": "customers"});
        assert_eq!(
            modify_changes(&data, &current, &modifiable).unwrap(),
            json!({"rows": 100, "table": "customers_eu"})
        );
    }

    #[test]
    fn modify_refuses_what_parsers_read_differently() {
        let current = json!({"rows": 1000, "filter": {}});
        let modifiable = ["rows", "filter"].map(String::from);
        let input = |rows: &str, filter: &str| {
            serde_json::from_value::<serde_json::Map<String, Value>>(
                json!({"param.rows": rows, "param.filter": filter}),
            )
            .unwrap()
        };
        let e =
            modify_changes(&input("9007199254740993", "{}"), &current, &modifiable).unwrap_err();
        assert_eq!(e.path, "rows");
        assert!(e.to_string().contains("send it as a string"), "{e}");
        let e = modify_changes(&input("5", r#"{"a":1,"a":2}"#), &current, &modifiable).unwrap_err();
        assert_eq!(e.path, "filter.a");
        // Text that is not JSON at all is still read as a string.
        assert_eq!(
            modify_changes(&input("5", "{}"), &current, &modifiable).unwrap(),
            json!({"rows": 5})
        );
        assert_eq!(
            modify_changes(&input("five", "{}"), &current, &modifiable).unwrap(),
            json!({"rows": "five"})
        );
    }
}
