//! The guest's allocator: a bump allocator over the free end of linear
//! memory. It must never hand out memory twice; it may never give any back.
//!
//! The host runs every evaluation in a fresh instance that lives for
//! microseconds, so reusing freed memory costs more than it saves: with
//! wasi-libc's malloc, allocating and freeing was half of all the
//! instructions db-export executed. Here `free` only takes back the most
//! recent allocation, and `realloc` grows the most recent one in place,
//! which covers the way `String` and `Vec` grow. Everything else is
//! reclaimed when the instance is dropped. A plugin that allocates more
//! than the host's memory cap within one evaluation fails with
//! out-of-memory, as it would with any allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

const PAGE: usize = 65536;

#[global_allocator]
static HEAP: Bump = Bump {
    next: Cell::new(0),
    end: Cell::new(0),
    last: Cell::new(0),
};

struct Bump {
    /// First free byte; 0 until the first allocation.
    next: Cell<usize>,
    /// End of linear memory.
    end: Cell<usize>,
    /// Start of the most recent allocation.
    last: Cell<usize>,
}

// SAFETY: a wasm32-wasip2 guest has one thread.
unsafe impl Sync for Bump {}

unsafe extern "C" {
    /// Where the linker put the end of static data (and of the stack).
    static __heap_base: u8;
}

impl Bump {
    fn take(&self, size: usize, align: usize) -> *mut u8 {
        if self.next.get() == 0 {
            self.next.set(core::ptr::addr_of!(__heap_base) as usize);
            self.end.set(core::arch::wasm32::memory_size(0) * PAGE);
        }
        let start = match self.next.get().checked_next_multiple_of(align) {
            Some(start) => start,
            None => return core::ptr::null_mut(),
        };
        match start.checked_add(size) {
            Some(next) if self.reach(next) => {
                self.next.set(next);
                self.last.set(start);
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }

    /// Grows linear memory so that it extends to at least `to`.
    fn reach(&self, to: usize) -> bool {
        let end = self.end.get();
        if to <= end {
            return true;
        }
        let pages = (to - end).div_ceil(PAGE);
        if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.end.set(end + pages * PAGE);
        true
    }

    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize == self.last.get() && self.last.get() + size == self.next.get()
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.take(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.is_last(ptr, layout.size()) {
            self.next.set(self.last.get());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.is_last(ptr, layout.size()) {
            if let Some(next) = self.last.get().checked_add(new_size) {
                if self.reach(next) {
                    self.next.set(next);
                    return ptr;
                }
            }
            return core::ptr::null_mut();
        }
        let new = self.take(new_size, layout.align());
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct (the old one is not
            // the last allocation, the new one is), and each holds at least
            // the bytes copied.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
