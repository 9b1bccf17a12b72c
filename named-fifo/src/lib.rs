//! What the FIFO writer and reader share: finding or making the FIFO, removing it again,
//! waiting with a bound, and stopping on Ctrl-C.
//!
//! The two programs (`src/bin/fifo-writer.rs`, `src/bin/fifo-reader.rs`) are unrelated
//! processes: neither starts the other, and they share nothing but a path. This module is
//! the part of their code that is the same on both sides.

use lesson_kit::{Context, Failure, exit};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag, fstat, stat};
use nix::unistd::{mkfifo, unlink};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The document's FIFO: `my_pipe`, relative to the working directory.
pub const DEFAULT_PATH: &str = "my_pipe";

/// How often a waiting program looks at the clock and at Ctrl-C.
pub const SLICE: Duration = Duration::from_millis(20);

/// Set by SIGINT/SIGTERM; every wait looks at it.
static STOP: AtomicBool = AtomicBool::new(false);
/// Which signal set it.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

// ANCHOR: signals
/// Ctrl-C and SIGTERM set a flag that every wait checks, so the program stops within
/// [`SLICE`] and removes the FIFO it made. A second signal ends it at once.
///
/// A flag is needed because signal-hook installs handlers with SA_RESTART: a blocking
/// `open` of a FIFO would simply resume after the handler, and never notice Ctrl-C. So
/// nothing here blocks: opens are non-blocking, and waits are `poll`s with a timeout.
pub fn stop_on_signals() -> Result<(), Failure> {
    for signal in [SIGINT, SIGTERM] {
        let what = format!("install handler for signal {signal}");
        flag::register_conditional_shutdown(signal, 128 + signal, &STOP)
            .context(&what)?;
        flag::register_usize(signal, &STOP_SIGNAL, signal as usize)
            .context(&what)?;
        flag::register(signal, &STOP).context(&what)?;
    }
    Ok(())
}
// ANCHOR_END: signals

/// Why a wait ended without its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gave {
    /// `--wait` ran out.
    Up,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

impl Gave {
    /// The exit code: 3 for a time limit, 128 + the signal for an interruption.
    pub fn exit_code(self) -> u8 {
        match self {
            Gave::Up => exit::TIMEOUT,
            Gave::Interrupted => {
                let signal = STOP_SIGNAL.load(Ordering::SeqCst);
                u8::try_from(128 + signal).unwrap_or(exit::RUNTIME)
            }
        }
    }

    /// What to tell the user.
    pub fn describe(self, waiting_for: &str, limit: Option<Duration>) -> String {
        match (self, limit) {
            (Gave::Up, Some(limit)) => {
                format!("no {waiting_for} within {limit:?}; giving up")
            }
            (Gave::Up, None) => format!("no {waiting_for}; giving up"),
            (Gave::Interrupted, _) => {
                let signal = STOP_SIGNAL.load(Ordering::SeqCst);
                let name = Signal::try_from(signal as i32)
                    .map_or("a signal", Signal::as_str);
                format!("stopped by {name} while waiting for {waiting_for}")
            }
        }
    }
}

/// Whether Ctrl-C (or SIGTERM) has arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps one slice, unless asked to stop or past the deadline.
pub fn pause(deadline: Option<Instant>) -> Result<(), Gave> {
    if stop_requested() {
        return Err(Gave::Interrupted);
    }
    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        return Err(Gave::Up);
    }
    std::thread::sleep(SLICE);
    Ok(())
}

/// Sleeps until `until`, in slices, unless asked to stop.
pub fn sleep_until(until: Instant) -> Result<(), Gave> {
    loop {
        if stop_requested() {
            return Err(Gave::Interrupted);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(SLICE));
    }
}

// ANCHOR: wait_for
/// Waits until `fd` has one of `events` (readable, writable, hung up), a slice at a time.
pub fn wait_for(
    fd: impl AsFd,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<(), WaitError> {
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), events)];
        match poll(
            &mut fds,
            PollTimeout::try_from(SLICE).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(Errno::EINTR) => {
                pause(deadline).map_err(WaitError::Gave)?
            }
            Ok(_) => return Ok(()),
            Err(errno) => {
                return Err(WaitError::Failed(Failure::new("poll", errno)));
            }
        }
    }
}
// ANCHOR_END: wait_for

/// A wait that ended without its event.
#[derive(Debug)]
pub enum WaitError {
    Gave(Gave),
    Failed(Failure),
}

// ANCHOR: fifo
/// The FIFO at a path: made by this program if it was missing (and then removed by it,
/// unless `--keep`), or found there and checked to be a FIFO.
pub struct Fifo {
    pub path: PathBuf,
    created: bool,
    keep: bool,
}

impl Fifo {
    /// The document's `if not os.path.exists(path): os.mkfifo(path)`, without its race:
    /// make it, and if it already exists (maybe the other program just made it), check what
    /// it is. A path that is not a FIFO is refused and left as it was.
    pub fn make_or_find(path: &Path, keep: bool) -> Result<Fifo, Failure> {
        // 0o666 as in Python's os.mkfifo; the umask takes away the rest (0o644 with 022).
        let mode = Mode::from_bits_truncate(0o666);
        let created = match mkfifo(path, mode) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(errno) => {
                return Err(Failure::new(
                    format!("mkfifo {}", path.display()),
                    errno,
                ));
            }
        };
        if !created {
            let found = stat(path).context(format!("stat {}", path.display()))?;
            check_is_fifo(path, found.st_mode)?;
        }
        Ok(Fifo {
            path: path.to_owned(),
            created,
            keep,
        })
    }

    /// Whether this program made the FIFO (and so is the one to remove it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Checks an opened descriptor: between our check and our open, someone could have put
    /// something else at the path.
    pub fn check_opened(&self, fd: impl AsFd) -> Result<(), Failure> {
        let opened = fstat(fd).context(format!("fstat {}", self.path.display()))?;
        check_is_fifo(&self.path, opened.st_mode)
    }
}

/// Who made it removes it, on every way out of `main` (errors and Ctrl-C included), since
/// this runs when the `Fifo` is dropped. The other program may still have it open: removing
/// a name does not close anything, it only stops new programs from finding it.
impl Drop for Fifo {
    fn drop(&mut self) {
        if self.created
            && !self.keep
            && let Err(errno) = unlink(&self.path)
        {
            eprintln!("warning: unlink {}: {errno}", self.path.display());
        }
    }
}
// ANCHOR_END: fifo

fn check_is_fifo(path: &Path, st_mode: nix::libc::mode_t) -> Result<(), Failure> {
    let kind = SFlag::from_bits_truncate(st_mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFIFO {
        return Ok(());
    }
    let what = match kind {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        SFlag::S_IFSOCK => "a socket",
        _ => "not a FIFO",
    };
    Err(Failure::new(
        path.display(),
        format!(
            "exists and is {what}, not a FIFO; refusing to use it (it was left as it is)"
        ),
    ))
}

/// The usage lines both programs share.
pub const COMMON_HELP: &str = "\
  --wait SECS   give up (exit 3) if the other program has not come within SECS
                (default: wait until it comes, or until Ctrl-C)
  --keep        do not remove the FIFO at the end, even if this program made it
  -h, --help    print this help";
