//! What a signed-in person may see: the pending actions routed to them and
//! one action's whole context, built from the action record. Reads only;
//! whether a review counts is the approval rules' call (`approvals::rules`).

use chrono::Utc;
use serde_json::Value;

use super::pages::{times, ActionView, Pair, ParamField, PendingItem, PluginView, ReviewView};
use super::session::SignedIn;
use crate::action::{Action, Risk, Route};
use crate::api::App;
use crate::approvals::{
    self, rules, ApprovalSummary, Decision, Redaction, Refusal, Request, Tally,
};
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

/// The whole context of one action, as its page shows it: the one
/// approval summary every channel shows (secrets redacted by the shared
/// rules), with each review's channel and version from the store.
pub fn action_view(dir: &Directory, redaction: &Redaction, l: &Loaded) -> ActionView {
    let summary = ApprovalSummary::build(&l.action, &l.verdict, &l.request, dir, redaction);
    let (a, route) = (&summary.action, &summary.approval);
    let state = State::parse(&l.row.state).unwrap_or(State::Pending);
    let routed = matches!(l.verdict.route, Route::RequireApproval(_));
    let modifiable = route
        .modifiable_params
        .iter()
        .map(|name| {
            let redacted = redaction.is_secret(name);
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
    let (expires, expires_iso) = times(route.expires_at);
    ActionView {
        id: l.row.id.clone(),
        digest: l.row.digest.clone(),
        digest_short: l.row.digest.chars().take(12).collect(),
        state: state.as_str(),
        pending: state == State::Pending,
        kind: a.kind.clone(),
        resource: a.resource.clone(),
        agent: a.agent_id.clone(),
        owner: a.owner.clone(),
        on_behalf_of: a.on_behalf_of.clone(),
        requested,
        requested_iso,
        justification: a.justification.clone(),
        context: a
            .context
            .iter()
            .map(|(k, v)| Pair {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        params: serde_json::to_string_pretty(&a.params).expect("JSON serializes"),
        risk: a.risk.as_str(),
        approve_needs_reason: a.risk >= Risk::High,
        reasons: a.reasons.clone(),
        plugin: a.plugin.as_ref().map(|p| PluginView {
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
        }),
        failure: l.verdict.failure.as_ref().map(ToString::to_string),
        groups: if routed {
            route.groups.join(", ")
        } else {
            "none (not held for approval)".into()
        },
        quorum: route.quorum,
        approvals: route.approvals.len(),
        expires,
        expires_iso,
        escalate_to: route.escalate_to.join(", "),
        escalated: route.escalated,
        modifiable,
        reviews,
    }
}
