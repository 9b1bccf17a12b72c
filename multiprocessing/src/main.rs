//! multiprocessing: being written.

fn main() {}
