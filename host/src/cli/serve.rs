//! `actiongate serve`: run the API until SIGTERM or Ctrl-C, then finish the
//! requests in flight (an accepted action is answered, not dropped).

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

use super::{fail, GlobalOpts};
use crate::store::KeyRole;

/// How long a stop waits for the final checkpoint (another replica's
/// integrator may be the one to sign it, on its own timer).
const FINAL_CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a stop waits for the MCP gateway's outcome records in flight
/// (each is one append; this bounds a stop while the database is away).
const OUTCOME_DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (default from config, 127.0.0.1:8080). Env: ACTIONGATE_LISTEN.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

pub async fn run(args: ServeArgs, global: &GlobalOpts, out: &mut (dyn Write + Send)) -> u8 {
    match serve(args, global, out).await {
        Ok(()) => 0,
        Err(e) => fail(format!("{e:#}")),
    }
}

async fn serve(
    args: ServeArgs,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let config = global.config()?;
    let listen = args.listen.unwrap_or(config.listen);
    let app = crate::service::build(&config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;

    if config.demo {
        let key = demo_agent_key(&app).await?;
        writeln!(out, "actiongate listening on http://{local}")?;
        writeln!(
            out,
            "demo agent key (agent \"demo-agent\", owner demo-owner@example.com):\n  {key}"
        )?;
        writeln!(
            out,
            "try:\n  curl -s http://{local}/v1/actions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    -d '{{\"kind\":\"db.export\",\"resource\":\"postgres://prod/warehouse\",\"params\":{{\"rows\":500,\"tables\":[\"orders\"],\"destination\":\"s3://corp-analytics/x\"}}}}'"
        )?;
    } else {
        writeln!(out, "actiongate listening on http://{local}")?;
    }
    out.flush()?;
    tracing::info!(%local, database = %redact(config.database_url()), "serving");

    // Streamed answers (MCP's SSE responses, /events) are written in small
    // pieces; with Nagle's algorithm each waited ~40 ms for a delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, crate::api::router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped; requests in flight were answered");
    // The outcomes of the MCP gateway's last runs are recorded after their
    // answers: they are in the log before the process ends.
    if let Some(mcp) = &app.mcp {
        if !mcp.settle_outcomes(OUTCOME_DRAIN_WAIT).await {
            tracing::error!(
                in_flight = mcp.outcomes_in_flight(),
                "stopping with run outcomes not yet recorded"
            );
        }
    }
    // The decisions of the last seconds get a signed checkpoint before the
    // process ends, so they are provable after the stop.
    match app.evidence.final_checkpoint(FINAL_CHECKPOINT_WAIT).await {
        Ok(Some(c)) => tracing::info!(size = c.size, "final evidence checkpoint signed"),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "no final evidence checkpoint; the next integrator covers these events")
        }
    }
    Ok(())
}

/// A fresh key for the demo agent at every start (keys are stored hashed,
/// so an old one cannot be shown again).
async fn demo_agent_key(app: &crate::api::App) -> anyhow::Result<String> {
    let store = app.gate.store();
    store
        .create_agent("demo-agent", "demo-owner@example.com", &Default::default())
        .await?;
    let key = crate::keys::new_api_key()?;
    store
        .add_api_key(
            &crate::keys::hash_api_key(&key),
            KeyRole::Agent,
            "demo-agent",
        )
        .await?;
    Ok(key)
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining");
}
