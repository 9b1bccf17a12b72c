//! `--show-fds`: a process prints its own descriptor table, read from `/proc/self`.
//!
//! This is observation, not plumbing: the lesson's own `pipe`, `fork`, `close` and `dup2`
//! stay in the lesson, and at each step of its choreography it may call [`show`] to print
//! what the kernel now holds for it:
//!
//! ```text
//! [fds] parent 4242, after pipe2:
//!   fd  kind      object          end    flags
//!    0  terminal  /dev/pts/0      rw
//!    1  terminal  /dev/pts/0      rw
//!    2  terminal  /dev/pts/0      rw
//!    3  pipe      pipe:[33045]    read   cloexec
//!    4  pipe      pipe:[33045]    write  cloexec
//! ```
//!
//! The two ends of one pipe show the same inode (`pipe:[33045]`): that is how to tell which
//! process still holds which end. `/proc/self/fd/N` is a link to the object (a path, or
//! `pipe:[inode]`, `socket:[inode]`); `/proc/self/fdinfo/N` holds the open flags in octal,
//! where the low two bits say read, write or both, and `02000000` is `O_CLOEXEC`.
//!
//! Call it where the process may allocate: in the parent, in the child of a single-threaded
//! parent, or in an exec'd program; not between `fork` and `exec` in the child of a
//! multi-threaded process (see the pitfalls of forking).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::FileTypeExt;

/// One open file descriptor, as `/proc/self` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fd {
    pub fd: i32,
    /// `pipe`, `fifo`, `socket`, `terminal`, `file`, `null`, `dir`, or `other`.
    pub kind: &'static str,
    /// What `/proc/self/fd/N` points at: a path, `pipe:[inode]`, `socket:[inode]`.
    pub object: String,
    /// `read`, `write` or `rw`.
    pub end: &'static str,
    pub cloexec: bool,
    pub nonblock: bool,
}

/// The flags bits of `/proc/<pid>/fdinfo/N` that the table shows (Linux values, octal).
const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u32 = 0o2000000;

/// This process's open descriptors, sorted by number.
pub fn table() -> std::io::Result<Vec<Fd>> {
    table_of("self")
}

/// The open descriptors of process `pid` (`"self"` for this one), sorted by number. Reading
/// another process's table needs the same user (or root).
pub fn table_of(pid: &str) -> std::io::Result<Vec<Fd>> {
    let dir = format!("/proc/{pid}/fd");
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // The directory listing itself holds a descriptor while we read: it points at
        // the listing we are making, and goes away with it. Leave it out.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed between the listing and the look
        };
        let object = target.to_string_lossy().into_owned();
        if object.ends_with("/fd") && object.starts_with("/proc/") {
            continue;
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
            .unwrap_or_default();
        let flags = parse_flags(&info).unwrap_or(0);
        fds.push(Fd {
            fd,
            kind: kind_of(&object, &entry.path()),
            end: match flags & O_ACCMODE {
                O_WRONLY => "write",
                O_RDWR => "rw",
                _ => "read",
            },
            object,
            cloexec: flags & O_CLOEXEC != 0,
            nonblock: flags & O_NONBLOCK != 0,
        });
    }
    fds.sort_by_key(|fd| fd.fd);
    Ok(fds)
}

/// Prints this process's table to stderr as one block, headed `[fds] <who> <pid>, <step>:`.
/// The block goes out in one `write`, so blocks of a parent and a child do not interleave.
/// Like [`crate::note!`], it never panics and never fails the lesson.
pub fn show(who: &str, step: &str) {
    let text = match table() {
        Ok(fds) => render(who, std::process::id(), step, &fds),
        Err(err) => format!("[fds] {who}: read /proc/self/fd: {err}\n"),
    };
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// How wide the object column is: `socket:[123456789]` fits. A fixed width keeps the
/// columns where they are whatever the inode numbers (a fresh machine has short ones).
const OBJECT_WIDTH: usize = 18;

/// A longer object is shown whole up to this many characters (it pushes its own row's
/// last columns to the right); past it, a path is shortened to its last part.
const OBJECT_MAX: usize = 40;

/// The text [`show`] prints, for a table already read.
pub fn render(who: &str, pid: u32, step: &str, fds: &[Fd]) -> String {
    let width = OBJECT_WIDTH;
    let mut out = format!("[fds] {who} {pid}, {step}:\n");
    let _ = writeln!(
        out,
        "  {:>3}  {:<8}  {:<width$}  {:<5}  flags",
        "fd", "kind", "object", "end"
    );
    for fd in fds {
        let mut flags = Vec::new();
        if fd.cloexec {
            flags.push("cloexec");
        }
        if fd.nonblock {
            flags.push("nonblock");
        }
        let line = format!(
            "  {:>3}  {:<8}  {:<width$}  {:<5}  {}",
            fd.fd,
            fd.kind,
            shorten(&fd.object, OBJECT_MAX),
            fd.end,
            flags.join(",")
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `flags:\t02000000` in an fdinfo file, read as octal.
fn parse_flags(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
}

fn kind_of(object: &str, link: &std::path::Path) -> &'static str {
    if object.starts_with("pipe:") {
        return "pipe";
    }
    if object.starts_with("socket:") {
        return "socket";
    }
    if object == "/dev/null" {
        return "null";
    }
    if object.starts_with("/dev/pts/") || object.starts_with("/dev/tty") {
        return "terminal";
    }
    if !object.starts_with('/') {
        return "other"; // anon_inode:[eventfd], and the like
    }
    // Follows the link to the object itself, even when its path was removed since.
    match std::fs::metadata(link).map(|m| m.file_type()) {
        Ok(t) if t.is_fifo() => "fifo",
        Ok(t) if t.is_socket() => "socket",
        Ok(t) if t.is_dir() => "dir",
        Ok(t) if t.is_char_device() => "device",
        _ => "file",
    }
}

/// Keeps a long path readable in a narrow column: its last part, behind an ellipsis.
fn shorten(object: &str, width: usize) -> String {
    let count = object.chars().count();
    if count <= width {
        return object.to_owned();
    }
    let tail: String = object.chars().skip(count - (width - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_two_ends_of_a_pipe_show_one_inode_and_their_direction() {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let fds = table().expect("table");
        let find =
            |n: i32| fds.iter().find(|fd| fd.fd == n).expect("listed").clone();
        let (r, w) = (find(reader.as_raw_fd()), find(writer.as_raw_fd()));
        assert_eq!((r.kind, w.kind), ("pipe", "pipe"));
        assert_eq!(r.object, w.object);
        assert!(r.object.starts_with("pipe:["), "{r:?}");
        assert_eq!((r.end, w.end), ("read", "write"));
        assert!(r.cloexec && w.cloexec, "std::io::pipe sets O_CLOEXEC");
        assert!(
            !fds.iter().any(|fd| fd.object.starts_with("/proc/")),
            "{fds:?}"
        );
    }

    /// A fresh directory for one test, removed on drop (also when the test fails).
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path = std::env::temp_dir()
                .join(format!("lesson-kit-fds-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create scratch dir");
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn listed(fd: &impl AsRawFd) -> Fd {
        let n = fd.as_raw_fd();
        let fds = table().expect("table");
        fds.into_iter().find(|fd| fd.fd == n).expect("listed")
    }

    #[test]
    fn show_prints_the_whole_table_in_one_write() {
        // The helper's stderr is a datagram socket: one write, one datagram.
        let writes = crate::tests::stderr_writes_of_helper("show");
        assert_eq!(writes.len(), 1, "{writes:#?}");
        let block = &writes[0];
        assert!(block.starts_with("[fds] child "), "{block}");
        assert!(block.contains(", after fork:\n   fd  kind  "), "{block}");
        assert!(block.contains("\n    0  null "), "{block}");
        assert!(block.contains("\n    2  socket    socket:["), "{block}");
    }

    #[test]
    fn read_write_and_the_flags_are_shown_as_they_are_now() {
        use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
        let dir = Scratch::new("flags");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.0.join("data"))
            .expect("open read-write");
        let fd = listed(&file);
        assert_eq!((fd.kind, fd.end), ("file", "rw"), "{fd:?}");
        assert!(fd.object.ends_with("/data"), "{fd:?}");
        assert!(
            fd.cloexec && !fd.nonblock,
            "std opens with O_CLOEXEC: {fd:?}"
        );
        fcntl(&file, FcntlArg::F_SETFD(FdFlag::empty())).expect("F_SETFD");
        fcntl(&file, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("F_SETFL");
        let fd = listed(&file);
        assert!(!fd.cloexec && fd.nonblock, "{fd:?}");
        drop(file); // closed before the directory goes
    }

    #[test]
    fn only_the_listings_own_descriptor_is_left_out() {
        // A directory whose name ends in `/fd`, but not under /proc, is listed.
        let dir = Scratch::new("listing");
        std::fs::create_dir(dir.0.join("fd")).expect("mkdir fd");
        let handle = std::fs::File::open(dir.0.join("fd")).expect("open dir");
        let fd = listed(&handle);
        assert_eq!(fd.kind, "dir", "{fd:?}");
        assert!(fd.object.ends_with("-listing/fd"), "{fd:?}");
        drop(handle); // closed before the directory goes
    }

    #[test]
    fn kinds_come_from_the_name_then_from_the_object_itself() {
        use std::path::Path;
        let nowhere = Path::new("/nonexistent/lesson-kit");
        assert_eq!(kind_of("pipe:[33045]", nowhere), "pipe");
        assert_eq!(kind_of("socket:[33046]", nowhere), "socket");
        assert_eq!(kind_of("anon_inode:[eventfd]", nowhere), "other");
        assert_eq!(kind_of("/dev/null", Path::new("/dev/null")), "null");
        assert_eq!(kind_of("/dev/pts/0", nowhere), "terminal");
        assert_eq!(kind_of("/dev/tty", Path::new("/dev/tty")), "terminal");
        assert_eq!(kind_of("/dev/zero", Path::new("/dev/zero")), "device");
        // A path that is gone (removed since it was opened, say) is a file.
        assert_eq!(kind_of("/nonexistent/x (deleted)", nowhere), "file");
        let dir = Scratch::new("kinds");
        let fifo = dir.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let socket = dir.0.join("socket");
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let file = dir.0.join("file");
        std::fs::write(&file, b"x").expect("write file");
        let kind = |path: &Path| kind_of(&path.to_string_lossy(), path);
        assert_eq!(kind(&fifo), "fifo");
        assert_eq!(kind(&socket), "socket");
        assert_eq!(kind(&dir.0), "dir");
        assert_eq!(kind(&file), "file");
        drop(listener); // the socket file goes with the directory
    }

    #[test]
    fn flags_are_read_in_octal() {
        let info = "pos:\t0\nflags:\t02004001\nmnt_id:\t16\n";
        let flags = parse_flags(info).unwrap();
        assert_eq!(flags & O_ACCMODE, O_WRONLY);
        assert!(flags & O_CLOEXEC != 0 && flags & O_NONBLOCK != 0);
        assert_eq!(parse_flags("pos:\t0\n"), None);
    }

    #[test]
    fn render_aligns_one_block_with_a_header() {
        let fds = [
            Fd {
                fd: 0,
                kind: "terminal",
                object: "/dev/pts/0".into(),
                end: "rw",
                cloexec: false,
                nonblock: false,
            },
            Fd {
                fd: 10,
                kind: "pipe",
                object: "pipe:[33045]".into(),
                end: "write",
                cloexec: true,
                nonblock: true,
            },
        ];
        let text = render("child", 42, "after fork", &fds);
        assert_eq!(
            text,
            "[fds] child 42, after fork:\n\
             \x20  fd  kind      object              end    flags\n\
             \x20   0  terminal  /dev/pts/0          rw\n\
             \x20  10  pipe      pipe:[33045]        write  cloexec,nonblock\n"
        );
        // The columns do not move with the inode numbers' length.
        let mut long = fds.clone();
        long[1].object = "pipe:[123456789]".into();
        let wide = render("child", 42, "after fork", &long);
        let column = |t: &str| t.lines().nth(3).and_then(|l| l.find("write"));
        assert_eq!(column(&text), column(&wide));
        // Up to 40 characters an object is shown whole; past that, its end.
        long[1].object = "/tmp/fifo-fds-0029332/my_pipe".into();
        assert!(
            render("c", 1, "s", &long).contains(" /tmp/fifo-fds-0029332/my_pipe ")
        );
        long[1].object = format!("/tmp/{}/my_pipe", "d".repeat(40));
        let shown = format!(" …{}/my_pipe ", "d".repeat(31)); // 40 characters in all
        assert!(render("c", 1, "s", &long).contains(&shown));
    }

    #[test]
    fn shorten_keeps_the_end_of_a_long_path() {
        assert_eq!(shorten("/a/b", 10), "/a/b");
        assert_eq!(shorten("/tmp/long/path/my_pipe", 9), "…/my_pipe");
        assert_eq!(shorten("/tmp/long/path/my_pipe", 9).chars().count(), 9);
    }
}
