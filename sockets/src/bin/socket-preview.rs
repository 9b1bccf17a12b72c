//! socket-preview: a TCP server thread and five client threads in one process.
//!
//! Mirrors `socket_preview.py` from the documents: the server listens on port 50008
//! and answers each connection with `server got: [<what it got>]`; five client
//! threads each connect, send `client<i>`, and print the reply, as Python 3 prints
//! bytes:
//!
//!     client got: [b"server got: [b'client0']"]
//!
//! in whatever order the threads finish. The program ends when the five are done.
//!
//! Usage: socket-preview [--clients N] [--host ADDR] [--port N] [--unix PATH]
//!                       [--timeout SECS] [--no-reuse-address] [--show-fds]
//!
//! Try it:
//!     cargo run -p sockets --bin socket-preview
//!     cargo run -p sockets --bin socket-preview -- --port 0 --clients 3
//!     cargo run -p sockets --bin socket-preview -- --unix /tmp/socket-preview.sock
//!     cargo run -p sockets --bin socket-preview -- --no-reuse-address --port 50009
//!     cargo run -p sockets --bin socket-preview -- --no-reuse-address --port 50009
//!     cargo run -p sockets --bin socket-preview -- --port 0 --clients 1 --show-fds
//!
//! (the second `--no-reuse-address` run, within a minute, fails with EADDRINUSE.)
//!
//! Where this differs from the document, on purpose:
//! - it listens on 127.0.0.1 (this machine only) unless `--host` says otherwise;
//!   the document listens on every interface;
//! - the listening socket exists before any client starts, so no client can connect
//!   too early (the document starts the server thread and the clients at the same
//!   time);
//! - messages end with a newline, and each side reads until it has a whole one: one
//!   `recv` is not one message (the document assumes it is);
//! - the server hangs up after each reply and the client closes after reading to
//!   EOF: every connection is closed (the document's server never closes one);
//! - `TcpListener::bind` sets SO_REUSEADDR, so a rerun right after a run works;
//!   `--no-reuse-address` binds like the document and shows EADDRINUSE instead;
//! - every wait is bounded (`--timeout`), and Ctrl-C stops it cleanly.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Failure, exit, note};
use sockets::{
    ADDRESS_HELP, CLIENTS_RANGE, Fault, MeetOptions, SHOW_FDS_HELP, bind, client,
    serve, show_fds, stop_on_signals, stopped_exit, worst,
};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

const PROGRAM: &str = "socket-preview";

struct Options {
    meet: MeetOptions,
    clients: u32,
    reuse_address: bool,
}

// ANCHOR: main
fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    sockets::exit_with(PROGRAM, run(&options))
}

fn run(options: &Options) -> Result<ExitCode, Failure> {
    stop_on_signals()?;
    sockets::show_fds_from_now(options.meet.show_fds);
    let endpoint = options
        .meet
        .endpoint()
        .map_err(|e| Failure::new("options", e))?;
    // The server's socket, bind and listen come first, in the main thread: by the
    // time a client connects, the listening socket exists, and its connection waits
    // in the queue until the server thread accepts it.
    let listener = bind(&endpoint.resolve()?, options.reuse_address)?;
    let address = listener.address().clone();
    note!("{PROGRAM}: server listening on {address}");
    show_fds("server", "after socket, bind and listen");

    // The server thread answers connections until `done` is set.
    let done = AtomicBool::new(false);
    let timeout = options.meet.timeout;
    let (served, code) = thread::scope(|scope| {
        let server =
            scope.spawn(|| serve(PROGRAM, &listener, timeout, None, &done));
        let clients: Vec<_> = (0..options.clients)
            .map(|i| {
                let address = &address;
                let name = format!("client{i}");
                scope.spawn(move || client(PROGRAM, address, &name, timeout))
            })
            .collect();
        // A client thread that panicked counts as failed.
        let codes = clients
            .into_iter()
            .map(|c| c.join().unwrap_or(exit::RUNTIME));
        let code = worst(codes);
        // Every client has its reply, or gave up: the server can stop.
        done.store(true, Ordering::SeqCst);
        (server.join(), code)
    });
    drop(listener); // close the listening socket (and remove its socket file)
    show_fds("server", "after closing the listening socket");

    match served {
        Ok(Ok(served)) => {
            note!(
                "{PROGRAM}: server answered {} of {} connections",
                served.answered,
                served.connections
            );
        }
        Ok(Err((Fault::Stopped, _))) => {}
        Ok(Err((fault, _))) => note!("{PROGRAM}: server: {fault}"),
        Err(_) => note!("{PROGRAM}: the server thread panicked"),
    }
    if sockets::stop_signal().is_some() {
        return Ok(stopped_exit(PROGRAM, "before every client was answered"));
    }
    Ok(ExitCode::from(code))
}
// ANCHOR_END: main

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        meet: MeetOptions::default(),
        clients: 5,
        reuse_address: true,
    };
    while let Some(arg) = parser.next()? {
        if options.meet.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--clients" => {
                options.clients = parser.value_in(&arg, CLIENTS_RANGE)?
            }
            "--no-reuse-address" => options.reuse_address = false,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    options.meet.endpoint()?;
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--clients N] [--host ADDR] [--port N] [--unix PATH]
                      [--timeout SECS] [--no-reuse-address] [--show-fds]

A server thread listens; five client threads connect, each sends `client<i>` and
prints the reply (the documents' socket_preview.py). Ends when every client is done.

Options:
  --clients N          how many client threads, 1 to 200 (default 5)
{ADDRESS_HELP}
  --no-reuse-address   bind like the document, without SO_REUSEADDR: a rerun
                       within a minute fails with EADDRINUSE
{SHOW_FDS_HELP}
                       (the threads share one table)
  -h, --help           print this help

Output: `client got: [b\"server got: [b'client0']\"]` per client on stdout, in the
order they finish; notes on stderr. Ctrl-C, SIGTERM or SIGHUP stop it cleanly.
Exit status: 0 every client got its reply; 1 a system call failed or a client did
not get its reply; 2 bad command line; 3 a client timed out; 129 / 130 / 143
stopped by SIGHUP / SIGINT / SIGTERM (128 + signal).
"
    )
}
