//! socket-progs: the server and the clients as separate programs. Port 0 in every test;
//! socket paths in a TempDir.

use lesson_test::{Lesson, Running, TempDir, assert_usage_errors, number_after};
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_socket-progs");

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// A server lives for the whole test, which takes a second or two: a shorter deadline
/// makes a broken server (a mutant that never listens) fail fast.
fn server_lesson() -> Lesson {
    Lesson::new(BIN)
        .deadline(Duration::from_secs(10))
        .arg("server")
}

/// A TCP server on a port the kernel chose; returns it and the port.
fn tcp_server(extra: &[&str]) -> (Running, String) {
    let mut server = server_lesson().args(["--port", "0"]).args(extra).spawn();
    let port = number_after(&server.wait_for_stderr("listening on"), "127.0.0.1:");
    (server, port.to_string())
}

/// A connection from the test itself, whose reads give up after 5 s: a broken server
/// fails the test instead of hanging it.
fn connect(port: &str) -> TcpStream {
    let stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn reply_line(name: &str) -> String {
    format!("client got: [b\"server got: [b'{name}']\"]")
}

#[test]
fn separate_client_programs_are_answered_until_ctrl_c() {
    let (server, port) = tcp_server(&[]);
    let one = lesson().args(["client", "--port", &port]).run();
    assert_eq!(one.code(), Some(0), "{}", one.transcript());
    let name = format!("client:process={}", one.pid);
    assert_eq!(one.texts(), [reply_line(&name)], "{}", one.transcript());
    // The document's `else`: any other number runs five client threads.
    let five = lesson().args(["7", "--port", &port]).run();
    assert_eq!(five.code(), Some(0), "{}", five.transcript());
    let mut lines = five.texts();
    lines.sort();
    let expected: Vec<String> = (0..5)
        .map(|i| reply_line(&format!("client:thread={i}")))
        .collect();
    assert_eq!(lines, expected, "{}", five.transcript());
    let run = server.stop_with(Signal::SIGINT);
    assert!(
        run.stderr.contains("after answering 6 connections"),
        "{}",
        run.transcript()
    );
}

#[test]
fn sigterm_and_sighup_stop_a_server_blocked_in_accept() {
    for signal in [Signal::SIGTERM, Signal::SIGHUP] {
        let (server, _) = tcp_server(&[]);
        std::thread::sleep(Duration::from_millis(100));
        server.stop_with(signal);
    }
}

#[test]
fn the_server_listens_on_loopback_only_by_default() {
    let (server, port) = tcp_server(&[]);
    // /proc/net/tcp: local address in hex, state 0A = LISTEN. 0100007F is 127.0.0.1.
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port: u16 = port.parse().unwrap();
    let listening: Vec<&str> = table
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[1].ends_with(&format!(":{port:04X}"))
                && fields[3] == "0A"
        })
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(
        listening[0].contains(&format!("0100007F:{port:04X}")),
        "{listening:?}"
    );
    server.stop_with(Signal::SIGINT);
}

#[test]
fn a_server_stops_by_itself_after_the_connections_asked_for() {
    let (server, port) = tcp_server(&["--connections", "1"]);
    let one = lesson().args(["2", "--port", &port]).run();
    assert_eq!(one.code(), Some(0), "{}", one.transcript());
    let run = server.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stderr.contains("answered 1 connections"),
        "{}",
        run.transcript()
    );
}

#[test]
fn no_server_says_to_start_it() {
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port().to_string();
    drop(gone); // nobody listens there now
    let run = lesson().args(["client", "--port", &port]).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let wanted = format!("connect 127.0.0.1:{port}: Connection refused");
    assert!(run.stderr.contains(&wanted), "{}", run.transcript());
    assert!(
        run.stderr.contains("start it first"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_silent_client_is_hung_up_on_and_the_next_one_answered() {
    let (server, port) = tcp_server(&["--timeout", "0.3"]);
    let mut silent = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    // The server gives up and closes: we read EOF, not a reply.
    assert_eq!(silent.read_to_end(&mut rest).unwrap(), 0);
    let next = lesson().args(["client", "--port", &port]).run();
    assert_eq!(next.code(), Some(0), "{}", next.transcript());
    let run = server.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("no message from"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("in time; hung up"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_client_that_leaves_mid_message_is_reported_and_the_server_goes_on() {
    let (server, port) = tcp_server(&[]);
    let mut half = connect(&port);
    half.write_all(b"clie").unwrap();
    drop(half);
    let next = lesson().args(["client", "--port", &port]).run();
    assert_eq!(next.code(), Some(0), "{}", next.transcript());
    let run = server.stop_with(Signal::SIGINT);
    assert!(
        run.stderr
            .contains("in the middle of a message, after 4 bytes: b'clie'"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_too_long_message_is_refused() {
    let (server, port) = tcp_server(&[]);
    let mut long = connect(&port);
    long.write_all(&[b'x'; 2000]).unwrap();
    let mut rest = Vec::new();
    let _ = long.read_to_end(&mut rest); // hung up on (EOF, or a reset)
    let run = server.stop_with(Signal::SIGINT);
    assert!(
        run.stderr.contains("no newline in the first 1024 bytes"),
        "{}",
        run.transcript()
    );
}

/// A fake server: accepts one connection, reads the request, then does `then`.
fn fake_server(then: fn(TcpStream)) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        // Bounded: a client that never comes (a broken lesson) ends the thread in 10 s.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if std::time::Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(err) => panic!("no client came: {err}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = [0u8; 64];
        let _ = stream.read(&mut request);
        then(stream);
    });
    (port, thread)
}

#[test]
fn a_server_that_resets_mid_reply_is_reported() {
    let (port, fake) = fake_server(|mut stream| {
        stream.write_all(b"server got: [b'cl").unwrap();
        // SO_LINGER 0: close sends a reset (RST) instead of an orderly FIN.
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        nix::sys::socket::setsockopt(
            &stream,
            nix::sys::socket::sockopt::Linger,
            &linger,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(stream);
    });
    let run = lesson().args(["client", "--port", &port]).run();
    fake.join().unwrap();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Connection reset by peer"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_server_that_leaves_mid_reply_is_reported() {
    let (port, fake) = fake_server(|mut stream| {
        stream.write_all(b"server got: [b'cl").unwrap();
    });
    let run = lesson().args(["client", "--port", &port]).run();
    fake.join().unwrap();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("in the middle of a message, after 17 bytes"),
        "{}",
        run.transcript()
    );
}

#[test]
fn extra_data_after_the_reply_is_reported() {
    let (port, fake) = fake_server(|mut stream| {
        stream.write_all(b"server got: [b'x']\nmore\n").unwrap();
    });
    let run = lesson().args(["client", "--port", &port]).run();
    fake.join().unwrap();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("unexpected data after the reply: b'more'"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_server_that_never_replies_times_out_with_status_3() {
    // Listening, never accepting: the kernel completes the connection, nobody answers.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port().to_string();
    let run = lesson()
        .args(["client", "--port", &port, "--timeout", "0.3"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr.contains("in time; giving up"),
        "{}",
        run.transcript()
    );
    drop(mute);
}

#[test]
fn ctrl_c_stops_a_client_waiting_for_its_reply() {
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port().to_string();
    let client = lesson()
        .args(["threads", "--port", &port, "--timeout", "60"])
        .spawn();
    std::thread::sleep(Duration::from_millis(200));
    client.stop_with(Signal::SIGINT);
    drop(mute);
}

#[test]
fn over_a_unix_socket_the_file_is_removed_on_ctrl_c() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("progs.sock");
    let mut server = server_lesson().arg("--unix").arg(&path).spawn();
    let said = server.wait_for_stderr("listening on");
    assert!(
        said.contains(&format!("listening on {}", path.display())),
        "{said}"
    );
    let one = lesson().arg("client").arg("--unix").arg(&path).run();
    assert_eq!(one.code(), Some(0), "{}", one.transcript());
    assert_eq!(one.lines.len(), 1, "{}", one.transcript());
    assert_eq!(dir.entries(), ["progs.sock"]);
    server.stop_with(Signal::SIGTERM);
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
}

#[test]
fn a_stale_socket_file_from_a_killed_server_is_replaced() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("stale.sock");
    let mut killed = server_lesson().arg("--unix").arg(&path).spawn();
    killed.wait_for_stderr("listening on");
    killed.signal(Signal::SIGKILL); // no clean-up: the file stays, nobody listens
    let _ = killed.finish();
    assert_eq!(dir.entries(), ["stale.sock"]);
    let mut server = server_lesson()
        .arg("--unix")
        .arg(&path)
        .args(["--connections", "1"])
        .spawn();
    server.wait_for_stderr("listening on");
    let one = lesson().arg("client").arg("--unix").arg(&path).run();
    assert_eq!(one.code(), Some(0), "{}", one.transcript());
    let run = server.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stderr.contains("removing stale socket file"),
        "{}",
        run.transcript()
    );
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
}

#[test]
fn a_second_server_on_a_live_socket_path_is_refused() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("live.sock");
    let mut first = server_lesson().arg("--unix").arg(&path).spawn();
    first.wait_for_stderr("listening on");
    let second = server_lesson().arg("--unix").arg(&path).run();
    assert_eq!(second.code(), Some(1), "{}", second.transcript());
    assert!(
        second
            .stderr
            .contains("a server is already listening there"),
        "{}",
        second.transcript()
    );
    // The first one still works, and its file is still there.
    let one = lesson().arg("client").arg("--unix").arg(&path).run();
    assert_eq!(one.code(), Some(0), "{}", one.transcript());
    first.stop_with(Signal::SIGINT);
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_and_left_intact() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "keep me").unwrap();
    let run = server_lesson().arg("--unix").arg(&path).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("exists and is a regular file, not a socket"),
        "{}",
        run.transcript()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn a_missing_directory_is_a_clear_error_on_both_sides() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("no-such-dir/s.sock");
    let run = server_lesson().arg("--unix").arg(&path).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let wanted = format!("bind {}: No such file or directory", path.display());
    assert!(run.stderr.contains(&wanted), "{}", run.transcript());
    let run = lesson().arg("client").arg("--unix").arg(&path).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("start it first"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_stale_socket_file_refuses_a_client_with_advice() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("old.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens
    let run = lesson().arg("client").arg("--unix").arg(&path).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Connection refused"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("start it first"),
        "{}",
        run.transcript()
    );
}

#[test]
fn bad_command_lines_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "MODE is missing"),
        (&["spam"], "MODE \"spam\": must be 1 or server"),
        (&["server", "client"], "unexpected argument \"client\""),
        (
            &["server", "--connections", "0"],
            "--connections \"0\": must be from 1",
        ),
        (&["threads", "--clients", "201"], "must be from 1 to 200"),
        (&["client", "--port", "70000"], "must be from 0 to 65535"),
        (&["client", "--unix", "x", "--host", "h"], "--unix excludes"),
        (&["server", "--fast"], "unknown option --fast"),
    ];
    assert_usage_errors(lesson, "Usage: socket-progs", cases);
}

#[test]
fn help_lists_every_mode_and_option() {
    let run = lesson().arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let help = run.stdout_text();
    for needle in [
        "Usage: socket-progs MODE",
        "1, server",
        "2, client",
        "3, threads",
        "--clients N",
        "--connections N",
        "--host ADDR",
        "--port N",
        "--unix PATH",
        "--timeout SECS",
        "--no-reuse-address",
        "--show-fds",
    ] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
    // Every option and mode line: indented two spaces, description in one column.
    let columns: Vec<usize> = help
        .lines()
        .filter(|line| line.starts_with("  -") || line.starts_with("  1,"))
        .map(|line| {
            line.find("   ")
                .map(|gap| gap + line[gap..].len() - line[gap..].trim_start().len())
        })
        .map(|column| column.expect("a description after the option"))
        .collect();
    assert!(columns.len() >= 9, "{help}");
    assert!(
        columns.iter().all(|c| *c == columns[0]),
        "{columns:?}\n{help}"
    );
}

#[test]
fn a_socket_file_replaced_by_someone_else_is_left_alone() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("swap.sock");
    let mut server = server_lesson().arg("--unix").arg(&path).spawn();
    server.wait_for_stderr("listening on");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "not yours").unwrap();
    server.stop_with(Signal::SIGINT);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not yours");
}

#[test]
fn exactly_the_longest_message_without_a_newline_is_refused_at_once() {
    let (server, port) = tcp_server(&["--timeout", "10"]);
    let mut long = connect(&port);
    long.write_all(&[b'x'; 1024]).unwrap(); // and keep the connection open
    let mut rest = Vec::new();
    let _ = long.read_to_end(&mut rest); // hung up on at once, not after 10 s
    let run = server.stop_with(Signal::SIGINT);
    assert!(
        run.stderr.contains("no newline in the first 1024 bytes"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_message_of_the_longest_length_is_answered() {
    let (server, port) = tcp_server(&[]);
    let mut long = connect(&port);
    let mut message = vec![b'x'; 1023];
    message.push(b'\n');
    long.write_all(&message).unwrap();
    let mut reply = Vec::new();
    long.read_to_end(&mut reply).unwrap();
    let expected = format!("server got: [b'{}']\n", "x".repeat(1023));
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    server.stop_with(Signal::SIGINT);
}

/// A listening socket made by hand with a backlog of 0 (a queue of one), filled.
fn full_tcp_listener() -> (std::os::fd::OwnedFd, TcpStream, String) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, getsockname,
        listen, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let port = getsockname::<SockaddrIn>(fd.as_raw_fd()).unwrap().port();
    let first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    (fd, first, port.to_string())
}

#[test]
fn a_connect_that_gets_no_answer_times_out_with_status_3() {
    // The queue is full: the kernel drops the client's SYN, and connect waits.
    let (_listener, _first, port) = full_tcp_listener();
    let run = lesson()
        .args(["client", "--port", &port, "--timeout", "0.5"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    let wanted = format!("connect 127.0.0.1:{port}: no answer in time; giving up");
    assert!(run.stderr.contains(&wanted), "{}", run.transcript());
}

/// A Unix listener that never accepts, its queue filled by non-blocking connects.
fn full_unix_listener(
    path: &std::path::Path,
) -> (UnixListener, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, connect, socket,
    };
    use std::os::fd::AsRawFd;
    let listener = UnixListener::bind(path).unwrap();
    let mut queued = Vec::new();
    for _ in 0..10_000 {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        match connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()) {
            Ok(()) => queued.push(fd),
            Err(nix::errno::Errno::EAGAIN) => return (listener, queued),
            Err(errno) => panic!("connect: {errno}"),
        }
    }
    panic!("the listen queue never filled");
}

#[test]
fn a_full_unix_listen_queue_times_out_and_ctrl_c_stops_the_wait() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("full.sock");
    let (_listener, _queued) = full_unix_listener(&path);
    let run = lesson()
        .args(["client", "--timeout", "0.5", "--unix"])
        .arg(&path)
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr.contains("the server's listen queue stayed full"),
        "{}",
        run.transcript()
    );
    let waiting = lesson()
        .args(["client", "--timeout", "60", "--unix"])
        .arg(&path)
        .spawn();
    std::thread::sleep(Duration::from_millis(200));
    waiting.stop_with(Signal::SIGTERM);
}

#[test]
fn a_server_without_reuse_address_cannot_be_restarted_at_once() {
    let (server, port) = tcp_server(&["--no-reuse-address", "--connections", "1"]);
    let one = lesson().args(["client", "--port", &port]).run();
    assert_eq!(one.code(), Some(0), "{}", one.transcript());
    assert_eq!(server.finish().code(), Some(0));
    // The server hung up first: its side of the connection is in TIME_WAIT.
    let again = server_lesson()
        .args(["--no-reuse-address", "--port", &port])
        .run();
    assert_eq!(again.code(), Some(1), "{}", again.transcript());
    let wanted = format!("bind 127.0.0.1:{port}: Address already in use");
    assert!(again.stderr.contains(&wanted), "{}", again.transcript());
}

#[test]
fn a_path_of_any_other_kind_is_refused_by_name_and_left_intact() {
    let dir = TempDir::new("socket-progs");
    let folder = dir.path().join("a-dir");
    std::fs::create_dir(&folder).unwrap();
    let fifo = dir.path().join("a-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap();
    let link = dir.path().join("a-link");
    std::os::unix::fs::symlink("nowhere", &link).unwrap();
    for (path, kind) in [
        (&folder, "a directory"),
        (&fifo, "a FIFO"),
        (&link, "a symbolic link"),
    ] {
        let run = server_lesson().arg("--unix").arg(path).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        let wanted = format!("exists and is {kind}, not a socket");
        assert!(run.stderr.contains(&wanted), "{}", run.transcript());
    }
    assert_eq!(dir.entries(), ["a-dir", "a-fifo", "a-link"]);
}

#[test]
fn a_socket_of_another_type_at_the_path_is_not_taken_for_stale() {
    let dir = TempDir::new("socket-progs");
    let path = dir.path().join("datagram.sock");
    let datagram = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let run = server_lesson().arg("--unix").arg(&path).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Protocol wrong type for socket"),
        "{}",
        run.transcript()
    );
    assert_eq!(dir.entries(), ["datagram.sock"]);
    drop(datagram);
}

#[test]
fn an_accept_that_keeps_failing_is_reported_once_per_streak() {
    // Descriptors 0 to 2, and 3 for the listener: every accept fails with EMFILE, and
    // the waiting connection stays queued, so the server retries every slice.
    let script = "for fd in /proc/$$/fd/*; do n=${fd##*/}; \
                  [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done; \
                  ulimit -n 4; exec \"$0\" server --port 0";
    let mut server = Lesson::new("bash")
        .args(["-c", script, BIN])
        .deadline(Duration::from_secs(10))
        .spawn();
    let port = number_after(&server.wait_for_stderr("listening on"), "127.0.0.1:");
    let _waiting = connect(&port.to_string());
    server.wait_for_stderr("Too many open files");
    // A dozen retries or more: still one note.
    std::thread::sleep(Duration::from_millis(400));
    let run = server.stop_with(Signal::SIGTERM);
    let notes: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.contains("accept on"))
        .collect();
    let wanted = format!(
        "socket-progs: server: accept on 127.0.0.1:{port}: Too many open files"
    );
    assert_eq!(notes.len(), 1, "{}", run.transcript());
    assert!(notes[0].starts_with(&wanted), "{}", run.transcript());
    assert!(
        run.stderr.contains("after answering 0 connections"),
        "{}",
        run.transcript()
    );
}
