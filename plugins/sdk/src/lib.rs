//! The guest SDK for actiongate policy plugins.
//!
//! A plugin author writes rules, nothing else:
//!
//! ```ignore
//! #![no_std]
//!
//! use actiongate_sdk::prelude::*;
//!
//! struct MyPolicy;
//!
//! impl Policy for MyPolicy {
//!     fn describe() -> PluginInfo { PluginInfo::new("my-policy", "0.1.0", &["db.export"]) }
//!     fn classify(action: &Action) -> Result<Classification, String> {
//!         let rows: u64 = action.params()?.require("rows")?;
//!         Ok(Classification::new(if rows > 1000 { Risk::High } else { Risk::Low }))
//!     }
//!     fn route(_: &Action, c: &Classification) -> Result<Route, String> {
//!         Ok(match c.risk {
//!             Risk::Low => Route::Allow,
//!             _ => Approval::from(&["data-owners"], 1).into(),
//!         })
//!     }
//! }
//!
//! export_policy!(MyPolicy, no_std);
//! ```
//!
//! The SDK never touches the host: everything a plugin needs arrives in the
//! `Action`. Errors returned from `classify` or `route` fail closed.
//!
//! Plugins are best written `#![no_std]`, as above: the prelude brings
//! `String`, `Vec`, `format!` and `vec!` from `alloc`, and
//! `export_policy!(P, no_std)` adds the panic handler. A std plugin (plain
//! `use actiongate_sdk::*;` and `export_policy!(P)`) works the same, but
//! std makes its component import the whole WASI CLI world, which makes
//! every evaluation about a tenth slower. Either way the SDK's allocator
//! (see `heap.rs`) serves the plugin's allocations.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_arch = "wasm32")]
mod heap;
mod params;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod runtime;
mod time;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

pub use params::Params;
pub use time::Instant;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/policy@0.1.0",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "actiongate_sdk::bindings",
    });
}

pub use bindings::actiongate::policy::types::{
    Action, Approval, Classification, PluginInfo, Principal, Risk, Route,
};

/// Everything a `#![no_std]` plugin needs in scope: the SDK's items and
/// what std's prelude would have given it from `alloc`.
pub mod prelude {
    pub use crate::{
        export_policy, rank, Action, Approval, Classification, Instant, Params, PluginInfo, Policy,
        Principal, Risk, Route,
    };
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}

/// The rules of one policy plugin. Implement it on a unit struct and pass
/// that struct to [`export_policy!`].
pub trait Policy {
    /// Name, version and the action-kind patterns the plugin is written for.
    fn describe() -> PluginInfo;
    /// Judge how risky the action is. An `Err` fails closed.
    fn classify(action: &Action) -> Result<Classification, String>;
    /// Decide what happens to the classified action. An `Err` fails closed.
    fn route(action: &Action, classification: &Classification) -> Result<Route, String>;
}

/// Exports a [`Policy`] implementation as the plugin's component exports.
/// In a `#![no_std]` plugin, write `export_policy!(P, no_std)`: that also
/// defines the panic handler (the message goes to stderr, where the host
/// reports it) and `cabi_realloc`, both of which std provides otherwise.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty, no_std) => {
        $crate::export_policy!($policy);

        #[panic_handler]
        fn __actiongate_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::runtime::panic(info)
        }

        /// # Safety
        /// Called only by the host, with the canonical ABI's contract.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn cabi_realloc(
            old_ptr: *mut u8,
            old_len: usize,
            align: usize,
            new_len: usize,
        ) -> *mut u8 {
            // SAFETY: forwarded unchanged; see `runtime::cabi_realloc`.
            unsafe { $crate::runtime::cabi_realloc(old_ptr, old_len, align, new_len) }
        }
    };
    ($policy:ty) => {
        #[doc(hidden)]
        struct __ActiongateExport;

        impl $crate::bindings::Guest for __ActiongateExport {
            fn describe() -> $crate::PluginInfo {
                <$policy as $crate::Policy>::describe()
            }
            fn classify(
                action: $crate::Action,
            ) -> Result<$crate::Classification, $crate::prelude::String> {
                <$policy as $crate::Policy>::classify(&action)
            }
            fn route(
                action: $crate::Action,
                classification: $crate::Classification,
            ) -> Result<$crate::Route, $crate::prelude::String> {
                <$policy as $crate::Policy>::route(&action, &classification)
            }
        }

        $crate::bindings::__export_policy_world!(
            __ActiongateExport with_types_in $crate::bindings
        );
    };
}

impl Action {
    /// The params, parsed. The host guarantees they are a JSON object.
    pub fn params(&self) -> Result<Params, String> {
        Params::parse(&self.params)
    }

    /// The instant the host received the action (also what the sandbox clock reads).
    pub fn requested_at(&self) -> Result<Instant, String> {
        Instant::parse(&self.requested_at)
    }

    /// A context value the agent supplied, e.g. `session` or `model`.
    pub fn context(&self, key: &str) -> Option<&str> {
        lookup(&self.context, key)
    }
}

impl Principal {
    /// An attribute of the authenticated agent, e.g. `owner`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        lookup(&self.attributes, key)
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl PluginInfo {
    pub fn new(name: &str, version: &str, kinds: &[&str]) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            kinds: strings(kinds),
        }
    }
}

impl Classification {
    /// A classification with no reasons or tags yet.
    pub fn new(risk: Risk) -> Self {
        Classification {
            risk,
            reasons: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Raises the risk to `risk` if it is higher, and records why.
    pub fn raise(&mut self, risk: Risk, tag: &str, reason: impl Into<String>) {
        if rank(risk) > rank(self.risk) {
            self.risk = risk;
        }
        self.tags.push(tag.into());
        self.reasons.push(reason.into());
    }

    /// Whether `tag` was recorded.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Orders risks from low to critical.
pub fn rank(risk: Risk) -> u8 {
    match risk {
        Risk::Low => 0,
        Risk::Medium => 1,
        Risk::High => 2,
        Risk::Critical => 3,
    }
}

impl Approval {
    /// `quorum` distinct approvers from any of `groups`, one hour to decide.
    pub fn from(groups: &[&str], quorum: u32) -> Self {
        Approval {
            groups: strings(groups),
            quorum,
            ttl_seconds: 3600,
            modifiable_params: Vec::new(),
            escalate_to: Vec::new(),
        }
    }

    pub fn ttl_seconds(mut self, ttl: u32) -> Self {
        self.ttl_seconds = ttl;
        self
    }

    /// Top-level params an approver may change (the change is re-evaluated).
    pub fn modifiable(mut self, params: &[&str]) -> Self {
        self.modifiable_params = strings(params);
        self
    }

    /// Groups told when nobody has decided by half the TTL.
    pub fn escalate_to(mut self, groups: &[&str]) -> Self {
        self.escalate_to = strings(groups);
        self
    }
}

impl From<Approval> for Route {
    fn from(approval: Approval) -> Self {
        Route::RequireApproval(approval)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
