//! The stop signals (SIGINT, SIGTERM, SIGHUP) as a descriptor every wait polls.

use lesson_kit::{Context, Failure};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

/// A `poll` timeout for what is `left` of a wait, at most a second (the caller
/// loops).
pub fn poll_timeout(left: Duration) -> PollTimeout {
    PollTimeout::from(u16::try_from(left.as_millis().min(1000)).unwrap_or(1000))
}

// ANCHOR: stops
/// SIGINT, SIGTERM and SIGHUP, blocked and read from a descriptor (`signalfd`)
/// instead of run as handlers: every wait polls that descriptor beside what it
/// waits for, so a stop signal is seen at once, even while we wait for a reply or
/// for the child to exit, and a second Ctrl-C only waits, blocked, while the first
/// one's clean-up runs.
pub struct StopSignals(SignalFd);

impl StopSignals {
    pub fn block() -> Result<StopSignals, Failure> {
        let mut stops = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            stops.add(signal);
        }
        stops.thread_block().context("sigprocmask SIG_BLOCK")?;
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        let fd = SignalFd::with_flags(&stops, flags).context("signalfd")?;
        Ok(StopSignals(fd))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The stop signal that has arrived, if any; never waits.
    pub fn take(&self) -> Option<Signal> {
        let info = self.0.read_signal().ok()??;
        Signal::try_from(i32::try_from(info.ssi_signo).ok()?).ok()
    }

    /// The stop signal that has arrived, if `poll` said one waits (`ready`).
    pub fn take_if(&self, ready: bool) -> Option<Signal> {
        if ready { self.take() } else { None }
    }

    /// Waits up to `limit` for a stop signal.
    pub fn wait(&self, limit: Duration) -> Result<Option<Signal>, Failure> {
        let mut ready = [PollFd::new(self.fd(), PollFlags::POLLIN)];
        match poll(&mut ready, poll_timeout(limit)) {
            Ok(n) => Ok(self.take_if(n > 0)),
            Err(Errno::EINTR) => Ok(None), // the caller loops
            Err(errno) => Err(errno).context("poll signalfd"),
        }
    }
}
// ANCHOR_END: stops
