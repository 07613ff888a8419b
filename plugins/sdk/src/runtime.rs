//! What std would otherwise provide a guest, for plugins built `#![no_std]`
//! (see [`export_policy!`](crate::export_policy)): the panic handler and the
//! canonical ABI's `cabi_realloc`. A no_std plugin imports only the two WASI
//! functions the panic handler writes with; a std one imports the whole CLI
//! world that std's panic and I/O machinery reaches, and every import is
//! work for the host on each fresh instance.

use core::fmt::Write as _;

use alloc::string::String;

// `memcmp` and friends: in a std guest they come from wasi-libc along with
// std; a no_std guest takes just these (they import nothing).
#[link(name = "c")]
unsafe extern "C" {}

/// Writes the panic message to stderr, where the host picks it up for the
/// `Trap` failure, then traps. The format follows std's default hook.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut text = String::new();
    let _ = match info.location() {
        Some(at) => writeln!(text, "panicked at {at}:\n{}", info.message()),
        None => writeln!(text, "panicked:\n{}", info.message()),
    };
    let _ = wasip2::cli::stderr::get_stderr().blocking_write_and_flush(text.as_bytes());
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocation entry point, which the host calls to pass
/// strings and lists into the guest.
///
/// # Safety
/// Called only by the host, with the canonical ABI's `realloc` contract.
pub unsafe fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{alloc, handle_alloc_error, realloc, Layout};
    // SAFETY: the canonical ABI passes a power-of-two `align`, and
    // `old_ptr`/`old_len` from an earlier call when `old_len` is not zero.
    unsafe {
        let layout;
        let ptr = if old_len == 0 {
            if new_len == 0 {
                return align as *mut u8;
            }
            layout = Layout::from_size_align_unchecked(new_len, align);
            alloc(layout)
        } else {
            layout = Layout::from_size_align_unchecked(old_len, align);
            realloc(old_ptr, layout, new_len)
        };
        if ptr.is_null() {
            handle_alloc_error(layout);
        }
        ptr
    }
}
