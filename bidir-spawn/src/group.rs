//! Ending the child's process group, grandchildren included, in bounded time.

use crate::PROGRAM;
use lesson_kit::note;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// How long the child's process group gets to exit after SIGTERM, before SIGKILL.
pub const GRACE: Duration = Duration::from_millis(300);

// ANCHOR: group
/// Ends the child's process group, grandchildren included: SIGTERM, up to [`GRACE`]
/// for the child to exit, then SIGKILL for whatever is left. Reaps the child;
/// returns how it ended (`None` only if waitpid itself failed).
pub fn end_group(child: Pid) -> Option<WaitStatus> {
    let _ = killpg(child, Signal::SIGTERM); // errors: the group is gone already
    let _ = killpg(child, Signal::SIGCONT); // a stopped process acts on it only now
    if !exits_within(child, GRACE) {
        note!(
            "{PROGRAM}: child {child} still running {GRACE:?} after SIGTERM; \
             SIGKILL"
        );
    }
    // The child is not reaped yet, so its pid (the group's id) cannot have been
    // given to another process: this SIGKILL reaches only what is left of the
    // child's group.
    let _ = killpg(child, Signal::SIGKILL);
    waitpid(child, None).ok()
}

/// Whether the child exits within `limit` (checked every 5 ms), without reaping it.
fn exits_within(child: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if has_exited(child) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the child has exited, without reaping it (`WNOWAIT`): until we reap it,
/// its pid and so its process group id stay ours to signal.
pub fn has_exited(child: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(child), flags), Ok(WaitStatus::StillAlive))
}
// ANCHOR_END: group
