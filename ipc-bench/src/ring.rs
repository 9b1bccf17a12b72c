//! A shared-memory ring buffer: one producer, one consumer, a byte stream like a
//! pipe, with no system call per message.
//!
//! The memory comes from `shm_open` + `mmap(MAP_SHARED)` and is mapped before
//! `fork`, so both processes (or both threads) see the same bytes. The name is
//! unlinked at once: the mapping lives on, and nothing is left in `/dev/shm`
//! whatever happens next.
//!
//! Two counters do all the work: `head` (bytes ever written, moved by the producer)
//! and `tail` (bytes ever read, moved by the consumer). `head - tail` bytes are
//! waiting. A side that must wait (empty ring, full ring) either spins on the
//! counter or sleeps in the kernel on a futex, which is the "waiting mode".

use lesson_kit::{Context, Failure};
use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, shm_open, shm_unlink};
use nix::sys::stat::Mode;
use nix::unistd::ftruncate;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of data in one ring: the same as the pipes' capacity after `F_SETPIPE_SZ`.
pub const CAPACITY: usize = 1 << 20;

/// How a side waits for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Sleep in the kernel (`futex`) and be woken by the other side.
    Block,
    /// Re-read the counter in a loop, giving the CPU away now and then
    /// (`sched_yield`) so that two sides pinned to one CPU still make progress.
    Spin,
}

// ANCHOR: header
/// The control block at the start of each ring. Each counter has a cache line of
/// its own: the producer writes `head`, the consumer writes `tail`, and neither
/// should make the other's CPU reload a line it did not change (false sharing).
#[repr(C, align(64))]
struct Header {
    head: AtomicU64,
    _pad1: [u8; 56],
    tail: AtomicU64,
    _pad2: [u8; 56],
    /// 1 while the consumer sleeps (or is about to) on this word, waiting for data.
    consumer_asleep: AtomicU32,
    _pad3: [u8; 60],
    /// 1 while the producer sleeps on this word, waiting for room.
    producer_asleep: AtomicU32,
    _pad4: [u8; 60],
}
// ANCHOR_END: header

const SLOT: usize = std::mem::size_of::<Header>() + CAPACITY;

/// One direction of a ring, as one side sees it.
pub struct Ring {
    header: *const Header,
    data: *mut u8,
    wait: Wait,
}

// SAFETY: a Ring is a view of shared memory that outlives the process (it is never
// unmapped); the only state in it that two parties touch at once is reached through
// atomics, and the data bytes are handed over by the head/tail protocol
// (Release/Acquire).
unsafe impl Send for Ring {}

/// Maps `rings` rings in one shared-memory object. Call before `fork`.
pub fn map(rings: usize, tag: &str) -> Result<Vec<(Ring, Ring)>, Failure> {
    let name = format!("/ipc-bench-{}-{tag}", std::process::id());
    // ANCHOR: shm
    let fd = shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .context(format!("shm_open {name}"))?;
    // The name was only needed to get a descriptor: remove it now, so that nothing
    // is left in /dev/shm even if we are killed. The object lives while it is
    // mapped.
    shm_unlink(name.as_str()).context(format!("shm_unlink {name}"))?;
    let length = SLOT * rings;
    let size = libc::off_t::try_from(length).unwrap_or(libc::off_t::MAX);
    ftruncate(&fd, size).context(format!("ftruncate {name}"))?; // zero-filled
    let length = NonZeroUsize::new(length)
        .ok_or_else(|| Failure::new("mmap", "no rings asked for"))?;
    // SAFETY: a fresh mapping at an address the kernel chooses aliases no Rust
    // object; it is MAP_SHARED so a forked child sees the same pages, and it is
    // never unmapped (the process ends with it), so pointers into it stay valid.
    let base = unsafe {
        mmap(
            None,
            length,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            &fd,
            0,
        )
    }
    .context(format!("mmap {name}"))?;
    drop(fd); // the mapping keeps the memory; the descriptor is no longer needed
    // ANCHOR_END: shm
    let base = base.as_ptr().cast::<u8>();
    Ok((0..rings)
        .map(|i| {
            // SAFETY: slot i lies inside the mapping (length = SLOT * rings), and
            // the mapping is page-aligned, so the Header at its start is 64-byte
            // aligned.
            let header = unsafe { base.add(i * SLOT) }.cast::<Header>();
            // SAFETY: as above; the data follows the header inside the same slot.
            let data =
                unsafe { base.add(i * SLOT + std::mem::size_of::<Header>()) };
            let view = |wait| Ring { header, data, wait };
            (view(Wait::Block), view(Wait::Block))
        })
        .collect())
}

impl Ring {
    /// The same ring, waiting in another mode.
    pub fn waiting(mut self, wait: Wait) -> Ring {
        self.wait = wait;
        self
    }

    fn header(&self) -> &Header {
        // SAFETY: `header` points into a live shared mapping (see `map`),
        // zero-filled at creation, which is a valid Header (all atomics at 0).
        unsafe { &*self.header }
    }

    // ANCHOR: write
    /// Producer: copies as much of `bytes` as fits (at least one byte, waiting for
    /// room if the ring is full), like `write` on a pipe. Returns how many were
    /// taken.
    pub fn write(&self, bytes: &[u8]) -> usize {
        let h = self.header();
        let head = h.head.load(Ordering::Relaxed); // only we move head
        let tail = self.wait_until(&h.tail, &h.producer_asleep, |tail| {
            head - tail < CAPACITY as u64
        });
        let room = CAPACITY - (head - tail) as usize;
        let n = bytes.len().min(room);
        let at = (head % CAPACITY as u64) as usize;
        let first = n.min(CAPACITY - at); // up to the end of the buffer, then wrap
        // SAFETY: the bytes [head, head + n) are free (the consumer is done with
        // them: tail was read with Acquire), they lie in the ring (at + first <=
        // CAPACITY, n - first < at), and `bytes` is our own slice, so the regions
        // do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(at), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data,
                n - first,
            );
        }
        // Publish: the consumer that sees the new head also sees the bytes
        // (Release).
        h.head.store(head + n as u64, Ordering::SeqCst);
        wake(&h.consumer_asleep);
        n
    }
    // ANCHOR_END: write

    /// Consumer: waits for data, then shows at most `max` waiting bytes to `look`
    /// in place (in one or two pieces, when they wrap), and frees them. Returns how
    /// many.
    pub fn read_with(&self, max: usize, mut look: impl FnMut(&[u8])) -> usize {
        let h = self.header();
        let tail = h.tail.load(Ordering::Relaxed); // only we move tail
        let head =
            self.wait_until(&h.head, &h.consumer_asleep, |head| head != tail);
        let n = ((head - tail) as usize).min(max);
        let at = (tail % CAPACITY as u64) as usize;
        let first = n.min(CAPACITY - at);
        // SAFETY: the bytes [tail, tail + n) were published by the producer (head
        // read with Acquire) and it will not touch them until we move tail; both
        // pieces lie inside the ring.
        unsafe {
            look(std::slice::from_raw_parts(self.data.add(at), first));
            look(std::slice::from_raw_parts(self.data, n - first));
        }
        h.tail.store(tail + n as u64, Ordering::SeqCst); // the room is free again
        wake(&h.producer_asleep);
        n
    }

    /// Consumer: copies at most `buffer.len()` waiting bytes out, like `read`.
    pub fn read(&self, buffer: &mut [u8]) -> usize {
        let mut filled = 0;
        self.read_with(buffer.len(), |piece| {
            buffer[filled..filled + piece.len()].copy_from_slice(piece);
            filled += piece.len();
        })
    }

    // ANCHOR: wait
    /// Waits until `ready(counter)` holds and returns the counter's value.
    /// Blocking: announce the sleep in `asleep`, look once more (the other side may
    /// have moved just before it could see the announcement), then sleep on the
    /// futex word.
    fn wait_until(
        &self,
        counter: &AtomicU64,
        asleep: &AtomicU32,
        ready: impl Fn(u64) -> bool,
    ) -> u64 {
        let mut spins = 0u32;
        loop {
            let value = counter.load(Ordering::Acquire);
            if ready(value) {
                return value;
            }
            match self.wait {
                Wait::Spin => {
                    std::hint::spin_loop();
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(4096) {
                        // The other side may need this very CPU.
                        std::thread::yield_now();
                    }
                }
                Wait::Block => {
                    asleep.store(1, Ordering::SeqCst);
                    if ready(counter.load(Ordering::SeqCst)) {
                        asleep.store(0, Ordering::Relaxed);
                        continue;
                    }
                    futex_wait(asleep, 1);
                }
            }
        }
    }
    // ANCHOR_END: wait
}

/// Wakes the other side if it announced that it sleeps on `asleep`. Costs one
/// atomic exchange when nobody sleeps: no system call.
fn wake(asleep: &AtomicU32) {
    if asleep.swap(0, Ordering::SeqCst) == 1 {
        futex_wake(asleep);
    }
}

/// Sleeps while `*word == expected`, at most 100 ms (then the caller looks again).
fn futex_wait(word: &AtomicU32, expected: u32) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 at `word` (alive: it is in the
    // shared mapping) and the timespec on our stack; it writes no memory. A shared
    // (not PRIVATE) futex, because the other side may be another process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const timeout,
        );
    }
}

/// Wakes every sleeper on `word` (there is at most one).
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it reads and writes no
    // memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `check` on a thread, and fails if it takes more than 5 s: a broken
    /// counter makes a side wait for ever.
    fn within_5_s(check: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            check();
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("the ring check panicked or waits for ever");
    }

    #[test]
    fn a_ring_hands_over_exactly_what_was_written_even_across_its_end() {
        within_5_s(|| {
            let (tx, rx) = map(1, "unit-test").expect("map").pop().expect("one");
            // Up to 10 bytes before the end of the buffer, then read back.
            let most = vec![7u8; CAPACITY - 10];
            assert_eq!(tx.write(&most), CAPACITY - 10);
            let mut seen = 0;
            assert_eq!(
                rx.read_with(CAPACITY, |piece| seen += piece.len()),
                most.len()
            );
            assert_eq!(seen, most.len());
            // 30 bytes: 10 at the end of the buffer, 20 at its start.
            let bytes: Vec<u8> = (1..=30).collect();
            assert_eq!(tx.write(&bytes), 30);
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            assert_eq!(rx.read_with(64, |piece| pieces.push(piece.to_vec())), 30);
            assert_eq!(pieces, [bytes[..10].to_vec(), bytes[10..].to_vec()]);
            // Only what is waiting, at most `max`, is handed over.
            assert_eq!(tx.write(&bytes[..5]), 5);
            let mut out = [0u8; 64];
            assert_eq!(rx.read(&mut out[..3]), 3);
            assert_eq!(rx.read(&mut out), 2);
            assert_eq!(out[..2], bytes[3..5]);
            // A full ring takes what fits, and gives it all back.
            let big = vec![9u8; CAPACITY + 5];
            assert_eq!(tx.write(&big), CAPACITY);
            let mut total = 0;
            rx.read_with(CAPACITY, |piece| {
                assert!(piece.iter().all(|&b| b == 9));
                total += piece.len();
            });
            assert_eq!(total, CAPACITY);
        });
    }
}
