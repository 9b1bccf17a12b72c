//! What the FIFO writer and reader share: their common options (PATH, `--wait`,
//! `--keep`, `--show-fds`), finding or making the FIFO and removing it again,
//! waiting with a bound, and stopping on Ctrl-C.
//!
//! The two programs (`src/bin/fifo-writer.rs`, `src/bin/fifo-reader.rs`) are
//! unrelated processes: neither starts the other, and they share nothing but a
//! path. This module is the part of their code that is the same on both sides.

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, Failure, exit, note, signal_exit, signal_name};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::{Mode, SFlag, fstat, stat};
use nix::unistd::{mkfifo, unlink};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The document's FIFO: `my_pipe`, relative to the working directory.
pub const DEFAULT_PATH: &str = "my_pipe";

/// How often a waiting program looks at the clock and at Ctrl-C.
pub const SLICE: Duration = Duration::from_millis(20);

/// What `--wait SECS` accepts: up to a day, so a deadline is always an `Instant`
/// the clock can hold (`--wait 1e19` would overflow it).
pub const WAIT_RANGE: std::ops::RangeInclusive<f64> = 0.0..=86_400.0;

/// What `--messages N` accepts, on both sides.
pub const MESSAGES_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000_000;

/// The first stop signal that arrived (0: none yet).
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

// ANCHOR: signals
/// SIGINT, SIGTERM and SIGHUP note the signal in an atomic that every wait checks,
/// so the program stops within [`SLICE`] and removes the FIFO it made.
///
/// A flag is needed because signal-hook installs handlers with SA_RESTART: a
/// blocking `open` of a FIFO, or a `write` to a full stdout, would simply resume
/// after the handler, and never notice Ctrl-C. So nothing here blocks: opens are
/// non-blocking, and waits are `poll`s with a timeout.
///
/// Only the *first* signal counts. A second Ctrl-C right after it changes nothing:
/// the clean-up (an `unlink`) is already under way and takes microseconds, and the
/// exit status stays that of the first signal.
pub fn stop_on_signals() -> Result<(), Failure> {
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let first = move || {
            // Fails (and changes nothing) if a signal is already recorded.
            let _ = STOP_SIGNAL.compare_exchange(
                0,
                signal as usize,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        };
        // SAFETY: the action runs in signal context; it only does a
        // compare-and-swap on an atomic integer, which is lock-free and
        // async-signal-safe (no allocation, no lock, no I/O).
        unsafe { signal_hook::low_level::register(signal, first) }
            .context(format!("install handler for {}", signal_name(signal)))?;
    }
    Ok(())
}
// ANCHOR_END: signals

/// The stop signal that arrived first, if any.
pub fn stop_signal() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// Why a wait ended without its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gave {
    /// `--wait` ran out.
    Up,
    /// SIGINT, SIGTERM or SIGHUP (the number).
    Interrupted(i32),
}

impl Gave {
    /// The exit status: 3 for a time limit, 128 + the signal for an interruption.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Gave::Up => ExitCode::from(exit::TIMEOUT),
            Gave::Interrupted(signal) => signal_exit(signal),
        }
    }

    /// What to tell the user: `gave up waiting for a reader after 300ms`,
    /// `stopped by SIGINT while waiting for a writer`.
    pub fn describe(self, waiting_for: &str, limit: Option<Duration>) -> String {
        match (self, limit) {
            (Gave::Up, Some(limit)) => {
                format!("gave up waiting for {waiting_for} after {limit:?}")
            }
            (Gave::Up, None) => format!("gave up waiting for {waiting_for}"),
            (Gave::Interrupted(signal), _) => format!(
                "stopped by {} while waiting for {waiting_for}",
                signal_name(signal)
            ),
        }
    }
}

/// A deadline `limit` from now, if there is a limit.
pub fn deadline(limit: Option<Duration>) -> Option<Instant> {
    limit.map(|limit| Instant::now() + limit)
}

/// Sleeps one slice, unless asked to stop or past the deadline.
pub fn pause(deadline: Option<Instant>) -> Result<(), Gave> {
    if let Some(signal) = stop_signal() {
        return Err(Gave::Interrupted(signal));
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
        if let Some(signal) = stop_signal() {
            return Err(Gave::Interrupted(signal));
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(SLICE));
    }
}

// ANCHOR: wait_for
/// Waits until `fd` has one of `events` (or an error or hang-up, which poll always
/// reports), a slice at a time; returns what poll reported.
pub fn wait_for(
    fd: impl AsFd,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<PollFlags, WaitError> {
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), events)];
        match poll(&mut fds, PollTimeout::from(SLICE.as_millis() as u16)) {
            Ok(0) | Err(Errno::EINTR) => {
                pause(deadline).map_err(WaitError::Gave)?
            }
            Ok(_) => return Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
            Err(errno) => {
                return Err(WaitError::Failed(Failure::new("poll", errno)));
            }
        }
    }
}
// ANCHOR_END: wait_for

/// Whether `fd` gets one of `events` within `limit` (at most a few hundred ms: this
/// poll does not look at Ctrl-C).
pub fn ready_within(fd: impl AsFd, events: PollFlags, limit: Duration) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), events)];
    let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(1..))
}

/// A wait that ended without its event.
#[derive(Debug)]
pub enum WaitError {
    Gave(Gave),
    Failed(Failure),
}

// ANCHOR: fifo
/// The FIFO at a path: made by this program if it was missing (and then removed by
/// it, unless `--keep`), or found there and checked to be a FIFO.
pub struct Fifo {
    pub path: PathBuf,
    /// The FIFO we made (its device and inode), if we made it.
    made: Option<(u64, u64)>,
    keep: bool,
}

impl Fifo {
    /// The document's `if not os.path.exists(path): os.mkfifo(path)`, without its
    /// race: make it, and if it already exists (maybe the other program just made
    /// it), check what it is. A path that is not a FIFO is refused and left as it
    /// was.
    pub fn make_or_find(path: &Path, keep: bool) -> Result<Fifo, Failure> {
        // 0o666 as in Python's os.mkfifo; the umask takes away the rest (0o644 with
        // 022).
        let mode = Mode::from_bits_truncate(0o666);
        let made = match mkfifo(path, mode) {
            Ok(()) => identity(path),
            Err(Errno::EEXIST) => {
                let found =
                    stat(path).context(format!("stat {}", path.display()))?;
                check_is_fifo(path, found.st_mode)?;
                None
            }
            Err(errno) => {
                return Err(Failure::new(
                    format!("mkfifo {}", path.display()),
                    errno,
                ));
            }
        };
        Ok(Fifo {
            path: path.to_owned(),
            made,
            keep,
        })
    }

    /// Checks an opened descriptor: between our check and our open, someone could
    /// have put something else at the path.
    pub fn check_opened(&self, fd: impl AsFd) -> Result<(), Failure> {
        let opened = fstat(fd).context(format!("fstat {}", self.path.display()))?;
        check_is_fifo(&self.path, opened.st_mode)
    }
}

/// Who made it removes it, on every way out of `main` (errors and Ctrl-C included),
/// since this runs when the `Fifo` is dropped, if the path still leads to the FIFO
/// it made: something put there in its place is left alone. The other program may
/// still have it open: removing a name does not close anything, it only stops new
/// programs from finding it.
impl Drop for Fifo {
    fn drop(&mut self) {
        if self.made.is_some()
            && !self.keep
            && identity(&self.path) == self.made
            && let Err(errno) = unlink(&self.path)
        {
            note!("warning: unlink {}: {errno}", self.path.display());
        }
    }
}
// ANCHOR_END: fifo

/// What is at `path` now (device and inode), without following a symbolic link.
fn identity(path: &Path) -> Option<(u64, u64)> {
    let found = std::fs::symlink_metadata(path).ok()?;
    Some((found.dev(), found.ino()))
}

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
        format!("exists and is {what}, not a FIFO: refused, left as it is"),
    ))
}

// ANCHOR: common
/// The options both programs take: PATH, `--wait SECS`, `--keep`, `--show-fds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub path: PathBuf,
    /// The longest the other program may keep us waiting, at any point.
    pub wait: Option<Duration>,
    pub keep: bool,
    /// Print our descriptor table at each step (stderr).
    pub show_fds: bool,
    path_given: bool,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            path: PathBuf::from(DEFAULT_PATH),
            wait: None,
            keep: false,
            show_fds: false,
            path_given: false,
        }
    }
}

impl Common {
    /// Takes PATH, `--wait` or `--keep` from the parser if `arg` is one of them.
    /// Returns `Ok(false)` for anything else, so the program can go on matching.
    pub fn accept(
        &mut self,
        arg: &str,
        parser: &mut Parser,
    ) -> Result<bool, UsageError> {
        match arg {
            "--wait" => {
                let secs = parser.value_in(arg, WAIT_RANGE)?;
                self.wait = Some(Duration::from_secs_f64(secs));
            }
            "--keep" => self.keep = true,
            "--show-fds" => self.show_fds = true,
            _ if !self.path_given
                && (parser.options_ended() || !arg.starts_with('-')) =>
            {
                self.path = PathBuf::from(arg);
                self.path_given = true;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// With `--show-fds`, prints this process's descriptor table to stderr, headed
    /// `[fds] <program> <pid>, <step>:`. Reading `/proc` is lesson-kit's job; when
    /// to look is the lesson's.
    pub fn show(&self, program: &str, step: &str) {
        if self.show_fds {
            lesson_kit::fds::show(program, step);
        }
    }

    /// The note a program waiting alone prints, so the wait does not look like a
    /// hang: what it waits for, and the command that starts its peer, ready to
    /// paste, on a line of its own. Three short lines, written at once.
    pub fn waiting_note(
        &self,
        program: &str,
        peer: &str,
        peer_bin: &str,
    ) -> String {
        let path = self.path.display().to_string();
        let path_arg = if self.path_given {
            format!(" -- {}", shell_word(&path))
        } else {
            String::new()
        };
        let command = format!("cargo run -p named-fifo --bin {peer_bin}{path_arg}");
        format!(
            "{program}: waiting for {peer} to open {path}\n\
             {program}: start one in another terminal, in this directory, with:\n\
             {program}:   {command}"
        )
    }
}
// ANCHOR_END: common

/// Quotes a path for a POSIX shell when it needs it, so the suggested command
/// pastes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The usage lines both programs share (descriptions in column 20, like theirs).
/// One string per line: a `\` line continuation would also eat the next line's
/// indent.
pub const COMMON_HELP: &str = concat!(
    "  --wait SECS      give up (exit 3) when the other program keeps us waiting\n",
    "                   longer than SECS, 0 to 86400: to come, to write, to read\n",
    "                   (default: as long as it takes, or until Ctrl-C)\n",
    "  --keep           do not remove the FIFO at the end, even if this program\n",
    "                   made it\n",
    "  --show-fds       print this program's descriptor table (on stderr) after\n",
    "                   each step: mkfifo, open, close\n",
    "  -h, --help       print this help",
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Common, UsageError> {
        let mut parser = Parser::new("t", args.iter().copied());
        let mut common = Common::default();
        while let Some(arg) = parser.next()? {
            if !common.accept(&arg, &mut parser)? {
                return Err(parser.unexpected(&arg));
            }
        }
        Ok(common)
    }

    #[test]
    fn common_options_take_one_path_a_bounded_wait_and_keep() {
        assert_eq!(parse(&[]).unwrap(), Common::default());
        let common = parse(&["p", "--wait", "0.5", "--keep"]).unwrap();
        assert_eq!(common.path, PathBuf::from("p"));
        assert_eq!(common.wait, Some(Duration::from_millis(500)));
        assert!(common.keep && !common.show_fds);
        assert!(parse(&["--show-fds"]).unwrap().show_fds);
        assert_eq!(parse(&["--", "-p"]).unwrap().path, PathBuf::from("-p"));
        assert!(parse(&["a", "b"]).is_err());
        assert!(parse(&["--other"]).is_err());
        assert_eq!(parse(&["--wait", "0"]).unwrap().wait, Some(Duration::ZERO));
        for bad in ["1e19", "1e308", "-1", "inf", "NaN", "86400.5"] {
            let err = parse(&["--wait", bad]).unwrap_err().0;
            assert!(err.contains("must be from 0 to 86400"), "{err}");
        }
        assert_eq!(
            parse(&["--wait", "86400"]).unwrap().wait,
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn the_waiting_note_gives_a_command_that_pastes() {
        let note = Common::default().waiting_note("r", "a writer", "fifo-writer");
        assert_eq!(
            note,
            "r: waiting for a writer to open my_pipe\n\
             r: start one in another terminal, in this directory, with:\n\
             r:   cargo run -p named-fifo --bin fifo-writer"
        );
        let common = parse(&["/tmp/a b"]).unwrap();
        let note = common.waiting_note("r", "a writer", "fifo-writer");
        assert!(note.contains("to open /tmp/a b\n"), "{note}");
        assert!(note.ends_with("--bin fifo-writer -- '/tmp/a b'"), "{note}");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        // Letters, digits and the punctuation of ordinary paths need no quotes.
        let plain = "/tmp/My_pipe-2.fifo=a:b,c+d@50%";
        assert_eq!(shell_word(plain), plain);
        let note = parse(&["pipes/p1"])
            .unwrap()
            .waiting_note("w", "a reader", "r");
        assert!(note.ends_with("--bin r -- pipes/p1"), "{note}");
    }

    #[test]
    fn gave_maps_to_exit_codes_and_words() {
        assert_eq!(Gave::Up.exit_code(), ExitCode::from(3));
        assert_eq!(Gave::Interrupted(15).exit_code(), ExitCode::from(143));
        assert_eq!(
            Gave::Up.describe("a reader", Some(Duration::from_millis(300))),
            "gave up waiting for a reader after 300ms"
        );
        assert_eq!(Gave::Up.describe("x", None), "gave up waiting for x");
        assert_eq!(
            Gave::Interrupted(1).describe("a writer", None),
            "stopped by SIGHUP while waiting for a writer"
        );
    }
}
