//! simple-ipc: being written.

fn main() {}
