//! `actiongate audit …`: auditors' checks. Read-only: never migrates or writes.
//! Exit codes: 0 intact, 1 integrity failure found, 2 could not check.

use clap::Subcommand;

use super::GlobalOpts;
use crate::audit::verify;
use crate::evidence::LogKey;
use crate::store::{Store, StoreOptions};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every leaf and the tree, check every checkpoint's signature and
    /// the consistency between consecutive checkpoints; name the first bad seq.
    Verify {
        /// Trusted verifier key; defaults to the one derived from the log key file.
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
    },
}

pub async fn run(
    cmd: AuditCommand,
    global: &GlobalOpts,
    out: &mut (dyn std::io::Write + Send),
) -> u8 {
    match cmd {
        AuditCommand::Verify { vkey } => match verify_cmd(vkey, global).await {
            Ok(report) => {
                let _ = write!(out, "{report}");
                if report.is_ok() {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                let _ = writeln!(out, "ERROR: {e}");
                2
            }
        },
    }
}

async fn verify_cmd(vkey: Option<String>, global: &GlobalOpts) -> Result<verify::Report, String> {
    let vkey = match vkey {
        Some(v) => v,
        None => {
            let cfg = global.evidence_config().map_err(|e| e.to_string())?;
            LogKey::load(&cfg.key_path, &cfg.origin)
                .map_err(|e| e.to_string())?
                .verifier_key()
                .to_owned()
        }
    };
    let url = global.database_url().map_err(|e| e.to_string())?;
    let opts = StoreOptions {
        migrate: false,
        ..StoreOptions::default()
    };
    let store = Store::connect_with(&url, &opts)
        .await
        .map_err(|e| e.to_string())?;
    verify::verify(&store, &vkey)
        .await
        .map_err(|e| e.to_string())
}
