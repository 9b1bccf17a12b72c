//! What the socket programs share: where to meet (a TCP address or a socket path),
//! the server's loop, the client's conversation, bounded waits, and stopping on
//! Ctrl-C.
//!
//! The binaries (`src/bin/`) show the choreography; this module is the part that is
//! the same on both sides of a connection, and the same for TCP and Unix-domain
//! sockets.
//!
//! The conversation, one connection per client, as in the documents'
//! socket_preview.py:
//!
//! ```text
//! client -> server   client0\n
//! server -> client   server got: [b'client0']\n     then the server hangs up
//! ```
//!
//! Every message ends with a newline: that is the framing. A socket, like a pipe,
//! is a byte stream, and one `read` may return half a message or two of them.

use lesson_kit::pyfmt::bytes_repr;
use lesson_kit::{Context, Failure, note, signal_name};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr, connect,
    getsockopt, socket, sockopt,
};
use nix::sys::stat::{SFlag, lstat};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The documents' port.
pub const DEFAULT_PORT: u16 = 50008;

/// Loopback: only programs on this machine can connect. The documents bind `''`,
/// every interface, which lets any machine on the network talk to the server.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// How long one connection may take, from connect to hang-up, unless `--timeout`
/// says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `--timeout` accepts, in seconds.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<f64> = 0.01..=3600.0;

/// The longest message accepted (the documents' `recv(1024)`), newline included: a
/// peer that never sends a newline cannot make us buffer without end.
pub const MAX_MESSAGE: usize = 1024;

/// How often a waiting program looks at the clock and at Ctrl-C.
pub const SLICE: Duration = Duration::from_millis(20);

/// Set by SIGINT, SIGTERM or SIGHUP; every wait looks at it.
static STOP: AtomicBool = AtomicBool::new(false);
/// Which signal set it.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

// ANCHOR: signals
/// Ctrl-C, SIGTERM and SIGHUP set a flag that every wait checks, a slice at a time,
/// so a program stops within [`SLICE`], closes its sockets and removes its socket
/// file. A second signal ends it at once. (signal-hook installs its handlers with
/// SA_RESTART: a blocking `accept` or `read` would just resume, so nothing here
/// blocks: sockets are non-blocking, and waits are `poll`s with a timeout.)
pub fn stop_on_signals() -> Result<(), Failure> {
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let what = format!("install handler for {}", signal_name(signal));
        flag::register_conditional_shutdown(signal, 128 + signal, &STOP)
            .context(&what)?;
        flag::register_usize(signal, &STOP_SIGNAL, signal as usize)
            .context(&what)?;
        flag::register(signal, &STOP).context(&what)?;
    }
    Ok(())
}
// ANCHOR_END: signals

/// Set by `--show-fds`: print the descriptor table at each step.
static SHOW_FDS: AtomicBool = AtomicBool::new(false);

/// `--show-fds`: from now on, [`show_fds`] prints this process's descriptor table.
pub fn show_fds_from_now(on: bool) {
    SHOW_FDS.store(on, Ordering::SeqCst);
}

/// With `--show-fds`, prints this process's descriptor table on stderr, headed by
/// `who` and the step of the choreography just done: `[fds] server 4242, after
/// accept:`. (The threads of one process share one table: what a client thread
/// shows includes the server's sockets.)
pub fn show_fds(who: &str, step: &str) {
    if SHOW_FDS.load(Ordering::SeqCst) {
        lesson_kit::fds::show(who, step);
    }
}

/// The text [`show_fds`] would print now, for a process that must print it later
/// (empty without `--show-fds`).
pub fn fds_snapshot(who: &str, step: &str) -> String {
    if !SHOW_FDS.load(Ordering::SeqCst) {
        return String::new();
    }
    match lesson_kit::fds::table() {
        Ok(fds) => lesson_kit::fds::render(who, std::process::id(), step, &fds),
        Err(err) => format!("[fds] {who}: read /proc/self/fd: {err}\n"),
    }
}

/// The signal that asked us to stop, if one did.
pub fn stop_signal() -> Option<i32> {
    if !STOP.load(Ordering::SeqCst) {
        return None;
    }
    i32::try_from(STOP_SIGNAL.load(Ordering::SeqCst)).ok()
}

/// Why something did not happen.
#[derive(Debug)]
pub enum Fault {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Stopped,
    /// The time limit ran out; says what we were waiting for.
    TimedOut(String),
    /// A system call failed, or the peer broke the protocol.
    Failed(Failure),
}

impl From<Failure> for Fault {
    fn from(failure: Failure) -> Fault {
        Fault::Failed(failure)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Stopped => f.write_str("stopped"),
            Fault::TimedOut(what) => f.write_str(what),
            Fault::Failed(failure) => write!(f, "{failure}"),
        }
    }
}

// ANCHOR: wait_ready
/// Waits until `fd` is ready for `events` (readable, writable), a slice at a time,
/// until `deadline`. `waiting_for` names the event in the time-out message.
pub fn wait_ready(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Instant,
    waiting_for: &dyn fmt::Display,
) -> Result<(), Fault> {
    loop {
        if stop_signal().is_some() {
            return Err(Fault::Stopped);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fault::TimedOut(format!("no {waiting_for} in time")));
        }
        if poll_once(fd, events, left.min(SLICE))? {
            return Ok(());
        }
    }
}
// ANCHOR_END: wait_ready

/// Sleeps for `pause`, a slice at a time, unless a signal asks us to stop.
pub fn sleep_unless_stopped(pause: Duration) -> Result<(), Fault> {
    let end = Instant::now() + pause;
    loop {
        if stop_signal().is_some() {
            return Err(Fault::Stopped);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(SLICE));
    }
}

/// One `poll` of at most `slice`: whether `fd` is ready (an error or a hang-up
/// counts, so the next call reports it). An interrupted poll is "not yet".
pub fn poll_once(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    slice: Duration,
) -> Result<bool, Failure> {
    let mut fds = [PollFd::new(fd, events)];
    let timeout = PollTimeout::try_from(slice).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(errno) => Err(Failure::new("poll", errno)),
    }
}

/// Where a server listens, as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `--host` and `--port`.
    Tcp { host: String, port: u16 },
    /// `--unix PATH`.
    Unix(PathBuf),
}

/// A resolved address: what a listener is bound to, what a client connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Endpoint {
    /// The address to bind or connect to: a host name is looked up (the first
    /// address).
    pub fn resolve(&self) -> Result<Address, Failure> {
        match self {
            Endpoint::Unix(path) => Ok(Address::Unix(path.clone())),
            Endpoint::Tcp { host, port } => {
                let what = format!("resolve {host}");
                let mut found =
                    (host.as_str(), *port).to_socket_addrs().context(&what)?;
                found
                    .next()
                    .map(Address::Tcp)
                    .ok_or_else(|| Failure::new(what, "no address"))
            }
        }
    }
}

/// A connected socket, TCP or Unix-domain: both are byte streams, and the code that
/// talks over them is the same.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream) => stream.as_fd(),
            Stream::Unix(stream) => stream.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // a socket has no user-space buffer: every write is a send
    }
}

// ANCHOR: socket_file
/// A socket file this program made by binding: removed again when dropped, on every
/// way out (errors and Ctrl-C included), if it is still the one we made.
pub struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    fn made(path: &Path) -> SocketFile {
        let identity = std::fs::symlink_metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()));
        SocketFile {
            path: path.to_owned(),
            identity,
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Someone may have removed it and put something else there: leave that
        // alone.
        let now = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()));
        if now.is_some()
            && now == self.identity
            && let Err(err) = std::fs::remove_file(&self.path)
        {
            note!("warning: unlink {}: {err}", self.path.display());
        }
    }
}
// ANCHOR_END: socket_file

/// A listening socket, and the file it made (for a Unix-domain socket). The fields
/// drop in order: the socket is closed, then its file removed.
pub struct Listener {
    socket: ListenSocket,
    address: Address,
    _file: Option<SocketFile>,
}

enum ListenSocket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// What it is bound to: with port 0, the port the kernel chose.
    pub fn address(&self) -> &Address {
        &self.address
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            ListenSocket::Tcp(listener) => listener.as_fd(),
            ListenSocket::Unix(listener) => listener.as_fd(),
        }
    }

    /// A connection waiting in the queue, and who it is from.
    fn accept(&self) -> io::Result<(Stream, String)> {
        match &self.socket {
            ListenSocket::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                Ok((Stream::Tcp(stream), peer.to_string()))
            }
            ListenSocket::Unix(listener) => {
                let (stream, _) = listener.accept()?;
                // A client's end of a Unix socket usually has no name; say which
                // fd.
                let peer = format!("client on fd {}", stream.as_raw_fd());
                Ok((Stream::Unix(stream), peer))
            }
        }
    }
}

// ANCHOR: bind
/// The server's `socket`, `bind` and `listen`. Done before any client starts, so no
/// client can race the server: a connection that arrives before `accept` waits in
/// the listen queue.
pub fn bind(address: &Address, reuse_address: bool) -> Result<Listener, Failure> {
    let (socket, file) = match address {
        Address::Tcp(addr) if reuse_address => {
            // std does socket(), setsockopt(SO_REUSEADDR), bind() and listen(128).
            // With SO_REUSEADDR the port can be bound again while old connections
            // to it linger in TIME_WAIT, so a rerun right after a run works.
            let listener =
                TcpListener::bind(addr).map_err(|err| bind_error(addr, err))?;
            (ListenSocket::Tcp(listener), None)
        }
        Address::Tcp(addr) => {
            (ListenSocket::Tcp(bind_like_the_original(*addr)?), None)
        }
        Address::Unix(path) => {
            let listener = bind_unix(path)?;
            (ListenSocket::Unix(listener), Some(SocketFile::made(path)))
        }
    };
    let listener = Listener {
        address: match &socket {
            ListenSocket::Tcp(listener) => {
                Address::Tcp(listener.local_addr().context("getsockname")?)
            }
            ListenSocket::Unix(_) => address.clone(),
        },
        socket,
        _file: file,
    };
    // Non-blocking: accept() never blocks; we poll, a slice at a time, watching
    // Ctrl-C.
    match &listener.socket {
        ListenSocket::Tcp(socket) => socket.set_nonblocking(true),
        ListenSocket::Unix(socket) => socket.set_nonblocking(true),
    }
    .context("set listening socket non-blocking")?;
    Ok(listener)
}
// ANCHOR_END: bind

// ANCHOR: no_reuse
/// DELIBERATELY like the document (`--no-reuse-address`): socket, bind, listen(5),
/// and no SO_REUSEADDR. While connections this port served linger in TIME_WAIT (60
/// s on Linux, on the side that closed first: ours), bind fails with EADDRINUSE.
fn bind_like_the_original(addr: SocketAddr) -> Result<TcpListener, Failure> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .context("socket")?;
    nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
        .map_err(|errno| bind_error(&addr, io::Error::from(errno)))?;
    let backlog = Backlog::new(5).context("listen backlog")?;
    nix::sys::socket::listen(&fd, backlog).context(format!("listen {addr}"))?;
    Ok(TcpListener::from(fd))
}
// ANCHOR_END: no_reuse

fn bind_error(addr: &SocketAddr, err: io::Error) -> Failure {
    let hint = match err.kind() {
        // On a line of its own, so the error itself stays short.
        ErrorKind::AddrInUse => {
            concat!(
                "\n  another program listens there, or old connections to it ",
                "linger in\n  TIME_WAIT and SO_REUSEADDR is off (on either side): ",
                "see `ss -tan`"
            )
        }
        ErrorKind::AddrNotAvailable => {
            "; no interface of this machine has that address"
        }
        _ => "",
    };
    Failure::new(format!("bind {addr}"), format!("{err}{hint}"))
}

// ANCHOR: bind_unix
/// Binds a Unix-domain socket at `path`. bind makes the file, and fails if anything
/// is there already. A socket file nobody listens on (left by a server that was
/// killed) is stale: removed, then bound again. Anything else at the path is left
/// alone.
fn bind_unix(path: &Path) -> Result<UnixListener, Failure> {
    let what = format!("bind {}", path.display());
    match UnixListener::bind(path) {
        Ok(listener) => return Ok(listener),
        Err(err) if err.kind() == ErrorKind::AddrInUse => {}
        Err(err) => return Err(Failure::new(what, err)),
    }
    let found = lstat(path).context(format!("lstat {}", path.display()))?;
    let kind = SFlag::from_bits_truncate(found.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFSOCK {
        let is = match kind {
            SFlag::S_IFREG => "a regular file",
            SFlag::S_IFDIR => "a directory",
            SFlag::S_IFIFO => "a FIFO",
            SFlag::S_IFLNK => "a symbolic link",
            _ => "not a socket",
        };
        let why = format!(
            "exists and is {is}, not a socket; refusing to use it (left as it is)"
        );
        return Err(Failure::new(what, why));
    }
    // A socket file: is a server behind it? Knock.
    match UnixStream::connect(path) {
        Ok(knock) => {
            // The live server sees a client that says nothing and leaves.
            drop(knock);
            return Err(Failure::new(what, "a server is already listening there"));
        }
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {}
        Err(err) => {
            return Err(Failure::new(format!("connect {}", path.display()), err));
        }
    }
    note!(
        "removing stale socket file {} (no server behind it)",
        path.display()
    );
    std::fs::remove_file(path).context(format!("unlink {}", path.display()))?;
    UnixListener::bind(path).context(what)
}
// ANCHOR_END: bind_unix

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Connections accepted.
    pub connections: u64,
    /// Of those, how many got their reply.
    pub answered: u64,
}

// ANCHOR: serve
/// The server's loop: accept a connection, answer it, hang up; again, until `done`
/// is set (by the program), `limit` connections were accepted, or a signal stops it
/// (`Err`). One connection at a time, as in the document; each bounded by
/// `timeout`, so a client that connects and says nothing holds up the others for
/// that long at most.
pub fn serve(
    program: &str,
    listener: &Listener,
    timeout: Duration,
    limit: Option<u64>,
    done: &AtomicBool,
) -> Result<Served, (Fault, Served)> {
    let mut served = Served {
        connections: 0,
        answered: 0,
    };
    let mut accept_failing = false;
    loop {
        if stop_signal().is_some() {
            return Err((Fault::Stopped, served));
        }
        if done.load(Ordering::SeqCst)
            || limit.is_some_and(|n| served.connections >= n)
        {
            return Ok(served);
        }
        match poll_once(listener.fd(), PollFlags::POLLIN, SLICE) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(failure) => return Err((failure.into(), served)),
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Another process sharing the socket took it, or the client gave up: no
            // matter.
            Err(err) if err.kind() == ErrorKind::WouldBlock => continue,
            Err(err) => {
                // EMFILE and the like: the connection stays queued; say so (once
                // per streak) and retry soon, when a descriptor may have been
                // closed.
                if !accept_failing {
                    note!(
                        "{program}: server: accept on {}: {err}",
                        listener.address
                    );
                }
                accept_failing = true;
                std::thread::sleep(SLICE);
                continue;
            }
        };
        accept_failing = false;
        // A new socket for this one client; the listening socket stays, for the next.
        show_fds("server", "after accept");
        served.connections += 1;
        match answer(stream, &peer, timeout) {
            Ok(()) => served.answered += 1,
            Err(Fault::Stopped) => return Err((Fault::Stopped, served)),
            Err(fault) => note!("{program}: server: {peer}: {fault}; hung up"),
        }
    }
}
// ANCHOR_END: serve

// ANCHOR: answer
/// One connection: read one message (a line), reply `server got: [<its bytes
/// repr>]`, hang up. The document does one `recv(1024)` and takes whatever it
/// returns for the message; a `recv` can return part of one, so we read until the
/// newline.
fn answer(mut stream: Stream, peer: &str, timeout: Duration) -> Result<(), Fault> {
    set_nonblocking(&stream)?;
    let deadline = Instant::now() + timeout;
    let mut pending = Vec::new();
    let Some(message) = read_line(&mut stream, &mut pending, deadline, &peer)?
    else {
        let why = "closed the connection without sending a message";
        return Err(Fault::Failed(Failure::new(peer, why)));
    };
    let reply = format!("server got: [{}]\n", bytes_repr(&message));
    write_all(&mut stream, reply.as_bytes(), deadline, &peer)?;
    // We hang up first: the client reads EOF after the reply and knows it has all
    // of it. (The side that closes first keeps the connection in TIME_WAIT for a
    // while.)
    drop(stream);
    show_fds("server", "after close (hung up)");
    Ok(())
}
// ANCHOR_END: answer

fn set_nonblocking(stream: &Stream) -> Result<(), Failure> {
    match stream {
        Stream::Tcp(stream) => stream.set_nonblocking(true),
        Stream::Unix(stream) => stream.set_nonblocking(true),
    }
    .context("set socket non-blocking")
}

// ANCHOR: read_line
/// Reads one newline-terminated message, without its newline. `Ok(None)`: the peer
/// closed the connection before sending anything (EOF). EOF in the middle of a
/// message, a reset, a message longer than [`MAX_MESSAGE`], or the deadline: an
/// error. (No `EINTR` case, here or in [`write_all`]: the socket is non-blocking,
/// so a call never sleeps, and only a sleeping call can be interrupted by a
/// signal.)
pub fn read_line(
    stream: &mut Stream,
    pending: &mut Vec<u8>,
    deadline: Instant,
    peer: &dyn fmt::Display,
) -> Result<Option<Vec<u8>>, Fault> {
    let mut chunk = [0u8; MAX_MESSAGE];
    loop {
        if let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            return Ok(Some(line[..end].to_vec()));
        }
        if pending.len() >= MAX_MESSAGE {
            let why = format!("no newline in the first {MAX_MESSAGE} bytes");
            return Err(Fault::Failed(Failure::new(format!("read {peer}"), why)));
        }
        // Wait until the socket has something to say (bytes, EOF or an error),
        // then read it: the read never finds the socket empty, so a trace shows
        // one `recvfrom` per arrival and no `EAGAIN`.
        let waiting_for = format!("message from {peer}");
        wait_ready(stream.fd(), PollFlags::POLLIN, deadline, &waiting_for)?;
        match stream.read(&mut chunk) {
            Ok(0) if pending.is_empty() => return Ok(None),
            Ok(0) => {
                let why = format!(
                    "the peer closed the connection in the middle of a message, \
                     after {} bytes: {}",
                    pending.len(),
                    bytes_repr(pending)
                );
                return Err(Fault::Failed(Failure::new(
                    format!("read {peer}"),
                    why,
                )));
            }
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            // Woken for nothing (another reader was quicker): wait again.
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => {
                return Err(Failure::new(format!("read {peer}"), err).into());
            }
        }
    }
}
// ANCHOR_END: read_line

/// Writes all of `bytes`, waiting (a slice at a time, until `deadline`) while the
/// socket's buffer is full.
pub fn write_all(
    stream: &mut Stream,
    mut bytes: &[u8],
    deadline: Instant,
    peer: &dyn fmt::Display,
) -> Result<(), Fault> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                let waiting_for = format!("room to write to {peer}");
                wait_ready(
                    stream.fd(),
                    PollFlags::POLLOUT,
                    deadline,
                    &waiting_for,
                )?;
            }
            Err(err) => {
                return Err(Failure::new(format!("write {peer}"), err).into());
            }
        }
    }
    Ok(())
}

// ANCHOR: connect
/// The client's `socket` and `connect`, non-blocking so the wait is bounded and
/// Ctrl-C is heard. A TCP connect answers `EINPROGRESS` and finishes in the
/// background: we poll for "writable", then ask the socket how it went
/// (`SO_ERROR`). A Unix connect is immediate, or `EAGAIN` while the server's listen
/// queue is full: then we retry.
pub fn connect_to(address: &Address, deadline: Instant) -> Result<Stream, Fault> {
    let what = format!("connect {address}");
    let (family, target): (_, Box<dyn nix::sys::socket::SockaddrLike>) =
        match address {
            Address::Tcp(addr @ SocketAddr::V4(_)) => {
                (AddressFamily::Inet, Box::new(SockaddrStorage::from(*addr)))
            }
            Address::Tcp(addr) => {
                (AddressFamily::Inet6, Box::new(SockaddrStorage::from(*addr)))
            }
            Address::Unix(path) => (
                AddressFamily::Unix,
                Box::new(UnixAddr::new(path).context(&what)?),
            ),
        };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None).context("socket")?;
    loop {
        match connect(fd.as_raw_fd(), target.as_ref()) {
            Ok(()) => break,
            Err(Errno::EINPROGRESS) => {
                wait_ready(fd.as_fd(), PollFlags::POLLOUT, deadline, &"connection")
                    .map_err(|fault| name_connect_fault(fault, &what))?;
                match getsockopt(&fd, sockopt::SocketError).context(&what)? {
                    0 => break,
                    errno => return Err(refused(&what, Errno::from_raw(errno))),
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {
                if stop_signal().is_some() {
                    return Err(Fault::Stopped);
                }
                if Instant::now() >= deadline {
                    let why = "the server's listen queue stayed full";
                    return Err(Fault::TimedOut(format!("{what}: {why}")));
                }
                std::thread::sleep(SLICE);
            }
            Err(errno) => return Err(refused(&what, errno)),
        }
    }
    Ok(stream_from(fd, address))
}
// ANCHOR_END: connect

fn stream_from(fd: OwnedFd, address: &Address) -> Stream {
    match address {
        Address::Tcp(_) => Stream::Tcp(TcpStream::from(fd)),
        Address::Unix(_) => Stream::Unix(UnixStream::from(fd)),
    }
}

fn name_connect_fault(fault: Fault, what: &str) -> Fault {
    match fault {
        Fault::TimedOut(_) => Fault::TimedOut(format!("{what}: no answer in time")),
        other => other,
    }
}

/// The failure of a connect, with the advice a student needs.
fn refused(what: &str, errno: Errno) -> Fault {
    let hint = match errno {
        Errno::ECONNREFUSED | Errno::ENOENT => {
            "\n  is the server running? start it first, in another terminal:\n  \
             cargo run -p sockets --bin socket-progs -- server"
        }
        _ => "",
    };
    Fault::Failed(Failure::new(
        what,
        format!("{}{hint}", io::Error::from(errno)),
    ))
}

// ANCHOR: converse
/// The client's side of the conversation: connect, send `name` as one line, read
/// the one-line reply, then read on until the server hangs up (EOF), and close.
pub fn converse(
    address: &Address,
    name: &str,
    timeout: Duration,
) -> Result<Vec<u8>, Fault> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect_to(address, deadline)?;
    show_fds(name, "after socket and connect");
    write_all(
        &mut stream,
        format!("{name}\n").as_bytes(),
        deadline,
        address,
    )?;
    let mut pending = Vec::new();
    let Some(reply) = read_line(&mut stream, &mut pending, deadline, address)?
    else {
        let why = "the server closed the connection without replying";
        return Err(Failure::new(format!("read {address}"), why).into());
    };
    // The server sends one line and hangs up: anything more is not ours to ignore.
    match read_line(&mut stream, &mut pending, deadline, address) {
        Ok(None) => {}
        Ok(Some(extra)) => {
            let why =
                format!("unexpected data after the reply: {}", bytes_repr(&extra));
            return Err(Failure::new(format!("read {address}"), why).into());
        }
        Err(fault) => return Err(fault),
    }
    drop(stream); // we close second: the connection is over on both sides
    show_fds(name, "after close");
    Ok(reply)
}
// ANCHOR_END: converse

// ANCHOR: client
/// One client (a thread, or a whole process): the conversation, then the document's
/// line on stdout, `client got: [b"server got: [b'client0']"]`, in one locked write
/// so the threads' lines never mix. Returns the exit code this client asks for.
pub fn client(
    program: &str,
    address: &Address,
    name: &str,
    timeout: Duration,
) -> u8 {
    let reply = match converse(address, name, timeout) {
        Ok(reply) => reply,
        Err(fault) => {
            report_fault(program, name, &fault);
            return match fault {
                Fault::TimedOut(_) => lesson_kit::exit::TIMEOUT,
                _ => lesson_kit::exit::RUNTIME,
            };
        }
    };
    let line = format!("client got: [{}]\n", bytes_repr(&reply));
    match io::stdout().lock().write_all(line.as_bytes()) {
        Ok(()) => lesson_kit::exit::OK,
        Err(err) => {
            note!("{program}: {name}: write stdout: {err}");
            lesson_kit::exit::RUNTIME
        }
    }
}
// ANCHOR_END: client

/// The exit code for several clients: a failure (1) before a time-out (3) before 0.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    let codes: Vec<u8> = codes.into_iter().collect();
    if codes.contains(&lesson_kit::exit::RUNTIME) {
        lesson_kit::exit::RUNTIME
    } else if codes.contains(&lesson_kit::exit::TIMEOUT) {
        lesson_kit::exit::TIMEOUT
    } else {
        lesson_kit::exit::OK
    }
}

/// What a failed client thread or process says, with the program's name.
pub fn report_fault(program: &str, who: &str, fault: &Fault) {
    match fault {
        Fault::Stopped => {}
        Fault::TimedOut(what) => note!("{program}: {who}: {what}; giving up"),
        Fault::Failed(failure) => note!("{program}: {who}: {failure}"),
    }
}

/// The exit status and the `stopped by SIG...` note for a program a signal stopped.
pub fn stopped_exit(program: &str, what: &str) -> std::process::ExitCode {
    let signal = stop_signal().unwrap_or(libc::SIGTERM);
    note!("{program}: stopped by {} {what}", signal_name(signal));
    lesson_kit::signal_exit(signal)
}

/// What `--clients` accepts: threads are cheap, but not free.
pub const CLIENTS_RANGE: std::ops::RangeInclusive<u32> = 1..=200;

/// The end of every `main`: the exit code `run` chose, or its failure reported
/// (`socket-preview: bind 127.0.0.1:50008: Address already in use`) and exit 1.
pub fn exit_with(program: &str, ran: Result<ExitCode, Failure>) -> ExitCode {
    ran.unwrap_or_else(|failure| {
        note!("{program}: {failure}");
        ExitCode::from(lesson_kit::exit::RUNTIME)
    })
}

/// The help lines for choosing where to meet, shared by the programs.
pub const ADDRESS_HELP: &str = concat!(
    "  --host ADDR          the address to listen on or connect to (default\n",
    "                       127.0.0.1: this machine only; the document listens\n",
    "                       on every interface)\n",
    "  --port N             the TCP port, 0 to 65535 (default 50008, the\n",
    "                       document's); 0: the kernel picks a free port for the\n",
    "                       server, which prints it\n",
    "  --unix PATH          use a Unix-domain socket at PATH instead of TCP\n",
    "  --timeout SECS       give up on one connection after SECS, 0.01 to 3600\n",
    "                       (default 10)",
);

/// The help line for `--show-fds`, in the column of [`ADDRESS_HELP`].
pub const SHOW_FDS_HELP: &str = concat!(
    "  --show-fds           print the descriptor table (on stderr) at each step:\n",
    "                       after listen, accept, connect and each close",
);

/// The options every socket program takes: where to meet, and the time limit.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetOptions {
    host: Option<String>,
    port: Option<u16>,
    unix: Option<PathBuf>,
    pub timeout: Duration,
    /// `--show-fds`.
    pub show_fds: bool,
}

impl Default for MeetOptions {
    fn default() -> Self {
        MeetOptions {
            host: None,
            port: None,
            unix: None,
            timeout: DEFAULT_TIMEOUT,
            show_fds: false,
        }
    }
}

impl MeetOptions {
    /// Takes `--host`, `--port`, `--unix`, `--timeout` or `--show-fds`; `Ok(false)`
    /// for other options.
    pub fn accept(
        &mut self,
        option: &str,
        parser: &mut lesson_kit::args::Parser,
    ) -> Result<bool, lesson_kit::args::UsageError> {
        match option {
            "--host" => self.host = Some(parser.value(option)?),
            "--port" => {
                let port: u32 = parser.value_in(option, 0..=u32::from(u16::MAX))?;
                self.port = u16::try_from(port).ok();
            }
            "--unix" => self.unix = Some(parser.value(option)?),
            "--timeout" => {
                let secs = parser.value_in(option, TIMEOUT_RANGE)?;
                self.timeout = Duration::from_secs_f64(secs);
            }
            "--show-fds" => self.show_fds = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Where to meet; `--unix` excludes `--host` and `--port`.
    pub fn endpoint(&self) -> Result<Endpoint, lesson_kit::args::UsageError> {
        match (&self.unix, &self.host, self.port) {
            (Some(path), None, None) => Ok(Endpoint::Unix(path.clone())),
            (Some(_), _, _) => Err(lesson_kit::args::UsageError(
                "--unix excludes --host and --port".to_owned(),
            )),
            (None, host, port) => Ok(Endpoint::Tcp {
                host: host.clone().unwrap_or_else(|| DEFAULT_HOST.to_owned()),
                port: port.unwrap_or(DEFAULT_PORT),
            }),
        }
    }
}
