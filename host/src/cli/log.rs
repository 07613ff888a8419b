//! `actiongate log …`: the evidence log's key. Never prints the private key.

use clap::Subcommand;

use super::GlobalOpts;
use crate::evidence::LogKey;

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the log's verifier key (C2SP `name+keyhash+base64`), generating the key if needed.
    Key,
}

pub async fn run(
    cmd: LogCommand,
    global: &GlobalOpts,
    out: &mut (dyn std::io::Write + Send),
) -> u8 {
    match cmd {
        LogCommand::Key => {
            let cfg = match global.evidence_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("actiongate: {e}");
                    return 2;
                }
            };
            match LogKey::load_or_generate(&cfg.key_path, &cfg.origin) {
                Ok(k) => {
                    let _ = writeln!(out, "{}", k.verifier_key());
                    0
                }
                Err(e) => {
                    eprintln!("actiongate: {e}");
                    2
                }
            }
        }
    }
}
