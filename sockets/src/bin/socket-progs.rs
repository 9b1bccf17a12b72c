//! socket-progs: the same server and clients as separate programs, for several
//! terminals.
//!
//! Mirrors `socket-preview-progs.py` from the documents, whose first argument picks
//! the part to run: `1` the server (forever), `2` one client named
//! `client:process=<pid>`, any other number five client threads named
//! `client:thread=<i>`. The words `server`, `client` and `threads` mean the same.
//!
//! Usage: socket-progs MODE [--clients N] [--connections N] [--host ADDR]
//!                          [--port N] [--unix PATH] [--timeout SECS]
//!                          [--no-reuse-address] [--show-fds]
//!
//! Try it, the server in one terminal, the clients in others:
//!     cargo run -p sockets --bin socket-progs -- server
//!     cargo run -p sockets --bin socket-progs -- client
//!     cargo run -p sockets --bin socket-progs -- threads
//!     ss -tan | grep 50008
//!
//! and each program's descriptors, step by step (the server stops after one):
//!     cargo run -p sockets --bin socket-progs -- server --connections 1 --show-fds
//!     cargo run -p sockets --bin socket-progs -- client --show-fds
//!
//! and the same over a Unix-domain socket:
//!     cargo run -p sockets --bin socket-progs -- server --unix /tmp/progs.sock
//!     cargo run -p sockets --bin socket-progs -- client --unix /tmp/progs.sock
//!
//! Where this differs from the document, on purpose: no MODE is a usage error (the
//! document dies with a traceback); a client with no server says to start it; the
//! server listens on 127.0.0.1, frames messages with a newline, closes every
//! connection, gives up on a silent client after `--timeout`, stops cleanly on
//! Ctrl-C (exit 130), and can be restarted at once (SO_REUSEADDR;
//! `--no-reuse-address` shows the document's EADDRINUSE). See socket-preview for
//! the details.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Failure, exit, note};
use sockets::{
    ADDRESS_HELP, Address, CLIENTS_RANGE, Fault, MeetOptions, SHOW_FDS_HELP, bind,
    client, serve, show_fds, stop_on_signals, stopped_exit, worst,
};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::Duration;

const PROGRAM: &str = "socket-progs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Server,
    Client,
    Threads,
}

struct Options {
    mode: Mode,
    meet: MeetOptions,
    clients: u32,
    /// The server stops after this many connections (default: never).
    connections: Option<u64>,
    reuse_address: bool,
}

// ANCHOR: main
fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    sockets::show_fds_from_now(options.meet.show_fds);
    let ran = stop_on_signals().and_then(|()| {
        let endpoint = options
            .meet
            .endpoint()
            .map_err(|e| Failure::new("options", e))?;
        let address = endpoint.resolve()?;
        Ok(match options.mode {
            Mode::Server => server(&address, &options)?,
            Mode::Client => {
                let name = format!("client:process={}", std::process::id());
                clients(&address, vec![name], options.meet.timeout)
            }
            Mode::Threads => {
                let names =
                    (0..options.clients).map(|i| format!("client:thread={i}"));
                clients(&address, names.collect(), options.meet.timeout)
            }
        })
    });
    sockets::exit_with(PROGRAM, ran)
}
// ANCHOR_END: main

// ANCHOR: server
/// Mode 1: serve until Ctrl-C (or `--connections N`).
fn server(address: &Address, options: &Options) -> Result<ExitCode, Failure> {
    let listener = bind(address, options.reuse_address)?;
    note!(
        "{PROGRAM}: server listening on {} (Ctrl-C stops it)",
        listener.address()
    );
    show_fds("server", "after socket, bind and listen");
    let never = AtomicBool::new(false); // nobody else tells this server to stop
    let served = serve(
        PROGRAM,
        &listener,
        options.meet.timeout,
        options.connections,
        &never,
    );
    drop(listener); // close the listening socket (and remove its socket file)
    show_fds("server", "after closing the listening socket");
    match served {
        Ok(served) => {
            note!("{PROGRAM}: server answered {} connections", served.answered);
            Ok(ExitCode::from(exit::OK))
        }
        Err((Fault::Stopped, served)) => Ok(stopped_exit(
            PROGRAM,
            &format!("after answering {} connections", served.answered),
        )),
        Err((fault, _)) => Err(Failure::new("server", fault)),
    }
}
// ANCHOR_END: server

/// Mode 2 (one name) and the others (several names, one thread each).
fn clients(address: &Address, names: Vec<String>, timeout: Duration) -> ExitCode {
    let code = thread::scope(|scope| {
        let threads: Vec<_> = names
            .iter()
            .map(|name| {
                scope.spawn(move || client(PROGRAM, address, name, timeout))
            })
            .collect();
        // A client thread that panicked counts as failed.
        worst(
            threads
                .into_iter()
                .map(|t| t.join().unwrap_or(exit::RUNTIME)),
        )
    });
    if sockets::stop_signal().is_some() {
        return stopped_exit(PROGRAM, "before the reply came");
    }
    ExitCode::from(code)
}

fn parse_mode(word: &str) -> Result<Mode, UsageError> {
    match word {
        "1" | "server" => Ok(Mode::Server),
        "2" | "client" => Ok(Mode::Client),
        "threads" => Ok(Mode::Threads),
        // The document does int(sys.argv[1]): any other number means the threads.
        number if number.parse::<i64>().is_ok() => Ok(Mode::Threads),
        other => Err(UsageError(format!(
            "MODE {other:?}: must be 1 or server, 2 or client, 3 (any other \
             number) or threads"
        ))),
    }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut mode = None;
    let mut options = Options {
        mode: Mode::Server,
        meet: MeetOptions::default(),
        clients: 5,
        connections: None,
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
            "--connections" => {
                options.connections = Some(parser.value_in(&arg, 1..=u64::MAX)?)
            }
            "--no-reuse-address" => options.reuse_address = false,
            "-h" | "--help" => return Ok(None),
            _ if mode.is_none()
                && (parser.options_ended() || !arg.starts_with('-')) =>
            {
                mode = Some(parse_mode(&arg)?);
            }
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    options.mode = mode.ok_or_else(|| {
        UsageError("MODE is missing (server, client or threads)".into())
    })?;
    options.meet.endpoint()?;
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} MODE [--clients N] [--connections N] [--host ADDR] [--port N]
                         [--unix PATH] [--timeout SECS] [--no-reuse-address]
                         [--show-fds]

The documents' socket-preview-progs.py: the server and its clients as separate
programs. Start the server in one terminal, the clients in others.

Modes:
  1, server            listen and answer every connection until Ctrl-C
  2, client            one client, named client:process=<pid>
  3, threads           five client threads, named client:thread=<i> (any other
                       number does the same, as in the document)

Options:
  --clients N          threads mode: how many client threads, 1 to 200 (default 5)
  --connections N      server mode: stop after N connections (default: never)
{ADDRESS_HELP}
  --no-reuse-address   server mode: bind like the document, without SO_REUSEADDR
{SHOW_FDS_HELP}
  -h, --help           print this help

Output: `client got: [b\"server got: [b'client:process=<pid>']\"]` per client on
stdout; notes on stderr. Ctrl-C, SIGTERM or SIGHUP stop any mode cleanly.
Exit status: 0 done; 1 a system call failed, no server, or a broken reply; 2 bad
command line; 3 no reply in time; 129 / 130 / 143 stopped by SIGHUP / SIGINT /
SIGTERM (128 + signal).
"
    )
}
