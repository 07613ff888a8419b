//! What a signed-in person may see: the pending actions routed to them and
//! one action's whole context, built from the action record. Reads only;
//! whether a review counts is the approval rules' call (`approvals::rules`).

use chrono::Utc;
use serde_json::Value;

use super::pages::{times, ActionView, Pair, ParamField, PendingItem, PluginView, ReviewView};
use super::session::SignedIn;
use crate::action::{Action, Risk, Route};
use crate::api::App;
use crate::approvals::{self, rules, Decision, Refusal, Request, Tally};
use crate::chat::slack::blocks::redact;
use crate::directory::Directory;
use crate::evaluate::Verdict;
use crate::gate::{GateError, State};
use crate::store::{ActionRow, ReviewRow};

/// A stored action with the rules' view of it.
pub struct Loaded {
    pub row: ActionRow,
    pub action: Action,
    pub verdict: Verdict,
    pub request: Request,
    pub reviews: Vec<ReviewRow>,
}

pub async fn load(app: &App, id: &str) -> Result<Option<Loaded>, GateError> {
    let Some(row) = app.gate.store.action(id).await? else {
        return Ok(None);
    };
    let (action, verdict) = approvals::parse_row(&row)?;
    let request = app.gate.request_of(&row, &action, &verdict).await?;
    let reviews = app.gate.store.reviews(&row.id).await?;
    Ok(Some(Loaded {
        row,
        action,
        verdict,
        request,
        reviews,
    }))
}

/// Whether `me` reviews for any group `request` is routed to now, by the
/// directory and, when configured, the provider's group claim too.
fn routed_to(dir: &Directory, me: &SignedIn, request: &Request) -> bool {
    request
        .eligible_groups()
        .any(|g| dir.is_member(&me.approver, g) && me.provider_allows(g))
}

/// Whether `me` may open the action's page: it is routed to one of their
/// groups, or they reviewed it (their history links here).
pub fn may_see(dir: &Directory, me: &SignedIn, loaded: &Loaded) -> bool {
    routed_to(dir, me, &loaded.request)
        || loaded
            .reviews
            .iter()
            .any(|r| r.approver == me.approver.as_str())
}

/// The provider's narrowing of the directory, as a refusal in the rules'
/// own words; the rules themselves run in `Gate::review`.
pub fn provider_refusal(dir: &Directory, me: &SignedIn, request: &Request) -> Option<Refusal> {
    (me.idp_groups.is_some() && !routed_to(dir, me, request)).then(|| Refusal::NotInGroup {
        approver: me.approver.clone(),
        groups: format!(
            "{}; the identity provider's group claim names none of them for you",
            request.eligible_groups().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Pending actions `me` may act on, newest first: the list `GET
/// /v1/approvals` gives, narrowed by the provider's groups when configured.
pub async fn pending_items(app: &App, me: &SignedIn) -> Result<Vec<PendingItem>, GateError> {
    let dir = &app.gate.directory;
    let now = Utc::now();
    let mut items = Vec::new();
    for row in app.gate.store.pending_actions(500).await?.into_iter().rev() {
        let (action, verdict) = approvals::parse_row(&row)?;
        let request = app.gate.request_of(&row, &action, &verdict).await?;
        // A deny with a reason passes every rule an approval does but the
        // duplicate check: what this person may still act on.
        let may_act = rules::check(dir, &request, &me.approver, Decision::Deny, Some("-"), now)
            .is_ok()
            && routed_to(dir, me, &request);
        if !may_act {
            continue;
        }
        let approvals = match rules::tally(&request) {
            Tally::Pending { approvers, .. } | Tally::Approved { approvers } => approvers.len(),
            Tally::Denied { .. } => 0,
        };
        let (requested, requested_iso) = times(row.created_at);
        let (expires, expires_iso) = times(request.expires_at);
        items.push(PendingItem {
            id: row.id.clone(),
            digest: row.digest.clone(),
            kind: action.kind.clone(),
            resource: action.resource.clone(),
            agent: action.agent.id.clone(),
            owner: request.requester.owner.clone(),
            risk: verdict.classification.risk.as_str(),
            approvals,
            quorum: request.quorum(),
            requested,
            requested_iso,
            expires,
            expires_iso,
        });
    }
    Ok(items)
}

/// A parameter's current value as form text, and what the field expects.
fn param_text(value: Option<&Value>) -> (String, &'static str) {
    match value {
        Some(Value::String(s)) => (s.clone(), "text"),
        Some(Value::Number(n)) => (n.to_string(), "a number"),
        Some(Value::Bool(b)) => (b.to_string(), "true or false"),
        Some(v @ Value::Array(_)) => (v.to_string(), "a JSON array"),
        Some(v @ Value::Object(_)) => (v.to_string(), "a JSON object"),
        Some(Value::Null) | None => (String::new(), "JSON, or text"),
    }
}

/// Whether `name` is one of the redacted param names (without case).
pub fn is_redacted(redact_params: &[String], name: &str) -> bool {
    redact_params.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// The whole context of one action, as its page shows it.
pub fn action_view(dir: &Directory, redact_params: &[String], l: &Loaded) -> ActionView {
    let state = State::parse(&l.row.state).unwrap_or(State::Pending);
    let request = &l.request;
    let approvals = match rules::tally(request) {
        Tally::Pending { approvers, .. } | Tally::Approved { approvers } => approvers.len(),
        Tally::Denied { .. } => 0,
    };
    let routed = matches!(l.verdict.route, Route::RequireApproval(_));
    let modifiable = request
        .route
        .modifiable_params
        .iter()
        .map(|name| {
            let redacted = is_redacted(redact_params, name);
            let (value, hint) = param_text(l.action.params.get(name));
            ParamField {
                name: name.clone(),
                value: if redacted { String::new() } else { value },
                hint,
                redacted,
            }
        })
        .collect();
    let reviews = l
        .reviews
        .iter()
        .map(|r| {
            let who = match dir.person_by_email(&r.approver) {
                Some(p) => format!("{} ({})", p.name(), p.email()),
                None => format!("{} (no longer in the directory)", r.approver),
            };
            let (at, at_iso) = times(r.at);
            ReviewView {
                who,
                decision: r.decision.clone(),
                reason: r.reason.clone(),
                channel: r.channel.clone(),
                at,
                at_iso,
                current: r.digest == l.row.digest,
            }
        })
        .collect();
    let (requested, requested_iso) = times(l.action.requested_at);
    let (expires, expires_iso) = times(request.expires_at);
    let risk = l.verdict.classification.risk;
    ActionView {
        id: l.row.id.clone(),
        digest: l.row.digest.clone(),
        digest_short: l.row.digest.chars().take(12).collect(),
        state: state.as_str(),
        pending: state == State::Pending,
        kind: l.action.kind.clone(),
        resource: l.action.resource.clone(),
        agent: l.action.agent.id.clone(),
        owner: request.requester.owner.clone(),
        on_behalf_of: l.action.on_behalf_of.clone(),
        requested,
        requested_iso,
        justification: l.action.justification.clone(),
        context: l
            .action
            .context
            .iter()
            .map(|(k, v)| Pair {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        params: serde_json::to_string_pretty(&redact(&l.action.params, redact_params))
            .expect("JSON serializes"),
        risk: risk.as_str(),
        approve_needs_reason: risk >= Risk::High,
        reasons: l.verdict.classification.reasons.clone(),
        plugin: l.verdict.plugin.as_ref().map(|p| PluginView {
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
        }),
        failure: l.verdict.failure.as_ref().map(ToString::to_string),
        groups: if routed {
            request.route.groups.join(", ")
        } else {
            "none (not held for approval)".into()
        },
        quorum: request.quorum(),
        approvals,
        expires,
        expires_iso,
        escalate_to: request.route.escalate_to.join(", "),
        escalated: request.escalated,
        modifiable,
        reviews,
    }
}
