//! `--python`: the same pipe and socketpair loops in Python, for the cost of the
//! language.

use crate::Stop;
use crate::measure::Plan;
use crate::report::Report;
use nix::sys::signalfd::SignalFd;

pub fn run(
    _report: &mut Report,
    _plan: &Plan,
    _signals: &SignalFd,
) -> Result<(), Stop> {
    Ok(())
}
