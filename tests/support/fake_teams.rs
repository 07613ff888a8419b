//! A local stand-in for Microsoft's side of a Teams bot, on 127.0.0.1:0:
//! the OAuth token endpoint, the Bot Framework OpenID metadata and JWKS
//! (keys with endorsements), the Connector API, and a channel that signs
//! the JWTs the Bot Connector sends to bots. Test keys only: the PEM files
//! in tests/fixtures/teams/ were made for these tests and guard nothing.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const APP_ID: &str = "6f1c1a4e-0000-4000-8000-00000000b07a";
pub const APP_SECRET: &str = "fake-teams-app-secret";
pub const ISSUER: &str = "https://api.botframework.com";
pub const CHANNEL: &str = "msteams";
pub const SCOPE: &str = "https://api.botframework.com/.default";

/// A signing key of the fake channel.
#[derive(Clone)]
pub struct ChannelKey {
    pub kid: String,
    pub encoding: EncodingKey,
    /// The public JWK as published (without `kid` and endorsements).
    pub jwk: Value,
}

impl ChannelKey {
    /// Loads tests/fixtures/teams/`file` under the key id `kid`.
    pub fn fixture(file: &str, kid: &str) -> ChannelKey {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/teams")
            .join(file);
        let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let encoding = EncodingKey::from_rsa_pem(&pem).expect("an RSA private key");
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .expect("a JWK of the key");
        let jwk = serde_json::to_value(jwk).unwrap();
        ChannelKey {
            kid: kid.into(),
            encoding,
            jwk: json!({"kty": "RSA", "use": "sig", "n": jwk["n"], "e": jwk["e"]}),
        }
    }
}

/// One activity the bot sent to the Connector.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: &'static str,
    pub conversation_id: String,
    /// Set for updates (PUT).
    pub activity_id: Option<String>,
    pub body: Value,
    pub bearer: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// Published: (key, endorsements).
    published: Vec<(ChannelKey, Vec<String>)>,
    token_expires_in: u64,
    issued_tokens: Vec<String>,
    token_requests: u32,
    token_script: VecDeque<StatusCode>,
    metadata_fetches: u32,
    jwks_fetches: u32,
    connector_script: VecDeque<(StatusCode, Option<&'static str>)>,
    /// Every Connector request, failed ones included.
    connector_requests: u32,
    sent: Vec<Sent>,
    next_activity: u32,
}

#[derive(Clone)]
pub struct FakeTeams {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

/// Claims of one channel token; start from `FakeTeams::claims` and spoil one.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub kid: String,
    pub iss: String,
    pub aud: String,
    pub service_url: String,
    /// Seconds from now.
    pub exp_in: i64,
    pub nbf_in: i64,
}

impl FakeTeams {
    /// Starts the fake, publishing `keys` with their endorsements.
    pub async fn start(keys: Vec<(ChannelKey, Vec<&str>)>) -> FakeTeams {
        let inner = Arc::new(Mutex::new(Inner {
            published: keys
                .into_iter()
                .map(|(k, e)| (k, e.into_iter().map(String::from).collect()))
                .collect(),
            token_expires_in: 3599,
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeTeams { url, inner };
        let app = Router::new()
            .route("/botframework.com/oauth2/v2.0/token", post(token))
            .route("/v1/.well-known/openidconfiguration", get(metadata))
            .route("/v1/.well-known/keys", get(jwks))
            .route(
                "/v3/conversations/{conversation}/activities",
                post(post_activity),
            )
            .route(
                "/v3/conversations/{conversation}/activities/{activity}",
                put(put_activity),
            )
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// The service URL of the fake Connector, as Teams sends it (trailing `/`).
    pub fn service_url(&self) -> String {
        format!("{}/", self.url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/botframework.com/oauth2/v2.0/token", self.url)
    }

    pub fn metadata_url(&self) -> String {
        format!("{}/v1/.well-known/openidconfiguration", self.url)
    }

    /// A `[teams]` config pointing every endpoint at this fake.
    pub fn config(&self, conversations: &[(&str, &str)]) -> actiongate::chat::teams::TeamsConfig {
        use actiongate::chat::teams::{AppSecret, ConversationConfig, TeamsConfig};
        let mut config = TeamsConfig::new(APP_ID, AppSecret::new(APP_SECRET));
        config.token_url = self.token_url();
        config.openid_metadata_url = self.metadata_url();
        config.keys_min_refresh_seconds = 0;
        config.initial_backoff_ms = 10;
        config.max_backoff_ms = 200;
        config.timeout_ms = 5_000;
        for (group, conversation_id) in conversations {
            config.conversations.insert(
                group.to_string(),
                ConversationConfig {
                    service_url: self.service_url(),
                    conversation_id: conversation_id.to_string(),
                },
            );
        }
        config
    }

    /// Good claims for a request to our bot, signed with `kid`.
    pub fn claims(&self, kid: &str) -> TokenSpec {
        TokenSpec {
            kid: kid.into(),
            iss: ISSUER.into(),
            aud: APP_ID.into(),
            service_url: self.service_url(),
            exp_in: 3600,
            nbf_in: -300,
        }
    }

    /// A channel token for `spec`, signed with `signer`.
    pub fn sign(&self, spec: &TokenSpec, signer: &ChannelKey) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(spec.kid.clone());
        let claims = json!({
            "serviceurl": spec.service_url,
            "nbf": now + spec.nbf_in,
            "exp": now + spec.exp_in,
            "iss": spec.iss,
            "aud": spec.aud,
        });
        jsonwebtoken::encode(&header, &claims, &signer.encoding).unwrap()
    }

    /// A channel token for `spec`, signed with the published key `spec.kid`.
    pub fn token(&self, spec: &TokenSpec) -> String {
        let key = self
            .inner
            .lock()
            .unwrap()
            .published
            .iter()
            .find(|(k, _)| k.kid == spec.kid)
            .map(|(k, _)| k.clone())
            .expect("a published kid");
        self.sign(spec, &key)
    }

    pub fn publish(&self, key: ChannelKey, endorsements: &[&str]) {
        self.inner
            .lock()
            .unwrap()
            .published
            .push((key, endorsements.iter().map(|e| e.to_string()).collect()));
    }

    pub fn set_token_expires_in(&self, seconds: u64) {
        self.inner.lock().unwrap().token_expires_in = seconds;
    }

    /// The next token requests answer these statuses (then succeed).
    pub fn script_token(&self, replies: &[StatusCode]) {
        self.inner.lock().unwrap().token_script.extend(replies);
    }

    /// The next Connector requests answer these (then succeed).
    pub fn script_connector(&self, replies: &[(StatusCode, Option<&'static str>)]) {
        self.inner.lock().unwrap().connector_script.extend(replies);
    }

    /// Every Connector request fails with `status` until cleared.
    pub fn fail_connector(&self, status: StatusCode, times: usize) {
        self.script_connector(&vec![(status, None); times]);
    }

    pub fn token_requests(&self) -> u32 {
        self.inner.lock().unwrap().token_requests
    }

    pub fn jwks_fetches(&self) -> u32 {
        self.inner.lock().unwrap().jwks_fetches
    }

    pub fn connector_requests(&self) -> u32 {
        self.inner.lock().unwrap().connector_requests
    }

    /// Activities the Connector accepted, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().sent.clone()
    }

    /// Waits up to 10 s for `pred` to hold over the accepted activities.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Sent]) -> bool) -> Vec<Sent> {
        for _ in 0..200 {
            let sent = self.sent();
            if pred(&sent) {
                return sent;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}; sent: {:#?}", self.sent());
    }

    /// An `adaptiveCard/action` invoke from the user `aad_object_id`.
    pub fn invoke(
        &self,
        conversation_id: &str,
        reply_to_id: &str,
        aad_object_id: &str,
        verb: &str,
        data: Value,
    ) -> Value {
        json!({
            "type": "invoke",
            "name": "adaptiveCard/action",
            "id": format!("f:{}", uuid::Uuid::now_v7()),
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "serviceUrl": self.service_url(),
            "channelId": CHANNEL,
            "from": {"id": format!("29:{aad_object_id}"), "name": "Someone", "aadObjectId": aad_object_id},
            "conversation": {"id": conversation_id, "conversationType": "channel", "tenantId": "tenant-1"},
            "recipient": {"id": format!("28:{APP_ID}"), "name": "actiongate"},
            "replyToId": reply_to_id,
            "value": {
                "action": {"type": "Action.Execute", "id": "btn", "verb": verb, "data": data},
                "trigger": "manual",
            },
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(String::from)
}

async fn token(State(fake): State<FakeTeams>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.token_requests += 1;
    if let Some(status) = inner.token_script.pop_front() {
        return status.into_response();
    }
    if field("grant_type") != Some("client_credentials")
        || field("client_id") != Some(APP_ID)
        || field("client_secret") != Some(APP_SECRET)
        || field("scope") != Some(SCOPE)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = format!("fake-bot-token-{}", uuid::Uuid::now_v7().simple());
    inner.issued_tokens.push(token.clone());
    Json(json!({
        "token_type": "Bearer",
        "expires_in": inner.token_expires_in,
        "ext_expires_in": inner.token_expires_in,
        "access_token": token,
    }))
    .into_response()
}

async fn metadata(State(fake): State<FakeTeams>) -> Json<Value> {
    fake.inner.lock().unwrap().metadata_fetches += 1;
    Json(json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": format!("{}/v1/.well-known/keys", fake.url),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }))
}

async fn jwks(State(fake): State<FakeTeams>) -> Json<Value> {
    let mut inner = fake.inner.lock().unwrap();
    inner.jwks_fetches += 1;
    let keys: Vec<Value> = inner
        .published
        .iter()
        .map(|(key, endorsements)| {
            let mut jwk = key.jwk.clone();
            jwk["kid"] = key.kid.clone().into();
            jwk["endorsements"] = json!(endorsements);
            jwk
        })
        .collect();
    Json(json!({"keys": keys}))
}

/// A scripted or auth failure of the fake Connector.
type Refusal = (StatusCode, Option<&'static str>);

fn refusal((status, retry_after): Refusal) -> Response {
    let mut response = status.into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static(value));
    }
    response
}

/// Checks the bearer and the script; `Ok` with the bearer when the request
/// may proceed.
fn connector_gate(fake: &FakeTeams, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let mut inner = fake.inner.lock().unwrap();
    inner.connector_requests += 1;
    let bearer = bearer(headers);
    if !bearer
        .as_ref()
        .is_some_and(|b| inner.issued_tokens.contains(b))
    {
        return Err((StatusCode::UNAUTHORIZED, None));
    }
    if let Some(scripted) = inner.connector_script.pop_front() {
        return Err(scripted);
    }
    Ok(bearer)
}

async fn post_activity(
    State(fake): State<FakeTeams>,
    UrlPath(conversation): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = match connector_gate(&fake, &headers) {
        Ok(b) => b,
        Err(r) => return refusal(r),
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.next_activity += 1;
    let id = format!("1:activity-{}", inner.next_activity);
    inner.sent.push(Sent {
        method: "POST",
        conversation_id: conversation,
        activity_id: Some(id.clone()),
        body,
        bearer,
    });
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn put_activity(
    State(fake): State<FakeTeams>,
    UrlPath((conversation, activity)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = match connector_gate(&fake, &headers) {
        Ok(b) => b,
        Err(r) => return refusal(r),
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.sent.push(Sent {
        method: "PUT",
        conversation_id: conversation,
        activity_id: Some(activity.clone()),
        body,
        bearer,
    });
    Json(json!({"id": activity})).into_response()
}
