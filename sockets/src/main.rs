//! sockets: being written.

fn main() {}
