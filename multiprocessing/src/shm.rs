//! Python's `Value` and `Array`, under the hood: memory that stays shared after
//! `fork`.
//!
//! `fork` copies the parent's memory: from then on each process changes its own
//! copy (copy-on-write makes that cheap, not shared). A mapping made with
//! `mmap(MAP_SHARED | MAP_ANONYMOUS)` is the exception: the child inherits the
//! *same* physical pages, so a store by one process is seen by the other.
//! Anonymous, it has no name: nothing appears in `/dev/shm` and nothing is left
//! behind when the last process using it ends. (Python's `Value` does the same with
//! an arena in a temporary file.)

use lesson_kit::{Context, Failure};
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// Types that may live in memory shared between processes: plain data reached only
/// through atomic operations, with no pointers (an address in one process means
/// nothing in another, or points to that process's private copy) and no `Drop`.
///
/// # Safety
/// Implement it only for such types: every byte is data, every access goes through
/// an atomic, and the value written at creation is valid in every process.
pub unsafe trait ProcessShared {}

// SAFETY: atomics of plain integers: no pointers, no Drop, any concurrent access is
// an atomic operation.
unsafe impl ProcessShared for AtomicI32 {}
// SAFETY: as above.
unsafe impl ProcessShared for AtomicU32 {}
// SAFETY: as above.
unsafe impl ProcessShared for AtomicU64 {}
// SAFETY: an array of shareable values is shareable: it adds no pointer.
unsafe impl<T: ProcessShared, const N: usize> ProcessShared for [T; N] {}

// ANCHOR: shared
/// A value of type `T` in its own `MAP_SHARED | MAP_ANONYMOUS` mapping.
pub struct Shared<T: ProcessShared> {
    ptr: NonNull<T>,
}

impl<T: ProcessShared> Shared<T> {
    /// Maps fresh shared pages and moves `value` into them.
    pub fn new(value: T) -> Result<Shared<T>, Failure> {
        let len =
            NonZeroUsize::new(size_of::<T>().max(1)).unwrap_or(NonZeroUsize::MIN);
        // SAFETY: a new anonymous mapping at an address the kernel chooses touches
        // no existing memory.
        let pages = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .context("mmap MAP_SHARED|MAP_ANONYMOUS")?;
        let ptr = pages.cast::<T>();
        // SAFETY: the mapping is page-aligned (enough for any T), at least
        // size_of::<T>() bytes long, writable, and nothing else refers to it yet.
        unsafe { ptr.write(value) };
        Ok(Shared { ptr })
    }
}

impl<T: ProcessShared> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `ptr` was initialised in `new` and stays mapped until `drop`;
        // other processes change it only through atomics (ProcessShared), so a
        // shared reference is sound.
        unsafe { self.ptr.as_ref() }
    }
}
// ANCHOR_END: shared

impl<T: ProcessShared> Drop for Shared<T> {
    fn drop(&mut self) {
        let len = size_of::<T>().max(1);
        // SAFETY: the mapping was made by `new` with this length and no reference
        // into it outlives `self`. Other processes keep their own mapping of the
        // same pages.
        let _ = unsafe { munmap(self.ptr.cast(), len) };
    }
}
