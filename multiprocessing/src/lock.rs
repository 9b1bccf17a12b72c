//! Python's `multiprocessing.Lock`, the Rust way: one 32-bit word in shared memory
//! and the `futex` system call.
//!
//! Why not `std::sync::Mutex`? A `Mutex` is a value in the memory of one process:
//! after `fork` each process has its own copy, and locking one copy does not stop
//! the process that holds the other. Even placed in shared memory it would not do:
//! it waits with `FUTEX_PRIVATE_FLAG`, which tells the kernel the word is seen by
//! one process only, so a waiter in another process would never be woken. This lock
//! uses the shared form.
//!
//! The word holds 0 (free), 1 (locked) or 2 (locked, and someone may be waiting).
//! The fast path is one compare-and-swap in user space; only a process that finds
//! the lock taken asks the kernel to sleep (`FUTEX_WAIT`), and only an unlock that
//! saw 2 asks it to wake one sleeper (`FUTEX_WAKE`). (Ulrich Drepper's "Futexes are
//! tricky", mutex 2.)
//!
//! Caveat: if a process dies holding the lock, the lock stays taken (a POSIX robust
//! mutex or an `fcntl` record lock would be released); here the parent's stop path
//! kills the children anyway.

use crate::shm::ProcessShared;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one `FUTEX_WAIT` sleeps at most, so a waiter can look at a stop flag.
const SLICE: Duration = Duration::from_millis(100);

// ANCHOR: lock
/// A lock that works across processes, once it lives in shared memory
/// ([`crate::shm::Shared`]).
#[repr(transparent)]
pub struct Lock {
    word: AtomicU32,
}

// SAFETY: one atomic u32, no pointer, no Drop.
unsafe impl ProcessShared for Lock {}

/// Held while it lives; dropping it unlocks.
pub struct Guard<'a> {
    lock: &'a Lock,
}

impl Lock {
    pub const fn new() -> Lock {
        Lock {
            word: AtomicU32::new(0),
        }
    }

    /// Waits as long as it takes.
    pub fn lock(&self) -> Guard<'_> {
        loop {
            if let Some(guard) = self.lock_within(SLICE) {
                return guard;
            }
        }
    }

    /// Waits until the lock is ours, or until `give_up()` says stop (it is asked
    /// about every 100 ms): the parent uses it to honour Ctrl-C while it waits.
    pub fn lock_unless(&self, give_up: impl Fn() -> bool) -> Option<Guard<'_>> {
        loop {
            if give_up() {
                return None;
            }
            if let Some(guard) = self.lock_within(SLICE) {
                return Some(guard);
            }
        }
    }

    fn lock_within(&self, limit: Duration) -> Option<Guard<'_>> {
        // Acquire: what the previous holder wrote before unlocking is visible to
        // us.
        if self
            .word
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Some(Guard { lock: self }); // free: no system call at all
        }
        let until = Instant::now() + limit;
        loop {
            // Say "someone is waiting" (2). If the lock was free meanwhile, it is
            // ours.
            if self.word.swap(2, Ordering::Acquire) == 0 {
                return Some(Guard { lock: self });
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Sleeps only if the word is still 2: an unlock in between makes it
            // return.
            futex_wait(&self.word, 2, left);
        }
    }
}

impl Default for Lock {
    fn default() -> Lock {
        Lock::new()
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // Release: our writes under the lock are visible to the next holder.
        if self.lock.word.swap(0, Ordering::Release) == 2 {
            futex_wake(&self.lock.word, 1);
        }
    }
}
// ANCHOR_END: lock

// ANCHOR: futex
/// Sleeps while `*word == expected`, for at most `limit` (or until a `futex_wake`,
/// or a signal). Every outcome means the same to the callers: look at the word
/// again.
pub fn futex_wait(word: &AtomicU32, expected: u32, limit: Duration) {
    let timeout = libc::timespec {
        tv_sec: libc::time_t::try_from(limit.as_secs())
            .unwrap_or(libc::time_t::MAX),
        // Below 10^9: fits any c_long.
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the whole call and `timeout`
    // outlives it; FUTEX_WAIT (without FUTEX_PRIVATE_FLAG: the word may be shared
    // between processes) only reads the word. The result is not needed (see above).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const timeout,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes up to `count` processes sleeping in [`futex_wait`] on `word`.
pub fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE reads nothing else. Waking
    // nobody is not an error.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
// ANCHOR_END: futex
