//! The policy admin API: register plugins, change bindings, list both.
//! Callers are people, by their own key (`actiongate approver key`); the
//! directory says who is a policy admin. Every rule is the domain's
//! (`registry`, `bindings`); this only extracts and maps errors.

use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::approvals::ApproverCaller;
use super::auth::key_holder;
use super::error::{ApiJson, Problem};
use super::App;
use crate::bindings::four_eyes;
use crate::bindings::{Applied, BindError, BindingChange};
use crate::directory::ApproverId;
use crate::evidence::{Actor, ActorKind};
use crate::store::{BindingRow, KeyRole, PluginRow};

/// A person allowed to change policy: in `policy-admins` when that group
/// exists, otherwise a directory admin.
pub struct PolicyAdmin(pub ApproverId);

impl<S: Send + Sync> FromRequestParts<S> for PolicyAdmin
where
    App: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        let ApproverCaller(me) = ApproverCaller::from_request_parts(parts, state).await?;
        let directory = app.gate.directory();
        let person = directory
            .person(&me)
            .ok_or_else(|| Problem::forbidden("the key's owner is no longer in the directory"))?;
        if !four_eyes::is_policy_admin(directory, person) {
            return Err(Problem::forbidden(format!(
                "{me} is not a policy admin ({} policy admins)",
                four_eyes::who_is_policy_admin(directory)
            )));
        }
        Ok(PolicyAdmin(me))
    }
}

/// Anyone with a key but an agent may read what policy is in force.
pub struct PolicyReader;

impl<S: Send + Sync> FromRequestParts<S> for PolicyReader
where
    App: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        match key_holder(parts, &app).await?.role {
            KeyRole::Agent => Err(Problem::forbidden(
                "agents may not read the policy configuration",
            )),
            _ => Ok(PolicyReader),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BindingsQuery {
    /// Every change, oldest first, instead of the bindings in force.
    #[serde(default)]
    pub history: bool,
}

/// The bindings in force (or their whole history).
#[utoipa::path(get, path = "/v1/admin/bindings", tag = "policy admins", params(BindingsQuery),
    responses((status = 200, body = [BindingRow])), security(("bearer" = [])))]
pub async fn list_bindings(
    State(app): State<App>,
    _: PolicyReader,
    Query(q): Query<BindingsQuery>,
) -> Result<Json<Vec<BindingRow>>, Problem> {
    let store = app.gate.store();
    let rows = if q.history {
        store.binding_history().await
    } else {
        store.current_bindings().await
    }
    .map_err(crate::gate::GateError::from)?;
    Ok(Json(rows))
}

/// A binding change: the binding itself and why.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    #[serde(flatten)]
    pub change: BindingChange,
    /// Shown to approvers and recorded (required under four eyes).
    pub reason: Option<String>,
}

/// The answer to a change: made (200), or waiting for approval (202).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum BindAnswer {
    /// In force now on every replica (`unchanged` when it already was).
    Applied {
        binding: Option<BindingRow>,
        unchanged: bool,
    },
    /// An `actiongate.bind` action waiting for other policy admins.
    Pending {
        action_id: String,
        groups: Vec<String>,
        quorum: u32,
        expires_at: DateTime<Utc>,
    },
}

/// Change one binding. Under four eyes (a `policy-admins` group), this
/// only asks: the change is made once other policy admins approve it.
#[utoipa::path(post, path = "/v1/admin/bindings", tag = "policy admins", request_body = BindRequest,
    responses(
        (status = 200, body = BindAnswer, description = "Made"),
        (status = 202, body = BindAnswer, description = "Waiting for approval"),
        (status = 422, description = "Invalid pattern, or a plugin that is not registered"),
    ),
    security(("bearer" = [])))]
pub async fn bind(
    State(app): State<App>,
    PolicyAdmin(me): PolicyAdmin,
    ApiJson(body): ApiJson<BindRequest>,
) -> Result<Response, Problem> {
    let gate = &app.gate;
    if four_eyes::enabled(gate.directory()) {
        let status = app
            .bindings
            .request_change(gate, &me, &body.change, body.reason)
            .await
            .map_err(bind_problem)?;
        let approval = status.approval.ok_or_else(|| {
            Problem::from(crate::gate::GateError::Invalid(
                "the change was not held for approval".into(),
            ))
        })?;
        let answer = BindAnswer::Pending {
            action_id: status.action_id,
            groups: approval.groups,
            quorum: approval.quorum,
            expires_at: approval.expires_at,
        };
        return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
    }
    let by = Actor {
        kind: ActorKind::Human,
        id: me.to_string(),
    };
    let applied = app
        .bindings
        .apply(&body.change, &by, crate::bindings::Source::Admin)
        .await
        .map_err(|e| bind_problem(e.into()))?;
    let answer = match applied {
        Applied::Changed(row) => BindAnswer::Applied {
            binding: Some(row),
            unchanged: false,
        },
        Applied::Unchanged(row) => BindAnswer::Applied {
            binding: row,
            unchanged: true,
        },
    };
    Ok(Json(answer).into_response())
}

fn bind_problem(e: four_eyes::RequestError) -> Problem {
    match e {
        four_eyes::RequestError::Bind(BindError::Pattern(crate::evaluate::BindingError::Kind(
            kind,
        ))) => Problem::invalid_kind(format!("change.pattern: {kind}")),
        four_eyes::RequestError::Bind(e) if e.is_invalid() => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-binding",
            "The binding change is not valid",
            e.to_string(),
        ),
        four_eyes::RequestError::Bind(BindError::Store(e)) => {
            crate::gate::GateError::from(e).into()
        }
        four_eyes::RequestError::Bind(BindError::Evidence(e)) => {
            crate::gate::GateError::from(e).into()
        }
        four_eyes::RequestError::Bind(e) => crate::gate::GateError::Invalid(e.to_string()).into(),
        four_eyes::RequestError::Gate(e) => e.into(),
    }
}

/// One stored plugin (without its bytes).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginView {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub registered_at: DateTime<Utc>,
    /// A person's email, or `config`.
    pub registered_by: String,
    /// The SSH signer (principal and key fingerprint), when signed.
    pub signer: Option<String>,
}

impl From<PluginRow> for PluginView {
    fn from(p: PluginRow) -> Self {
        PluginView {
            sha256: p.sha256,
            name: p.name,
            version: p.version,
            wit_version: p.wit_version,
            registered_at: p.registered_at,
            registered_by: p.registered_by,
            signer: p.signer,
        }
    }
}

/// Every registered plugin, oldest first.
#[utoipa::path(get, path = "/v1/admin/plugins", tag = "policy admins",
    responses((status = 200, body = [PluginView])), security(("bearer" = [])))]
pub async fn list_plugins(
    State(app): State<App>,
    _: PolicyReader,
) -> Result<Json<Vec<PluginView>>, Problem> {
    let rows = app
        .gate
        .store()
        .plugins()
        .await
        .map_err(crate::gate::GateError::from)?;
    Ok(Json(rows.into_iter().map(PluginView::from).collect()))
}

/// Largest plugin upload (the component base64-encoded, with its case file).
pub const PLUGIN_BODY_LIMIT: usize = 48 << 20;

/// A plugin to register.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The component's bytes, base64 (standard alphabet).
    pub wasm_base64: String,
    /// An armored SSHSIG over the bytes (`ssh-keygen -Y sign -n actiongate-plugin`).
    pub signature: Option<String>,
    /// A case file (TOML) it must pass first.
    pub cases: Option<String>,
    /// Where it came from (a file name), for the record.
    pub source: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterAnswer {
    pub plugin: PluginView,
    pub kinds: Vec<String>,
    /// False when these exact bytes were registered before (that record stands).
    pub new: bool,
    pub signer: Option<String>,
    /// Cases passed, when a case file was given.
    pub cases_passed: Option<usize>,
}

/// Register a plugin: signature (required by `[plugins] require_signature`),
/// case file, then its bytes are stored by sha256 with a `plugin-registered` event.
#[utoipa::path(post, path = "/v1/admin/plugins", tag = "policy admins", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterAnswer, description = "Registered"),
        (status = 200, body = RegisterAnswer, description = "These bytes were registered before"),
        (status = 422, description = "Refused: signature, case file, failing cases or a component that does not load"),
    ),
    security(("bearer" = [])))]
pub async fn register(
    State(app): State<App>,
    PolicyAdmin(me): PolicyAdmin,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, Problem> {
    use crate::registry::admit::{AdmitError, Submitted};
    use base64::Engine as _;
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(body.wasm_base64.trim())
        .map_err(|e| Problem::bad_request(format!("wasm_base64: {e}")))?;
    let refused = |kind: &'static str, title: &'static str, detail: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, detail)
    };
    let admitted = app
        .admission
        .admit(
            app.gate.evaluator(),
            &app.evidence,
            Submitted {
                wasm: &wasm,
                signature: body.signature.as_deref(),
                cases: body.cases.as_deref(),
                source: body.source.unwrap_or_else(|| "api".into()),
                by: Actor {
                    kind: ActorKind::Human,
                    id: me.to_string(),
                },
            },
        )
        .await
        .map_err(|e| match e {
            AdmitError::Signature(e) => {
                tracing::warn!(by = %me, refusal = %e, "plugin signature refused");
                refused(
                    "signature-refused",
                    "The plugin's signature was refused",
                    e.to_string(),
                )
            }
            AdmitError::CaseFile(e) => refused(
                "invalid-case-file",
                "The case file is not valid",
                e.to_string(),
            ),
            e @ AdmitError::CasesFailed { .. } => {
                let detail = match &e {
                    AdmitError::CasesFailed { failed, .. } => {
                        format!("{e}: {}", failed.join(" | "))
                    }
                    _ => e.to_string(),
                };
                refused("cases-failed", "The plugin fails its case file", detail)
            }
            AdmitError::Registry(crate::registry::RegistryError::Plugin(f)) => refused(
                "plugin-refused",
                "The component does not load",
                f.to_string(),
            ),
            AdmitError::Registry(e @ crate::registry::RegistryError::DeclaredKind { .. }) => {
                Problem::invalid_kind(e.to_string())
            }
            AdmitError::Registry(crate::registry::RegistryError::Store(e)) => {
                crate::gate::GateError::from(e).into()
            }
            AdmitError::Registry(crate::registry::RegistryError::Evidence(e)) => {
                crate::gate::GateError::from(e).into()
            }
        })?;
    let row = app
        .gate
        .store()
        .plugin(&admitted.plugin.sha256)
        .await
        .map_err(crate::gate::GateError::from)?
        .ok_or_else(|| Problem::not_found("the plugin was registered but cannot be read back"))?;
    tracing::info!(by = %me, sha256 = %row.sha256, name = %row.name, new = admitted.new, "plugin registered");
    let answer = RegisterAnswer {
        kinds: admitted.plugin.info.kinds.clone(),
        plugin: row.into(),
        new: admitted.new,
        signer: admitted.signer.map(|s| s.to_string()),
        cases_passed: admitted.cases.map(|c| c.count),
    };
    let status = if answer.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}
