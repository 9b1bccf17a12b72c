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
