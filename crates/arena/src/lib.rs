//! The allocator of the short-lived static binaries (`codex-execve-wrapper`,
//! once per exec; `codex-sandbox-exec`, once per call): a bump arena in
//! `.bss`, falling back to the system allocator (musl's) for what does not
//! fit.
//!
//! musl's allocator sets up its heap with `brk` and `mmap` on first use
//! and unmaps emptied groups at once: in the wrapper that was four to six
//! system calls and as many page faults per exec (about 30 µs on the
//! development VM), in the launcher about thirty `mmap`/`munmap` calls
//! before the command's exec. The arena costs neither: `.bss` is mapped by
//! the kernel at exec and its pages are faulted in only when touched.
//! Freed arena memory is never reused: these processes exec (or end) soon
//! after their allocations, and a long-lived one (the launcher staying as
//! supervisor) only falls back to the system allocator once the arena is
//! used up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The alignment malloc guarantees on x86_64 and aarch64 (`max_align_t`).
const MIN_ALIGN: usize = 16;

#[repr(C, align(4096))]
struct Bytes<const SIZE: usize>(UnsafeCell<[u8; SIZE]>);

/// An arena of `SIZE` bytes; larger requests (a huge environment), and
/// those that no longer fit, go to the system allocator.
pub struct Arena<const SIZE: usize> {
    bytes: Bytes<SIZE>,
    /// Offset of the first free byte.
    next: AtomicUsize,
}

// SAFETY: the bytes are only reached through `alloc`, which hands each
// range out to exactly one caller (the cursor is advanced atomically).
unsafe impl<const SIZE: usize> Sync for Arena<SIZE> {}

impl<const SIZE: usize> Default for Arena<SIZE> {
    fn default() -> Self {
        Arena::new()
    }
}

impl<const SIZE: usize> Arena<SIZE> {
    pub const fn new() -> Arena<SIZE> {
        Arena {
            bytes: Bytes(UnsafeCell::new([0; SIZE])),
            next: AtomicUsize::new(0),
        }
    }

    fn base(&self) -> *mut u8 {
        self.bytes.0.get().cast()
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let base = self.base() as usize;
        (base..base + SIZE).contains(&(ptr as usize))
    }

    /// A fresh range of `layout`, or `None` when the arena is full.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        // At least malloc's alignment: code in the wild (nix's control
        // message buffers, a `Vec<u8>` read as `cmsghdr`s) relies on it.
        let align = layout.align().max(MIN_ALIGN);
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            // `base` is page-aligned, so aligning the offset aligns the
            // address (alignments are powers of two).
            let start = next.checked_next_multiple_of(align)?;
            let end = start.checked_add(layout.size()).filter(|&e| e <= SIZE)?;
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // SAFETY: start <= end <= SIZE: within the arena.
                Ok(_) => return Some(unsafe { self.base().add(start) }),
                Err(current) => next = current,
            }
        }
    }
}

// SAFETY (why `unsafe` here): `GlobalAlloc` is an unsafe trait. Every block
// handed out is either a range of the arena given to no one else, sized and
// aligned as asked (see `bump`), or comes from `System`; `dealloc` returns
// to `System` exactly the blocks that came from it. Alignments beyond the
// arena's page alignment go to `System`.
unsafe impl<const SIZE: usize> GlobalAlloc for Arena<SIZE> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 4096
            && let Some(ptr) = self.bump(layout)
        {
            return ptr;
        }
        // SAFETY: forwarded with the caller's layout (non-zero size, as
        // GlobalAlloc requires of the caller).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 4096
            && let Some(ptr) = self.bump(layout)
        {
            // Never-reused `.bss`: still all zeros.
            return ptr;
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.contains(ptr) {
            // SAFETY: not from the arena, so from `System.alloc` with this
            // layout (the caller's contract).
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}
