//! The pieces of Python's `multiprocessing` that the lesson's programs (`multi1` ..
//! `multi5`) use, each built from the system calls it is made of:
//!
//! - [`process`]: `Process`, `start` and `join`: `fork`, a child that ends with
//!   `_exit`, `waitpid`; plus what the Python module leaves out: Ctrl-C ends and
//!   reaps every child, and a child whose parent dies ends too;
//! - [`shm`]: `Value` and `Array`: memory that stays shared after `fork`
//!   (`mmap(MAP_SHARED | MAP_ANONYMOUS)`);
//! - [`lock`]: `Lock`: a futex word in that shared memory;
//! - [`pyobj`]: what `Pipe` carries: Python lists, dicts and sets, written as JSON
//!   lines (instead of pickles) and printed as Python prints them.
//!
//! The queue of `multi4` is short enough to live in that program.

pub mod lock;
pub mod process;
pub mod pyobj;
pub mod shm;

pub use process::{Halt, Team, say};

/// `--show-fds`: when `on`, this process's descriptor table goes to stderr, labelled
/// with who it is and the step of the choreography just done (observation only: the
/// lesson's own calls stay in the lesson). Call it in the parent, or in a child
/// (the parent has one thread, so a child may allocate).
pub fn show_fds(on: bool, who: &str, step: &str) {
    if on {
        lesson_kit::fds::show(who, step);
    }
}
