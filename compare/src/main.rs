//! compare: being written.

fn main() {}
