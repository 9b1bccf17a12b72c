//! The parent's side of the reply pipe: a line at a time, never waiting longer than
//! asked, and never growing without bound.

use crate::stops::{StopSignals, poll_timeout};
use lesson_kit::{Context, Failure};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::signal::Signal;
use nix::unistd::read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The longest reply line the parent accepts (without its newline).
pub const MAX_REPLY: usize = 64 * 1024;

// ANCHOR: replies
/// Reads the child's replies line by line, never waiting longer than asked.
///
/// Python's `input()` would block forever on a child that never answers. Here every
/// wait is a `poll` with a timeout, on the pipe and on the stop signals, and bytes
/// after a newline are kept for the next line.
pub struct Replies {
    from_child: Box<dyn AsFd>,
    pending: Vec<u8>,
}

pub enum Reply {
    Line(String),
    /// The child closed its end: it has exited, or closed its stdout.
    Eof,
    /// Nothing (or no complete line) within the time limit.
    Silent,
    /// A stop signal arrived first.
    Stopped(Signal),
}

impl Replies {
    pub fn new(from_child: Box<dyn AsFd>) -> Replies {
        Replies {
            from_child,
            pending: Vec::new(),
        }
    }

    pub fn next_line(
        &mut self,
        timeout: Duration,
        stops: &StopSignals,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let newline = self.pending.iter().position(|byte| *byte == b'\n');
            if newline.unwrap_or(self.pending.len()) > MAX_REPLY {
                let why = format!("a reply line is longer than {MAX_REPLY} bytes");
                return Err(Failure::new("read the pipe from the child", why));
            }
            if let Some(end) = newline {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]).into_owned();
                return Ok(Reply::Line(text));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Reply::Silent);
            }
            let fd = self.from_child.as_fd();
            let mut ready = [
                PollFd::new(fd, PollFlags::POLLIN),
                PollFd::new(stops.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut ready, poll_timeout(left)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(errno).context("poll the pipe from the child");
                }
            }
            // Read the signalfd only when poll says a signal waits there: no
            // useless read (EAGAIN) for every reply.
            let signalled = ready[1].revents().is_some_and(|e| !e.is_empty());
            if let Some(signal) = stops.take_if(signalled) {
                return Ok(Reply::Stopped(signal));
            }
            if ready[0].revents().is_none_or(|events| events.is_empty()) {
                continue; // nothing yet: the deadline check decides
            }
            let mut chunk = [0u8; 4096];
            let n = read(fd, &mut chunk).context("read the pipe from the child")?;
            if n == 0 && self.pending.is_empty() {
                return Ok(Reply::Eof);
            }
            if n == 0 {
                // EOF after a partial line: deliver it, the next call reports EOF.
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return Ok(Reply::Line(text));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}
// ANCHOR_END: replies
