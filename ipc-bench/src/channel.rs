//! The mechanisms: how each one is set up before `fork`, opened after it, and how
//! one message goes in and comes out. The measuring loops (`measure.rs`) only see
//! [`End`].

use crate::ring::{self, Ring, Wait};
use lesson_kit::{Context, Failure};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, open, splice, vmsplice};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::stat::Mode;
use nix::unistd::{mkfifo, pipe2, read, write};
use std::io::IoSlice;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// What `F_SETPIPE_SZ` asks for: room for the largest message in one write.
pub const PIPE_SIZE: usize = 1 << 20;

/// Every mechanism the lesson knows, in the order it measures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Pipe,
    PipeThreads,
    Fifo,
    Socketpair,
    SocketpairThreads,
    Uds,
    Tcp,
    Ring,
    RingSpin,
    RingThreads,
    Vmsplice,
}

pub const ALL: [Mechanism; 11] = [
    Mechanism::Pipe,
    Mechanism::PipeThreads,
    Mechanism::Fifo,
    Mechanism::Socketpair,
    Mechanism::SocketpairThreads,
    Mechanism::Uds,
    Mechanism::Tcp,
    Mechanism::Ring,
    Mechanism::RingSpin,
    Mechanism::RingThreads,
    Mechanism::Vmsplice,
];

impl Mechanism {
    /// The name used by `--only` and in every output.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::PipeThreads => "pipe-threads",
            Mechanism::Fifo => "fifo",
            Mechanism::Socketpair => "socketpair",
            Mechanism::SocketpairThreads => "socketpair-threads",
            Mechanism::Uds => "uds",
            Mechanism::Tcp => "tcp",
            Mechanism::Ring => "ring",
            Mechanism::RingSpin => "ring-spin",
            Mechanism::RingThreads => "ring-threads",
            Mechanism::Vmsplice => "vmsplice",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the two sides are threads of one process (else two processes).
    pub fn threads(self) -> bool {
        matches!(
            self,
            Mechanism::PipeThreads
                | Mechanism::SocketpairThreads
                | Mechanism::RingThreads
        )
    }

    /// Whether it is measured for throughput (bytes per second, one way).
    pub fn streams(self) -> bool {
        self != Mechanism::RingSpin
    }

    /// Whether it is measured for round trips (vmsplice only goes one way).
    pub fn echoes(self) -> bool {
        self != Mechanism::Vmsplice
    }

    /// Whether the receiver sees the bytes (splice moves pages it never maps).
    pub fn sees_bytes(self) -> bool {
        self != Mechanism::Vmsplice
    }
}

/// One side's way to the other, opened: what the loops write to and read from.
pub enum End {
    /// Descriptors: two pipes, or the same socket twice.
    Fds { rx: OwnedFd, tx: OwnedFd },
    /// Two rings in shared memory, one per direction.
    Rings { rx: Ring, tx: Ring },
    /// The sender of `vmsplice`: its pages are given to the pipe, not copied.
    GiftPages { tx: OwnedFd },
    /// The receiver of `splice`: pages go from the pipe to /dev/null, never mapped.
    SplicePages { rx: OwnedFd, sink: OwnedFd },
}

/// One side before `fork`: some mechanisms can be opened before (pipes), some must
/// be opened by the side itself, after (a FIFO's `open` waits for the other side).
pub enum Side {
    Ready(End),
    /// Open FIFO `rx` for reading, then `tx` for writing (or the other order).
    Fifos {
        rx: PathBuf,
        tx: PathBuf,
        rx_first: bool,
    },
    /// Accept one connection on a listening socket (Unix or TCP).
    AcceptUnix(UnixListener),
    AcceptTcp(TcpListener),
    ConnectUnix(PathBuf),
    ConnectTcp(std::net::SocketAddr),
}

/// What a mechanism needs made before `fork`, as two sides: the measuring side `a`
/// (which receives the stream and starts round trips) and the peer `b`.
pub struct Setup {
    pub a: Side,
    pub b: Side,
    /// The pipes' capacity after `F_SETPIPE_SZ`, to report.
    pub pipe_capacity: Option<usize>,
}

/// A pipe whose capacity was raised to [`PIPE_SIZE`] where the system allows it.
fn big_pipe() -> Result<(OwnedFd, OwnedFd, usize), Failure> {
    let (rx, tx) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // ANCHOR: pipe_size
    // A pipe holds 64 KiB by default: a 1 MiB message would take 16 wake-ups of the
    // reader. F_SETPIPE_SZ raises it (up to /proc/sys/fs/pipe-max-size unless
    // root); if refused, the default stays and the report says so.
    let size = libc::c_int::try_from(PIPE_SIZE).unwrap_or(libc::c_int::MAX);
    let capacity = match fcntl(&tx, FcntlArg::F_SETPIPE_SZ(size)) {
        Ok(capacity) => capacity,
        Err(_) => fcntl(&tx, FcntlArg::F_GETPIPE_SZ).context("F_GETPIPE_SZ")?,
    };
    // ANCHOR_END: pipe_size
    Ok((rx, tx, usize::try_from(capacity).unwrap_or(0)))
}

fn stream_pair() -> Result<(OwnedFd, OwnedFd), Failure> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")
}

fn fds(rx: OwnedFd, tx: OwnedFd) -> Side {
    Side::Ready(End::Fds { rx, tx })
}

/// A socket used in both directions: the same descriptor twice.
fn both_ways(socket: OwnedFd) -> Result<End, Failure> {
    let copy = socket.try_clone().context("dup socket")?;
    Ok(End::Fds {
        rx: socket,
        tx: copy,
    })
}

impl Setup {
    /// Makes what `mechanism` needs before `fork`; files go in `dir`.
    pub fn new(mechanism: Mechanism, dir: &Path) -> Result<Setup, Failure> {
        let mut capacity = None;
        let (a, b) = match mechanism {
            Mechanism::Pipe | Mechanism::PipeThreads => {
                let (a_rx, b_tx, size) = big_pipe()?; // b -> a: the stream, echoes
                let (b_rx, a_tx, _) = big_pipe()?; // a -> b: round-trip requests
                capacity = Some(size);
                (fds(a_rx, a_tx), fds(b_rx, b_tx))
            }
            Mechanism::Vmsplice => {
                let (rx, tx, size) = big_pipe()?;
                capacity = Some(size);
                let sink = open(
                    "/dev/null",
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .context("open /dev/null")?;
                (
                    Side::Ready(End::SplicePages { rx, sink }),
                    Side::Ready(End::GiftPages { tx }),
                )
            }
            Mechanism::Fifo => {
                let to_a = dir.join("to-a.fifo");
                let to_b = dir.join("to-b.fifo");
                for path in [&to_a, &to_b] {
                    mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)
                        .context(format!("mkfifo {}", path.display()))?;
                }
                // Both open their reading end first would deadlock: an open for
                // reading waits for a writer. So `a` reads first, `b` writes first.
                let a = Side::Fifos {
                    rx: to_a.clone(),
                    tx: to_b.clone(),
                    rx_first: true,
                };
                let b = Side::Fifos {
                    rx: to_b,
                    tx: to_a,
                    rx_first: false,
                };
                (a, b)
            }
            Mechanism::Socketpair | Mechanism::SocketpairThreads => {
                let (a, b) = stream_pair()?;
                (Side::Ready(both_ways(a)?), Side::Ready(both_ways(b)?))
            }
            Mechanism::Uds => {
                let path = dir.join("bench.sock");
                let listener = UnixListener::bind(&path)
                    .context(format!("bind {}", path.display()))?;
                (Side::AcceptUnix(listener), Side::ConnectUnix(path))
            }
            Mechanism::Tcp => {
                let listener =
                    TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
                let address = listener.local_addr().context("getsockname")?;
                (Side::AcceptTcp(listener), Side::ConnectTcp(address))
            }
            Mechanism::Ring | Mechanism::RingSpin | Mechanism::RingThreads => {
                let wait = if mechanism == Mechanism::RingSpin {
                    Wait::Spin
                } else {
                    Wait::Block
                };
                let mut rings = ring::map(2, mechanism.name())?.into_iter();
                let (to_a_tx, to_a_rx) = rings.next().expect("two rings");
                let (to_b_tx, to_b_rx) = rings.next().expect("two rings");
                let a = End::Rings {
                    rx: to_a_rx.waiting(wait),
                    tx: to_b_tx.waiting(wait),
                };
                let b = End::Rings {
                    rx: to_b_rx.waiting(wait),
                    tx: to_a_tx.waiting(wait),
                };
                (Side::Ready(a), Side::Ready(b))
            }
        };
        Ok(Setup {
            a,
            b,
            pipe_capacity: capacity,
        })
    }
}

impl Side {
    /// Whether this side gets its descriptors only when it opens (after `fork`).
    pub fn opens_late(&self) -> bool {
        !matches!(self, Side::Ready(_))
    }

    /// Opens this side (after `fork`, in the process or thread that uses it).
    pub fn open(self) -> Result<End, Failure> {
        match self {
            Side::Ready(end) => Ok(end),
            Side::Fifos { rx, tx, rx_first } => {
                let open_rx = || {
                    open(&rx, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .context(format!("open {} for reading", rx.display()))
                };
                let open_tx = || {
                    open(&tx, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .context(format!("open {} for writing", tx.display()))
                };
                let (rx_fd, tx_fd) = if rx_first {
                    let r = open_rx()?;
                    (r, open_tx()?)
                } else {
                    let t = open_tx()?;
                    (open_rx()?, t)
                };
                // A FIFO is a pipe with a name: the same capacity rule applies.
                let size =
                    libc::c_int::try_from(PIPE_SIZE).unwrap_or(libc::c_int::MAX);
                let _ = fcntl(&tx_fd, FcntlArg::F_SETPIPE_SZ(size));
                Ok(End::Fds {
                    rx: rx_fd,
                    tx: tx_fd,
                })
            }
            Side::AcceptUnix(listener) => {
                let (socket, _) =
                    listener.accept().context("accept unix socket")?;
                drop(listener); // one connection is all we take
                both_ways(socket.into())
            }
            Side::AcceptTcp(listener) => {
                let (socket, _) = listener.accept().context("accept tcp")?;
                drop(listener);
                // Without it, Nagle's algorithm holds small writes back for up to
                // 40 ms waiting for more to send with them.
                socket.set_nodelay(true).context("TCP_NODELAY")?;
                both_ways(socket.into())
            }
            Side::ConnectUnix(path) => {
                let socket = UnixStream::connect(&path)
                    .context(format!("connect {}", path.display()))?;
                both_ways(socket.into())
            }
            Side::ConnectTcp(address) => {
                let socket = TcpStream::connect(address)
                    .context(format!("connect {address}"))?;
                socket.set_nodelay(true).context("TCP_NODELAY")?;
                both_ways(socket.into())
            }
        }
    }
}

// ANCHOR: end
impl End {
    /// Sends some of `bytes` (one system call, or one copy into the ring) and
    /// returns how many went: like `write`, it may take fewer than offered.
    pub fn send(&mut self, bytes: &[u8]) -> Result<usize, Errno> {
        match self {
            End::Fds { tx, .. } => retry(|| write(&*tx, bytes)),
            End::Rings { tx, .. } => Ok(tx.write(bytes)),
            // The pipe takes references to our pages instead of a copy. We must not
            // change them until the reader is done: `bytes` is never written again.
            End::GiftPages { tx } => retry(|| {
                vmsplice(&*tx, &[IoSlice::new(bytes)], SpliceFFlags::empty())
            }),
            End::SplicePages { .. } => Err(Errno::EBADF),
        }
    }

    /// Receives at most `max` bytes and shows them to `look` where they are: in
    /// `scratch` after a `read`, or in place in the ring (no copy out). 0 means
    /// EOF.
    pub fn receive(
        &mut self,
        scratch: &mut [u8],
        max: usize,
        look: &mut impl FnMut(&[u8]),
    ) -> Result<usize, Errno> {
        match self {
            End::Fds { rx, .. } => {
                let n = retry(|| read(&*rx, &mut scratch[..max]))?;
                look(&scratch[..n]);
                Ok(n)
            }
            End::Rings { rx, .. } => Ok(rx.read_with(max, look)),
            // Pages move from the pipe to /dev/null: the bytes are never looked at.
            End::SplicePages { rx, sink } => retry(|| {
                splice(&*rx, None, &*sink, None, max, SpliceFFlags::SPLICE_F_MOVE)
            }),
            End::GiftPages { .. } => Err(Errno::EBADF),
        }
    }

    /// Receives at most `buffer.len()` bytes into `buffer` (a copy in every case).
    pub fn read_into(&mut self, buffer: &mut [u8]) -> Result<usize, Errno> {
        match self {
            End::Fds { rx, .. } => retry(|| read(&*rx, buffer)),
            End::Rings { rx, .. } => Ok(rx.read(buffer)),
            End::SplicePages { .. } | End::GiftPages { .. } => Err(Errno::EBADF),
        }
    }
}
// ANCHOR_END: end

/// Calls a system call again when a signal interrupted it before it did anything.
fn retry<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}
