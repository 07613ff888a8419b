//! A deny-all, deterministic WASI for std guests. No files, sockets, env or
//! args; the clocks read the action's requested-at; random is seeded from
//! the action id. Same action in, same world seen: that is what makes a
//! decision replayable. Must never expose anything of the host.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::ChaCha20Rng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// Interface families a policy component may import. Everything else (the
/// filesystem, sockets, HTTP, any custom host interface) is refused at load.
const ALLOWED_IMPORTS: &[&str] = &[
    "wasi:cli/environment@0.2",
    "wasi:cli/exit@0.2",
    "wasi:cli/stdin@0.2",
    "wasi:cli/stdout@0.2",
    "wasi:cli/stderr@0.2",
    "wasi:cli/terminal-input@0.2",
    "wasi:cli/terminal-output@0.2",
    "wasi:cli/terminal-stdin@0.2",
    "wasi:cli/terminal-stdout@0.2",
    "wasi:cli/terminal-stderr@0.2",
    "wasi:io/error@0.2",
    "wasi:io/poll@0.2",
    "wasi:io/streams@0.2",
    "wasi:clocks/wall-clock@0.2",
    "wasi:clocks/monotonic-clock@0.2",
    "wasi:random/random@0.2",
    "wasi:random/insecure@0.2",
    "wasi:random/insecure-seed@0.2",
];

/// Whether the sandbox answers this WASI import. `name` is a full import
/// name such as `wasi:io/streams@0.2.6`; any 0.2.x patch version is fine.
pub fn is_allowed_wasi_import(name: &str) -> bool {
    ALLOWED_IMPORTS.iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// The clock a plugin sees: always the instant the action was requested.
struct FrozenWallClock(Duration);

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// What the monotonic clock reads, throughout every evaluation.
pub const FROZEN_MONOTONIC_NOW: u64 = 0;

/// Monotonic time does not advance inside an evaluation (so a wait for a
/// later instant never ends: see `nonblocking`).
struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        FROZEN_MONOTONIC_NOW
    }
}

/// Stdout and stderr: sinks that take every write at once and never block
/// or fill up; the first `capacity` bytes are kept (stderr's are the panic
/// message), the rest are dropped.
#[derive(Clone)]
pub struct Capture {
    kept: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl Capture {
    pub fn new(capacity: usize) -> Self {
        Capture {
            kept: Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    /// The bytes kept so far.
    pub fn contents(&self) -> Vec<u8> {
        self.kept.lock().unwrap().clone()
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let mut kept = self.kept.lock().unwrap();
        let room = self.capacity.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this, and the sandbox links WASIp2 alone.
        Box::new(tokio::io::sink())
    }
}

fn seed(purpose: &str, action_id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"actiongate-sandbox-random\0")
        .chain_update(purpose.as_bytes())
        .chain_update(b"\0")
        .chain_update(action_id.as_bytes())
        .finalize()
        .into()
}

/// What one evaluation's WASI context is made from.
pub struct World {
    pub action_id: String,
    pub requested_at: Duration,
}

impl World {
    /// Builds the WASI context for one evaluation. `stderr` captures what
    /// the guest prints (its panic message) up to its capacity.
    pub fn ctx(&self, stderr: Capture) -> WasiCtx {
        deterministic_ctx(&self.action_id, self.requested_at, stderr)
    }
}

fn deterministic_ctx(action_id: &str, requested_at: Duration, stderr: Capture) -> WasiCtx {
    let insecure_seed = seed("insecure-seed", action_id);
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(Capture::new(0))
        .stderr(stderr)
        .wall_clock(FrozenWallClock(requested_at))
        .monotonic_clock(FrozenMonotonicClock)
        .secure_random(ChaCha20Rng::from_seed(seed("random", action_id)))
        .insecure_random(ChaCha20Rng::from_seed(seed("insecure", action_id)))
        .insecure_random_seed(u128::from_le_bytes(insecure_seed[..16].try_into().unwrap()))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_allowlist_matches_whole_interfaces_only() {
        assert!(is_allowed_wasi_import("wasi:io/streams@0.2.6"));
        assert!(is_allowed_wasi_import("wasi:cli/environment@0.2.0"));
        assert!(!is_allowed_wasi_import("wasi:io/streams@0.3.0"));
        assert!(!is_allowed_wasi_import("wasi:io/streams@0.20.0"));
        assert!(!is_allowed_wasi_import("wasi:filesystem/types@0.2.6"));
        assert!(!is_allowed_wasi_import("wasi:sockets/tcp@0.2.6"));
        assert!(!is_allowed_wasi_import("wasi:cli/environment-extra@0.2.0"));
    }
}
