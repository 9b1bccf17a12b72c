//! ipc-bench: being written.

fn main() {}
