//! socket-preview's promises, checked by running its binary with a deadline. Every test
//! uses port 0 (the kernel picks a free port): tests run in parallel.

use lesson_test::{
    Lesson, TempDir, assert_usage_errors, check_transcript, check_transcript_of,
    number_after,
};
use nix::sys::signal::Signal;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_socket-preview");

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// The port the server printed: `server listening on 127.0.0.1:<port>`.
fn port_of(stderr: &str) -> u16 {
    let port = number_after(stderr, "listening on 127.0.0.1:");
    u16::try_from(port).expect("a port")
}

/// A bash script that closes every descriptor above 2 it inherited (a test runner may
/// pass some on), sets the descriptor limit to `limit`, and runs the lesson with `args`.
fn with_fd_limit(limit: u32, args: &str) -> Lesson {
    let script = format!(
        "for fd in /proc/$$/fd/*; do n=${{fd##*/}}; \
         [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done; \
         ulimit -n {limit}; exec \"$0\" {args} \"$@\""
    );
    Lesson::new("bash").args(["-c", &script, BIN])
}

fn transcript(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../docs/src/transcripts/{name}"))
}

#[test]
fn five_clients_are_answered_in_the_documents_format() {
    let run = lesson().args(["--port", "0"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let mut lines = run.texts();
    lines.sort();
    let expected: Vec<String> = (0..5)
        .map(|i| format!("client got: [b\"server got: [b'client{i}']\"]"))
        .collect();
    assert_eq!(lines, expected, "{}", run.transcript());
    assert!(
        run.stderr.contains("server answered 5 of 5 connections"),
        "{}",
        run.transcript()
    );
}

#[test]
fn port_zero_asks_the_kernel_and_prints_the_port() {
    let run = lesson().args(["--port", "0", "--clients", "1"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_ne!(port_of(&run.stderr), 0, "{}", run.transcript());
}

#[test]
fn an_immediate_rerun_on_the_same_port_succeeds() {
    let first = lesson().args(["--port", "0", "--clients", "2"]).run();
    assert_eq!(first.code(), Some(0), "{}", first.transcript());
    let port = port_of(&first.stderr).to_string();
    // The first run's connections linger in TIME_WAIT on this port: SO_REUSEADDR lets
    // the second server bind it anyway.
    let second = lesson().args(["--port", &port, "--clients", "2"]).run();
    assert_eq!(second.code(), Some(0), "{}", second.transcript());
    assert_eq!(second.lines.len(), 2, "{}", second.transcript());
}

#[test]
fn without_reuse_address_a_rerun_fails_like_the_document() {
    // socket-preview is the package's default binary: the shorter command fits.
    let shown = "cargo run -q -p sockets --";
    let first = lesson()
        .shown_as(shown)
        .args(["--no-reuse-address", "--clients", "1", "--port", "0"])
        .merge_stderr()
        .run();
    assert_eq!(first.code(), Some(0), "{}", first.transcript());
    let port = port_of(&first.stdout_text()).to_string();
    let second = lesson()
        .shown_as(shown)
        .args(["--no-reuse-address", "--clients", "1", "--port", &port])
        .merge_stderr()
        .run();
    assert_eq!(second.code(), Some(1), "{}", second.transcript());
    let wanted = format!("bind 127.0.0.1:{port}: Address already in use");
    assert!(
        second.stdout_text().contains(&wanted),
        "{}",
        second.transcript()
    );
    assert!(
        second.stdout_text().contains("TIME_WAIT"),
        "{}",
        second.transcript()
    );
    let both = format!(
        "$ {}\n{}$ {}\n{}",
        first.shown.as_deref().unwrap(),
        first.stdout_text(),
        second.shown.as_deref().unwrap(),
        second.stdout_text()
    );
    check_transcript(&transcript("sockets-no-reuse.txt"), &both);
}

#[test]
fn a_port_in_use_is_a_clear_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = lesson().args(["--port", &port]).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let wanted =
        format!("socket-preview: bind 127.0.0.1:{port}: Address already in use");
    assert!(run.stderr.contains(&wanted), "{}", run.transcript());
    assert!(run.stdout.is_empty(), "{}", run.transcript());
}

#[test]
fn an_address_of_no_local_interface_is_refused() {
    let run = lesson().args(["--host", "192.0.2.1", "--port", "0"]).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("bind 192.0.2.1:0")
            && run.stderr.contains("no interface"),
        "{}",
        run.transcript()
    );
}

#[test]
fn an_unknown_host_is_a_clear_error() {
    let run = lesson()
        .args(["--host", "no such host", "--port", "0"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("resolve no such host"),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_same_conversation_over_a_unix_socket_leaves_no_file() {
    let dir = TempDir::new("socket-preview");
    let path = dir.path().join("preview.sock");
    let run = lesson().arg("--unix").arg(&path).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 5, "{}", run.transcript());
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
}

#[test]
fn the_most_clients_are_all_answered() {
    let run = lesson().args(["--port", "0", "--clients", "200"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 200, "{}", run.transcript());
}

#[test]
fn a_closed_stdout_is_reported_not_a_panic() {
    // The reader (`true`) is gone before the lesson starts: every write gets EPIPE.
    let script = r#"{ sleep 0.5; exec "$0" --port 0; } | true; echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = Lesson::new("bash").args(["-c", script, BIN]).run();
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    for i in 0..5 {
        let wanted = format!("client{i}: write stdout: Broken pipe");
        assert!(run.stderr.contains(&wanted), "{}", run.transcript());
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn a_full_stdout_is_reported_and_a_full_stderr_is_survived() {
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" --port 0 >/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.stderr.contains("write stdout"), "{}", run.transcript());
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" --port 0 2>/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 5, "{}", run.transcript());
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" --help >/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
}

#[test]
fn few_descriptors_make_clients_fail_cleanly_never_hang() {
    // 3 descriptors for stdio, 1 for the listener, 1 more: the first client's socket
    // takes it, so the server cannot accept that client (EMFILE), which gets no reply
    // in time, and the other clients cannot make a socket (EMFILE) meanwhile. (With
    // a few more, a busy machine could run the clients one after the other, each
    // answered, and none would fail.)
    let run = with_fd_limit(5, "--port 0 --clients 5 --timeout 2").run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("in time; giving up")
            && run.stderr.contains("server: accept on"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("Too many open files"),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn bad_options_exit_2_naming_the_option_and_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--port", "65536"],
            "--port \"65536\": must be from 0 to 65535",
        ),
        (&["--port", "-1"], "--port"),
        (
            &["--clients", "0"],
            "--clients \"0\": must be from 1 to 200",
        ),
        (&["--clients", "201"], "must be from 1 to 200"),
        (
            &["--timeout", "0"],
            "--timeout \"0\": must be from 0.01 to 3600",
        ),
        (&["--timeout", "3601"], "must be from 0.01 to 3600"),
        (
            &["--unix", "x", "--port", "1"],
            "--unix excludes --host and --port",
        ),
        (&["--fast"], "unknown option --fast"),
        (&["spam"], "unexpected argument \"spam\""),
    ];
    assert_usage_errors(lesson, "Usage: socket-preview", cases);
}

#[test]
fn help_lists_every_option() {
    let run = lesson().arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let help = run.stdout_text();
    for needle in [
        "Usage: socket-preview",
        "--clients N",
        "--host ADDR",
        "--port N",
        "--unix PATH",
        "--timeout SECS",
        "--no-reuse-address",
        "--show-fds",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
}

#[test]
fn book_transcript_matches_a_fresh_run() {
    // One client: with five, the order of their lines varies from run to run.
    let run = lesson()
        .shown_as("cargo run -q -p sockets --")
        .args(["--clients", "1", "--port", "0"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    check_transcript_of(&transcript("sockets.txt"), &run);
}

/// socket-preview blocked for good: with 5 descriptors (stdio, the listener, one client
/// socket) the one connected client waits for a reply, and the server cannot accept it,
/// having no descriptor left for the connection. The other clients fail at once.
fn blocked(extra: &[&str]) -> lesson_test::Running {
    let mut running = with_fd_limit(5, "--timeout 60").args(extra).spawn();
    running.wait_for_stderr("server: accept on");
    running
}

#[test]
fn every_stop_signal_ends_it_cleanly_while_it_is_blocked() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let run = blocked(&["--port", "0"]).stop_with(signal);
        assert!(
            run.stderr.contains("before every client was answered"),
            "{}",
            run.transcript()
        );
        // A failing accept is reported once, not once per retry.
        assert_eq!(
            run.stderr.matches("server: accept on").count(),
            1,
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn ctrl_c_removes_the_socket_file() {
    let dir = TempDir::new("socket-preview");
    let path = dir.path().join("blocked.sock");
    let path_arg = path.to_str().unwrap();
    let running = blocked(&["--unix", path_arg]);
    assert_eq!(dir.entries(), ["blocked.sock"]);
    running.stop_with(Signal::SIGINT);
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
}

#[test]
fn ipv6_loopback_works_both_ways_of_binding() {
    if TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: this machine has no IPv6 loopback");
        return;
    }
    for extra in [&[][..], &["--no-reuse-address"][..]] {
        let run = lesson()
            .args(["--host", "::1", "--port", "0", "--clients", "2"])
            .args(extra)
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(run.lines.len(), 2, "{}", run.transcript());
        assert!(
            run.stderr.contains("listening on [::1]:"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn a_second_signal_ends_it_at_once_with_its_own_status() {
    let running = blocked(&["--port", "0"]);
    // Two different signals, so they cannot merge into one: the first asks for a clean
    // stop, the second (seeing a stop already asked for) exits at once, 128 + 15.
    running.signal(Signal::SIGINT);
    running.signal(Signal::SIGTERM);
    let run = running.finish();
    assert!(
        matches!(run.code(), Some(130 | 143)),
        "{}",
        run.transcript()
    );
}
