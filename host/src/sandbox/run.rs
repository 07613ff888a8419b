//! One evaluation: a fresh store and instance, classify then route, under
//! fuel, memory, deadline and output limits. Every failure becomes a
//! `PluginFailure`; the instance is dropped afterwards, whatever happened.

use std::time::{Duration, Instant};

use wasmtime::component::{ComponentExportIndex, ComponentType, Lower, ResourceTable, TypedFunc};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, StoreLimitsBuilder, Trap};

use super::actiongate::policy::types as wit;
use super::nonblocking::WouldWait;
use super::prepared::Prepared;
use super::{
    wasi, Busy, GuestState, Limits, MemoryLimiter, Plugin, PluginFailure, Policy, PolicyPre,
    Sandbox, Slot, EPOCH_TICK,
};
use crate::action::{Action, ApprovalRoute, Classification, PluginInfo, Risk, Route};

/// What the guest may print to stderr (its panic message) that we keep.
const STDERR_CAPTURE: usize = 4096;
/// Longest TTL a plugin may ask for.
const MAX_TTL_SECONDS: u32 = 7 * 24 * 3600;
/// A quorum beyond this is a bug, not a policy.
const MAX_QUORUM: u32 = 64;

/// A plugin's verdict on one action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub classification: Classification,
    pub route: Route,
}

/// The outcome of one evaluation with what it cost.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub outcome: Result<Decision, PluginFailure>,
    pub fuel_used: u64,
    pub duration: Duration,
}

impl Sandbox {
    /// Runs `classify` then `route` on a fresh instance of `plugin`, once
    /// one of its instance slots is free (waiting up to `slot_wait_ms`).
    /// On a blocking thread: the wait blocks, the evaluation never does.
    pub fn evaluate(&self, plugin: &Plugin, action: &Action) -> Result<Evaluation, Busy> {
        let slot = self.capacity.acquire(&plugin.sha256)?;
        self.evaluate_in(slot, plugin, action)
    }

    /// `evaluate` in a slot the caller holds already.
    pub fn evaluate_in(
        &self,
        slot: Slot,
        plugin: &Plugin,
        action: &Action,
    ) -> Result<Evaluation, Busy> {
        let limits = &plugin.limits;
        let prepared = self.preparer.take(plugin);
        let (evaluation, store) = self.evaluate_on(
            &plugin.pre,
            prepared,
            plugin,
            action,
            limits.fuel,
            limits.memory_bytes,
        )?;
        self.preparer.retire(store, slot, plugin);
        Ok(evaluation)
    }

    /// A slot for `plugin` if one is free now, without waiting.
    pub fn try_slot(&self, plugin: &Plugin) -> Option<Slot> {
        self.capacity.try_acquire(&plugin.sha256)
    }

    /// For an async worker, which must neither block nor be held long:
    /// `evaluate` on an instance whose imports all trap, with at most
    /// `inline_fuel`, if a slot is free now. `None` unless that decided the
    /// action; then run `evaluate` (from scratch) where blocking is fine. An
    /// evaluation that decides here made no import call and used no more
    /// fuel than it was given, so a full run, being deterministic, would
    /// decide the same.
    pub fn evaluate_inline(&self, plugin: &Plugin, action: &Action) -> Option<Evaluation> {
        let inline = plugin.inline.as_ref()?;
        // Outside the plugin's share (see `try_acquire_quick`).
        let slot = self.capacity.try_acquire_quick(&plugin.sha256)?;
        let fuel = self.config.inline_fuel.min(plugin.limits.fuel);
        // Nor may it grow memory past what stays resident between instances,
        // and at most 2 MiB: a memory bomb faulting in (or resetting) its
        // whole cap held an async worker for milliseconds before it fell
        // back to the blocking pool anyway.
        let memory = self
            .config
            .keep_resident_bytes
            .clamp(1 << 20, 2 << 20)
            .min(plugin.limits.memory_bytes);
        let (evaluation, store) = self
            .evaluate_on(inline, None, plugin, action, fuel, memory)
            .ok()?;
        drop(store);
        drop(slot);
        evaluation.outcome.is_ok().then_some(evaluation)
    }

    /// One evaluation on `prepared`, an instance of `plugin` made ahead with
    /// its full limits, or else on a new instance of `pre`. Returns the
    /// store too, for the caller to drop when it suits.
    fn evaluate_on(
        &self,
        pre: &PolicyPre<GuestState>,
        prepared: Option<Prepared>,
        plugin: &Plugin,
        action: &Action,
        fuel: u64,
        memory_bytes: usize,
    ) -> Result<(Evaluation, Store<GuestState>), Busy> {
        let started = Instant::now();
        let epoch_ns = action
            .requested_at
            .timestamp_nanos_opt()
            .unwrap_or(0)
            .max(0) as u64;
        let world = wasi::World {
            action_id: action.id.clone(),
            requested_at: Duration::from_nanos(epoch_ns),
        };
        let (mut store, instance) = match prepared {
            Some(Prepared {
                mut store,
                instance,
                ..
            }) => {
                debug_assert_eq!((fuel, memory_bytes), prepared_limits(plugin));
                // No guest code has seen the world yet (`prepared.rs`), and the
                // deadline counts from now, not from when it was made.
                store.data_mut().world = world;
                store.set_epoch_deadline(epoch_ticks(&plugin.limits));
                (store, Ok(instance))
            }
            None => {
                let mut store = new_store(&self.engine, world, &plugin.limits, fuel, memory_bytes);
                let instance = pre.instance_pre().instantiate(&mut store);
                (store, instance)
            }
        };
        let params = action.params.to_string();
        let requested_at = action.requested_at_rfc3339();
        let input = ActionArg::new(action, &params, &requested_at);
        let outcome = match instance {
            Ok(instance) => self.run(&mut store, &instance, plugin, &input),
            // The slots keep evaluations below the pool's size, so this is a
            // backstop; still the host's state, not the plugin's failure.
            Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                return Err(self.capacity.busy(&plugin.sha256, Duration::ZERO));
            }
            Err(e) => Err(self.failure(&store, &plugin.limits, e)),
        };
        let fuel_used = fuel - store.get_fuel().unwrap_or(0);
        let evaluation = Evaluation {
            outcome,
            fuel_used,
            duration: started.elapsed(),
        };
        Ok((evaluation, store))
    }

    fn run(
        &self,
        store: &mut Store<GuestState>,
        instance: &wasmtime::component::Instance,
        plugin: &Plugin,
        action: &ActionArg<'_>,
    ) -> Result<Decision, PluginFailure> {
        let limits = &plugin.limits;
        let exports = &plugin.exports;
        let (Some(classify), Some(route)) = (
            instance.get_func(&mut *store, exports.classify),
            instance.get_func(&mut *store, exports.route),
        ) else {
            return Err(invalid("the instance lacks classify or route"));
        };
        // SAFETY: `Exports::check` type-checked these exports of this very
        // component against these signatures when the plugin was loaded.
        let (classify, route) = unsafe {
            (
                TypedFunc::<ClassifyParams<'_>, ClassifyResults>::new_unchecked(classify),
                TypedFunc::<RouteParams<'_>, RouteResults>::new_unchecked(route),
            )
        };
        let (classification,) = classify
            .call(&mut *store, (action,))
            .map_err(|e| self.failure(store, limits, e))?;
        let classification = classification
            .map_err(|e| invalid(format!("classify returned an error: {}", clip(&e))))?;
        let (route,) = route
            .call(&mut *store, (action, &classification))
            .map_err(|e| self.failure(store, limits, e))?;
        let route = route.map_err(|e| invalid(format!("route returned an error: {}", clip(&e))))?;
        self.check_output(limits, &classification, &route)?;
        Ok(Decision {
            classification: from_wit_classification(classification),
            route: from_wit_route(route),
        })
    }

    /// Asks a freshly linked plugin who it is (at load time, once).
    pub(super) fn describe(
        &self,
        pre: &PolicyPre<GuestState>,
        limits: &Limits,
    ) -> Result<(PluginInfo, Exports), PluginFailure> {
        let world = wasi::World {
            action_id: "describe".into(),
            requested_at: Duration::ZERO,
        };
        let mut store = new_store(
            &self.engine,
            world,
            limits,
            limits.fuel,
            limits.memory_bytes,
        );
        let instance = pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| self.failure(&store, limits, e))?;
        let guest =
            Policy::new(&mut store, &instance).map_err(|e| self.failure(&store, limits, e))?;
        let exports = Exports::check(&mut store, &instance)?;
        let info = guest
            .call_describe(&mut store)
            .map_err(|e| self.failure(&store, limits, e))?;
        let size = info.name.len()
            + info.version.len()
            + info.kinds.iter().map(String::len).sum::<usize>();
        if size > limits.output_bytes || info.name.is_empty() {
            return Err(invalid("describe returned an empty name or oversized info"));
        }
        Ok((
            PluginInfo {
                name: info.name,
                version: info.version,
                kinds: info.kinds,
            },
            exports,
        ))
    }

    /// Downcasts a wasmtime error once into the typed failure.
    fn failure(
        &self,
        store: &Store<GuestState>,
        limits: &Limits,
        error: wasmtime::Error,
    ) -> PluginFailure {
        if store.data().limiter.exceeded {
            return PluginFailure::OutOfMemory {
                limit_bytes: limits.memory_bytes,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => return PluginFailure::OutOfFuel { fuel: limits.fuel },
            Some(Trap::Interrupt) => return PluginFailure::deadline(limits.deadline_ms),
            _ => {}
        }
        if let Some(WouldWait { call }) = error.downcast_ref::<WouldWait>() {
            return PluginFailure::Deadline {
                deadline_ms: limits.deadline_ms,
                waited_in: Some(call.to_string()),
            };
        }
        let said = guest_stderr(store);
        let message = match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => format!("guest exited with status {}", exit.0),
            None => format!("{error:#}"),
        };
        PluginFailure::Trap {
            message: if said.is_empty() {
                message
            } else {
                format!("{said} ({message})")
            },
        }
    }

    fn check_output(
        &self,
        limits: &Limits,
        c: &wit::Classification,
        route: &wit::Route,
    ) -> Result<(), PluginFailure> {
        let strings = |v: &[String]| v.iter().map(String::len).sum::<usize>();
        let mut size = strings(&c.reasons) + strings(&c.tags);
        match route {
            wit::Route::Allow => {}
            wit::Route::Deny(reason) => size += reason.len(),
            wit::Route::RequireApproval(a) => {
                size +=
                    strings(&a.groups) + strings(&a.modifiable_params) + strings(&a.escalate_to);
                if a.groups.is_empty() || a.groups.iter().any(String::is_empty) {
                    return Err(invalid("require-approval names no approver group"));
                }
                if a.quorum == 0 || a.quorum > MAX_QUORUM {
                    return Err(invalid(format!(
                        "quorum {} is outside 1..={MAX_QUORUM}",
                        a.quorum
                    )));
                }
                if a.ttl_seconds == 0 || a.ttl_seconds > MAX_TTL_SECONDS {
                    return Err(invalid(format!(
                        "ttl-seconds {} is outside 1..={MAX_TTL_SECONDS}",
                        a.ttl_seconds
                    )));
                }
            }
        }
        if size > limits.output_bytes {
            return Err(invalid(format!(
                "output is {size} bytes, over the {}-byte cap",
                limits.output_bytes
            )));
        }
        Ok(())
    }
}

/// The fuel and memory cap an evaluation on the blocking pool runs with, and
/// so a prepared instance is made with.
fn prepared_limits(plugin: &Plugin) -> (u64, usize) {
    (plugin.limits.fuel, plugin.limits.memory_bytes)
}

/// A store for an instance of `plugin` made before its action is known: the
/// world is set when an action takes it (`evaluate_on`).
pub(super) fn prepared_store(engine: &Engine, plugin: &Plugin) -> Store<GuestState> {
    let (fuel, memory_bytes) = prepared_limits(plugin);
    let unset = wasi::World {
        action_id: String::new(),
        requested_at: Duration::ZERO,
    };
    new_store(engine, unset, &plugin.limits, fuel, memory_bytes)
}

fn new_store(
    engine: &Engine,
    world: wasi::World,
    limits: &Limits,
    fuel: u64,
    memory_bytes: usize,
) -> Store<GuestState> {
    let state = GuestState {
        wasi: None,
        world,
        stderr: wasi::Capture::new(STDERR_CAPTURE),
        table: ResourceTable::new(),
        limiter: MemoryLimiter {
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(limits.core_instances as usize)
                .trap_on_grow_failure(true)
                .build(),
            exceeded: false,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_fuel(fuel).expect("fuel is enabled on the engine");
    store.set_epoch_deadline(epoch_ticks(limits));
    store
}

/// The wall-clock deadline in epoch ticks from now.
fn epoch_ticks(limits: &Limits) -> u64 {
    limits.deadline_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

/// The panic message the guest printed, without the backtrace hint.
fn guest_stderr(store: &Store<GuestState>) -> String {
    let bytes = store.data().stderr.contents();
    let text = String::from_utf8_lossy(&bytes);
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    clip(kept.join(" ").trim())
}

fn invalid(reason: impl Into<String>) -> PluginFailure {
    PluginFailure::InvalidOutput {
        reason: reason.into(),
    }
}

/// Plugin-supplied text quoted in a failure is kept short.
fn clip(s: &str) -> String {
    const MAX: usize = 512;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The WIT `action` lowered straight from the host's `Action`, borrowing its
/// strings: converting to the owned bindgen type first copied every string
/// (about 7% of an evaluation).
#[derive(ComponentType, Lower)]
#[component(record)]
struct ActionArg<'a> {
    id: &'a str,
    kind: &'a str,
    agent: PrincipalArg<'a>,
    #[component(name = "on-behalf-of")]
    on_behalf_of: Option<&'a str>,
    resource: &'a str,
    params: &'a str,
    justification: Option<&'a str>,
    context: Vec<(&'a str, &'a str)>,
    #[component(name = "requested-at")]
    requested_at: &'a str,
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct PrincipalArg<'a> {
    id: &'a str,
    attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> ActionArg<'a> {
    fn new(action: &'a Action, params: &'a str, requested_at: &'a str) -> Self {
        let pairs = |map: &'a std::collections::BTreeMap<String, String>| {
            map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
        };
        ActionArg {
            id: &action.id,
            kind: &action.kind,
            agent: PrincipalArg {
                id: &action.agent.id,
                attributes: pairs(&action.agent.attributes),
            },
            on_behalf_of: action.on_behalf_of.as_deref(),
            resource: &action.resource,
            params,
            justification: action.justification.as_deref(),
            context: pairs(&action.context),
            requested_at,
        }
    }
}

type ClassifyParams<'a> = (&'a ActionArg<'a>,);
type ClassifyResults = (Result<wit::Classification, String>,);
type RouteParams<'a> = (&'a ActionArg<'a>, &'a wit::Classification);
type RouteResults = (Result<wit::Route, String>,);

/// Where `classify` and `route` sit in a plugin's component, found and
/// type-checked once at load so an evaluation neither looks them up by name
/// nor type-checks them again.
pub(super) struct Exports {
    classify: ComponentExportIndex,
    route: ComponentExportIndex,
}

impl Exports {
    fn check(
        store: &mut Store<GuestState>,
        instance: &wasmtime::component::Instance,
    ) -> Result<Self, PluginFailure> {
        let load = |e: wasmtime::Error| PluginFailure::load(format!("{e:#}"));
        let index = |store: &mut Store<GuestState>, name: &str| {
            instance
                .get_export_index(&mut *store, None, name)
                .ok_or_else(|| PluginFailure::load(format!("no `{name}` export")))
        };
        let classify = index(store, "classify")?;
        let route = index(store, "route")?;
        instance
            .get_typed_func::<ClassifyParams<'_>, ClassifyResults>(&mut *store, &classify)
            .map_err(load)?;
        instance
            .get_typed_func::<RouteParams<'_>, RouteResults>(&mut *store, &route)
            .map_err(load)?;
        Ok(Exports { classify, route })
    }
}

fn from_wit_classification(c: wit::Classification) -> Classification {
    Classification {
        risk: match c.risk {
            wit::Risk::Low => Risk::Low,
            wit::Risk::Medium => Risk::Medium,
            wit::Risk::High => Risk::High,
            wit::Risk::Critical => Risk::Critical,
        },
        reasons: c.reasons,
        tags: c.tags,
    }
}

fn from_wit_route(r: wit::Route) -> Route {
    match r {
        wit::Route::Allow => Route::Allow,
        wit::Route::Deny(reason) => Route::Deny { reason },
        wit::Route::RequireApproval(a) => Route::RequireApproval(ApprovalRoute {
            groups: a.groups,
            quorum: a.quorum,
            ttl_seconds: a.ttl_seconds,
            modifiable_params: a.modifiable_params,
            escalate_to: a.escalate_to,
        }),
    }
}
