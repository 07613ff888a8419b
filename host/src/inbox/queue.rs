//! What a signed-in person may see: the pending actions routed to them and
//! one action's whole context, built from the action record. Reads only;
//! whether a review counts is the approval rules' call (`approvals::rules`).

use chrono::Utc;
use serde_json::Value;

use super::pages::{times, ActionView, Pair, ParamField, PendingItem, PluginView, ReviewView};
use super::session::SignedIn;
use super::App;
use crate::action::{ActionId, Risk, Route};
use crate::approvals::{rules, ApprovalSummary, Decision, Redaction, Refusal, Request, Tally};
use crate::directory::Directory;
use crate::gate::{ActionRecord, GateError, State};
use crate::store::ReviewRow;

/// A stored action with the rules' view of it.
pub struct Loaded {
    pub record: ActionRecord,
    pub request: Request,
    pub reviews: Vec<ReviewRow>,
}

/// The action `id` names, if there is one: a malformed id names none.
pub async fn load(app: &App, id: &str) -> Result<Option<Loaded>, GateError> {
    let Ok(id) = id.parse::<ActionId>() else {
        return Ok(None);
    };
    let record = match app.gate.record(&id).await {
        Ok(record) => record,
        Err(GateError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let request = app.gate.request_of(&record).await?;
    let reviews = app.gate.store().reviews(&id.to_string()).await?;
    Ok(Some(Loaded {
        record,
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
    let dir = app.gate.directory();
    let now = Utc::now();
    let mut items = Vec::new();
    for row in app
        .gate
        .store()
        .pending_actions(500)
        .await?
        .into_iter()
        .rev()
    {
        let record = ActionRecord::decode(row)?;
        let request = app.gate.request_of(&record).await?;
        let (action, verdict) = (&record.action, &record.verdict);
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
        let (requested, requested_iso) = times(record.created_at);
        let (expires, expires_iso) = times(request.expires_at);
        items.push(PendingItem {
            id: record.id.to_string(),
            digest: record.digest.clone(),
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
    let summary = ApprovalSummary::build(
        &l.record.action,
        &l.record.verdict,
        &l.request,
        dir,
        redaction,
    );
    let (a, route) = (&summary.action, &summary.approval);
    let state = l.record.state;
    let routed = matches!(l.record.verdict.route, Route::RequireApproval(_));
    let modifiable = route
        .modifiable_params
        .iter()
        .map(|name| {
            let redacted = redaction.is_secret(name);
            let (value, hint) = param_text(l.record.action.params.get(name));
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
                current: r.digest == l.record.digest,
            }
        })
        .collect();
    let (requested, requested_iso) = times(l.record.action.requested_at);
    let (expires, expires_iso) = times(route.expires_at);
    ActionView {
        id: l.record.id.to_string(),
        digest: l.record.digest.clone(),
        digest_short: l.record.digest.chars().take(12).collect(),
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
        failure: l.record.verdict.failure.as_ref().map(ToString::to_string),
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
        // Whether step-up is in force needs the evidence: the caller sets it.
        step_up: false,
        has_passkey: false,
    }
}
