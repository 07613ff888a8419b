//! Assembles the running service from a `Config`: store, evidence log,
//! sandbox and bindings, gate, background tasks. `serve` and the tests
//! both start the service through here, so they run the same thing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::action::Route;
use crate::api::{App, AppState};
use crate::bindings::{BindingChange, BindingConfig, Bindings};
use crate::config::Config;
use crate::directory::Directory;
use crate::evaluate::Evaluator;
use crate::evidence::{Actor, EvidenceLog};
use crate::gate::{Gate, GateParts, WhenApproved};
use crate::grant::GrantSigner;
use crate::metrics::Metrics;
use crate::notify::webhook::Webhook;
use crate::notify::Notifier;
use crate::registry::admit::Admission;
use crate::registry::{self, Registration};
use crate::sandbox::Sandbox;
use crate::shadow::Shadows;
use crate::store::Store;
use crate::waiters::Waiters;

/// Connects, loads plugins, binds them, and returns the shared state.
pub async fn build(config: &Config) -> anyhow::Result<App> {
    // A run may take up to its upstream's timeout: none may be declared lost sooner.
    let unrecorded_after = config.grants.unrecorded_after_seconds;
    let upstreams = &config.mcp.upstreams;
    if let Some(u) = upstreams
        .iter()
        .find(|u| u.timeout_seconds >= unrecorded_after)
    {
        anyhow::bail!(
            "[grants] unrecorded_after_seconds ({unrecorded_after}) must exceed upstream {:?}'s timeout_seconds ({}): a run still in flight would be recorded as lost",
            u.name,
            u.timeout_seconds
        );
    }
    let store = Store::connect(config.database_url())
        .await
        .with_context(|| {
            format!(
                "connecting to the {} database",
                store_name(config.database_url())
            )
        })?;
    let evidence = EvidenceLog::open(store.clone(), config.evidence.clone())
        .await
        .context("opening the evidence log")?;

    let admission = Arc::new(
        Admission::from_config(&config.plugins).context("checking [plugins] signature settings")?,
    );
    let sandbox =
        Arc::new(Sandbox::new(config.sandbox.clone()).context("starting the plugin sandbox")?);
    let directory =
        Arc::new(Directory::from_config(&config.directory).context("checking [directory]")?);
    // A break-glass hold nobody can answer would leave every failure
    // pending until it expires: refuse it now, like a plugin's route.
    if let Some(hold) = config.fail_closed.hold() {
        crate::route_check::check(&Route::RequireApproval(hold), &directory, &[]).map_err(
            |reason| anyhow::anyhow!("checking [fail_closed] against [directory]: {reason}"),
        )?;
    }
    let evaluator = Arc::new(
        Evaluator::new(sandbox, config.fail_closed.clone()).with_directory(directory.clone()),
    );
    let mut seeds = Vec::with_capacity(config.bindings.len());
    for binding in &config.bindings {
        seeds.push(
            admit_config_binding(&evaluator, &evidence, binding)
                .await
                .with_context(|| format!("binding {:?}", binding.kind))?,
        );
    }
    // The store is the one source of truth: the config file's entries are
    // changes to it, and the evaluator follows the store.
    let bindings = Arc::new(Bindings::new(
        store.clone(),
        evidence.clone(),
        evaluator.clone(),
        config.plugins.four_eyes.clone(),
    ));
    bindings
        .seed(&seeds)
        .await
        .context("seeding the config file's bindings")?;
    bindings.reload().await.context("loading the bindings")?;

    let signing_key = crate::keys::load_or_create_signing_key(&config.grants.key_path)
        .context("loading the grant signing key")?;
    let waiters = Waiters::default();
    if let Store::Postgres(pool, ..) = &store {
        waiters.listen_postgres(pool.clone());
    }
    let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
    for hook in &config.notify.webhooks {
        let webhook =
            Webhook::new(hook.clone()).with_context(|| format!("webhook {:?}", hook.name))?;
        notifiers.push(Arc::new(webhook));
    }
    let teams = match &config.teams {
        Some(teams) => {
            let teams = Arc::new(
                crate::chat::teams::Teams::new(teams, store.clone()).context("checking [teams]")?,
            );
            notifiers.push(Arc::new(crate::chat::teams::TeamsNotifier::new(
                teams.clone(),
            )));
            Some(teams)
        }
        None => None,
    };
    let slack = config
        .slack
        .as_ref()
        .map(|c| crate::chat::slack::Slack::new(c, store.clone()))
        .transpose()
        .context("checking [slack]")?;
    if let Some(slack) = &slack {
        notifiers.push(slack.notifier());
    }
    let step_up = config
        .step_up
        .clone()
        .map(|c| crate::stepup::StepUp::new(c, store.clone()).map(Arc::new))
        .transpose()
        .context("checking [step_up]")?;
    let inbox = config
        .inbox
        .as_ref()
        .map(|c| crate::inbox::Inbox::new(c).map(Arc::new))
        .transpose()
        .context("checking [inbox]")?;
    if let (Some(step_up), Some(inbox)) = (&step_up, &inbox) {
        step_up
            .config
            .check_inbox(&inbox.settings.public_url)
            .map_err(anyhow::Error::msg)
            .context("checking [step_up] against [inbox]")?;
    }
    // An approved four-eyes change is the bindings' to make.
    let when_approved: Vec<Arc<dyn WhenApproved>> = vec![bindings.clone() as Arc<dyn WhenApproved>];
    let gate = Arc::new(Gate::new(GateParts {
        step_up,
        store,
        directory,
        notifiers,
        evidence: evidence.clone(),
        evaluator: evaluator.clone(),
        grants: GrantSigner::new(signing_key),
        grant_ttl: Duration::from_secs(config.grants.ttl_seconds),
        waiters,
        metrics: Metrics::default(),
        shadows: Shadows::new(
            evaluator.clone(),
            evidence.clone(),
            (config.sandbox.max_instances / 4) as usize,
        ),
        when_approved,
        inbox_url: inbox.as_ref().map(|i| i.settings.public_url.clone()),
        redaction: redaction(config),
    }));
    bindings.clone().spawn_sync(Duration::from_millis(
        config.plugins.bindings_poll_ms.max(50),
    ));
    crate::approvals::sweeper::spawn(
        gate.clone(),
        Duration::from_millis(config.sweep_interval_ms.max(10)),
        Duration::from_secs(unrecorded_after),
    );
    let slack = slack.map(|s| Arc::new(s.start(gate.clone())));
    let mcp = crate::mcp::Gateway::new(gate.clone(), &config.mcp).context("checking [mcp]")?;
    Ok(Arc::new(AppState {
        gate,
        bindings,
        evidence,
        teams,
        slack,
        admission,
        submitters: Default::default(),
        inbox,
        mcp,
    }))
}

/// Resolves one `[[bindings]]` entry to a change; its plugins are admitted
/// through the registry, so their bytes are stored before they decide anything.
async fn admit_config_binding(
    evaluator: &Evaluator,
    evidence: &EvidenceLog,
    b: &BindingConfig,
) -> anyhow::Result<BindingChange> {
    let admit = |wasm: Vec<u8>, source: String, pin: Option<String>| async move {
        let registration = Registration {
            by: Actor::system("config"),
            signer: None,
            source,
            pin,
            cases: None,
        };
        let (plugin, _) = registry::register(evaluator, evidence, &wasm, registration).await?;
        anyhow::Ok(plugin.sha256.clone())
    };
    let example = |name: &str| {
        crate::examples::example(name).with_context(|| {
            format!("no example plugin named {name:?} (examples: db-export, iam-change, prod-ops, baseline, mcp-tools)")
        })
    };
    let sha256 = match (&b.plugin, &b.path, &b.sha256) {
        (Some(name), None, None) => {
            admit(
                example(name)?.wasm.to_vec(),
                format!("example:{name}"),
                None,
            )
            .await?
        }
        (None, Some(path), Some(pin)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            admit(bytes, path.display().to_string(), Some(pin.clone())).await?
        }
        _ => anyhow::bail!("give either `plugin` (an example name) or both `path` and `sha256`"),
    };
    let shadow = match b.shadow.as_deref() {
        Some(name) => Some(
            admit(
                example(name)?.wasm.to_vec(),
                format!("example:{name}"),
                None,
            )
            .await?,
        ),
        None => None,
    };
    Ok(BindingChange {
        pattern: b.kind.clone(),
        sha256,
        shadow,
    })
}

/// The one redaction rule set; `[slack] redact_params`, the older
/// per-channel setting, now adds to it for every channel.
fn redaction(config: &Config) -> crate::approvals::Redaction {
    let older = config
        .slack
        .as_ref()
        .and_then(|s| s.redact_params.clone())
        .unwrap_or_default();
    if !older.is_empty() {
        tracing::warn!("[slack] redact_params is deprecated: its names now apply to every channel; move them to [approvals] redact_params");
    }
    crate::approvals::Redaction::from_config(&config.approvals, &older)
}

fn store_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "Postgres"
    }
}
