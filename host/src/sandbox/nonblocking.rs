//! WASI calls that could wait, answered without waiting. Owns the sandbox's
//! own `wasi:io/poll`, the blocking `wasi:io/streams` calls, stream drops and
//! the monotonic clock's subscriptions; each polls its future once and must
//! never sleep, block on tokio, or hold a thread in real time.
//!
//! wasmtime-wasi's sync bindings run these calls on a tokio runtime until
//! they finish: a guest sleeping 10 s held its thread 10 s past the epoch
//! deadline (which only fires in wasm), and the same calls panicked on an
//! async worker ("Cannot start a runtime from within a runtime"). Here every
//! pollable the sandbox hands out is ready at once (the sinks, the closed
//! stdin, a clock wait that is due) or never (a clock wait for later: the
//! clock is frozen, so it never comes). A call that would wait for "never"
//! ends the evaluation at once with `WouldWait`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::sync::io::streams::{
    Host as SyncStreams, StreamError as WitStreamError,
};
use wasmtime_wasi::p2::{
    subscribe, DynInputStream, DynOutputStream, DynPollable, Pollable, StreamResult,
};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi_io::bindings::wasi::io::streams::{HostInputStream, HostOutputStream};

use super::wasi::FROZEN_MONOTONIC_NOW;
use super::GuestState;

/// The WASI 0.2 release wasmtime-wasi 48 links: each guest's `0.2.x`
/// imports resolve to it, so the overrides must be defined under it too
/// (the hostile fixtures' tests fail if they are not).
const WASI: &str = "0.2.12";

/// A WASI call that would have waited for something that can never happen
/// in the sandbox (a later instant on the frozen clock).
#[derive(Debug, thiserror::Error)]
#[error("`{call}` would wait for an instant the sandbox's frozen clock never reaches")]
pub struct WouldWait {
    pub call: &'static str,
}

/// Polls `future` once: its value if ready, `WouldWait` if it would wait.
fn once<F: Future>(call: &'static str, future: F) -> wasmtime::Result<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err(wasmtime::Error::new(WouldWait { call })),
    }
}

fn table<'a>(store: &'a mut StoreContextMut<'_, GuestState>) -> &'a mut ResourceTable {
    store.data_mut().ctx().table
}

/// A stream result as the guest sees it (a trap stays a trap).
fn lowered<V>(
    table: &mut ResourceTable,
    result: StreamResult<V>,
) -> wasmtime::Result<Result<V, WitStreamError>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => Ok(Err(table.convert_stream_error(e)?)),
    }
}

/// A wait on the frozen monotonic clock: due now, or never.
enum FrozenWait {
    Due,
    Never,
}

#[wasmtime_wasi::async_trait]
impl Pollable for FrozenWait {
    async fn ready(&mut self) {
        if let FrozenWait::Never = self {
            std::future::pending::<()>().await
        }
    }
}

fn frozen_wait(table: &mut ResourceTable, due: bool) -> wasmtime::Result<Resource<DynPollable>> {
    let wait = table.push(if due {
        FrozenWait::Due
    } else {
        FrozenWait::Never
    })?;
    subscribe(table, wait)
}

/// Replaces, in a linker that already holds wasmtime-wasi's sync WASI,
/// every function that could wait with one that never does.
pub(super) fn link(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    link_poll(linker)?;
    link_streams(linker)?;
    link_clock(linker)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn link_poll(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(&format!("wasi:io/poll@{WASI}"))?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, GuestState>, (list,): (Vec<Resource<DynPollable>>,)| {
            let table = table(&mut store);
            Ok((once("wasi:io/poll.poll", table.poll(list))??,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.ready",
        |mut store: StoreContextMut<'_, GuestState>, (pollable,): (Resource<DynPollable>,)| {
            let table = table(&mut store);
            Ok((once("wasi:io/poll.pollable.ready", table.ready(pollable))??,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, GuestState>, (pollable,): (Resource<DynPollable>,)| {
            let table = table(&mut store);
            once("wasi:io/poll.pollable.block", table.block(pollable))??;
            Ok(())
        },
    )?;
    Ok(())
}

fn link_streams(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let mut streams = linker.instance(&format!("wasi:io/streams@{WASI}"))?;
    streams.resource(
        "output-stream",
        ResourceType::host::<DynOutputStream>(),
        |mut store: StoreContextMut<'_, GuestState>, rep: u32| {
            let table = table(&mut store);
            let stream = Resource::<DynOutputStream>::new_own(rep);
            once(
                "wasi:io/streams.output-stream.drop",
                HostOutputStream::drop(table, stream),
            )?
        },
    )?;
    streams.resource(
        "input-stream",
        ResourceType::host::<DynInputStream>(),
        |mut store: StoreContextMut<'_, GuestState>, rep: u32| {
            let table = table(&mut store);
            let stream = Resource::<DynInputStream>::new_own(rep);
            once(
                "wasi:io/streams.input-stream.drop",
                HostInputStream::drop(table, stream),
            )?
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store: StoreContextMut<'_, GuestState>,
         (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let table = table(&mut store);
            let call = "wasi:io/streams.output-stream.blocking-write-and-flush";
            let result = once(call, table.blocking_write_and_flush(stream, bytes))?;
            Ok((lowered(table, result)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut store: StoreContextMut<'_, GuestState>,
         (stream, len): (Resource<DynOutputStream>, u64)| {
            let table = table(&mut store);
            let call = "wasi:io/streams.output-stream.blocking-write-zeroes-and-flush";
            let result = once(call, table.blocking_write_zeroes_and_flush(stream, len))?;
            Ok((lowered(table, result)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store: StoreContextMut<'_, GuestState>, (stream,): (Resource<DynOutputStream>,)| {
            let table = table(&mut store);
            let call = "wasi:io/streams.output-stream.blocking-flush";
            let result = once(call, table.blocking_flush(stream))?;
            Ok((lowered(table, result)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut store: StoreContextMut<'_, GuestState>,
         (dst, src, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let call = "wasi:io/streams.output-stream.blocking-splice";
            let result = once(call, table.blocking_splice(dst, src, len))?;
            Ok((lowered(table, result)?,))
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-read",
        |mut store: StoreContextMut<'_, GuestState>,
         (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let call = "wasi:io/streams.input-stream.blocking-read";
            let result = once(call, table.blocking_read(stream, len))?;
            Ok((lowered(table, result)?,))
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut store: StoreContextMut<'_, GuestState>,
         (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let call = "wasi:io/streams.input-stream.blocking-skip";
            let result = once(call, table.blocking_skip(stream, len))?;
            Ok((lowered(table, result)?,))
        },
    )?;
    Ok(())
}

fn link_clock(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let mut clock = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI}"))?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, GuestState>, (when,): (u64,)| {
            let table = table(&mut store);
            // The frozen clock reads 0, so only 0 is due; written as `<=`
            // so it stays right if the clock is ever frozen elsewhere.
            #[allow(clippy::absurd_extreme_comparisons)]
            let due = when <= FROZEN_MONOTONIC_NOW;
            Ok((frozen_wait(table, due)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, GuestState>, (duration,): (u64,)| {
            let table = table(&mut store);
            Ok((frozen_wait(table, duration == 0)?,))
        },
    )?;
    Ok(())
}
