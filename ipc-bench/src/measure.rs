//! The measuring loops. They run in the forked children (or in a child and its
//! thread), never in the coordinating process, which only waits for their results.
//!
//! The rule for every loop: nothing in it but the mechanism. No allocation, no
//! formatting, no extra copy per message; buffers are made before the clock starts
//! and results are written after it stops.

use crate::channel::End;
use lesson_kit::{Context, Failure};
use nix::errno::Errno;
use std::io::Write;
use std::time::{Duration, Instant};

/// The size of a round-trip message: one small request, one small reply.
pub const SMALL: usize = 64;

/// A round-trip repetition stops after this long even if not all rounds were done
/// (a spinning side on a busy machine can be very slow); the report gives the
/// count.
pub const ROUND_TRIP_CAP: Duration = Duration::from_secs(1);

/// What the measuring side is asked to do, decided by the options.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sizes: Vec<usize>,
    pub reps: u32,
    /// About this many bytes per throughput repetition...
    pub bytes: u64,
    /// ...in at most this many messages (64-byte messages would take too long).
    pub max_messages: u64,
    /// Round trips per repetition.
    pub rounds: u32,
    /// Trivial system calls per repetition, for the cost of one.
    pub syscalls: u32,
}

impl Plan {
    /// How many messages of `size` one throughput repetition sends.
    pub fn messages(&self, size: usize) -> u64 {
        (self.bytes / size as u64).clamp(1, self.max_messages)
    }
}

/// The bytes every message carries: a fixed pattern, never zero, so that a lost
/// byte changes the checksum. Made once; the sender never writes to it again
/// (vmsplice relies on that: the pipe holds references to these very pages).
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 + 1).collect()
}

// ANCHOR: checksum
/// A checksum cheap enough to run on every received byte: their sum. It catches
/// bytes lost or received twice; the byte count catches the rest. Summed in blocks
/// of 256 bytes into a u16, which cannot overflow (255 * 256 < 2^16) and packs
/// twice as many sums into a vector register as a u32: 1.3 µs per 64 KiB here,
/// where u32 sums took 4.0 µs, more than a tenth of a socketpair's message time.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .chunks(256)
        .map(|block| u64::from(block.iter().map(|&b| u16::from(b)).sum::<u16>()))
        .sum()
}
// ANCHOR_END: checksum

/// The commands the measuring side sends the peer on the control pipe: 24 bytes, so
/// one `write` (below PIPE_BUF) always arrives whole.
const STREAM: u64 = 1;
const ECHO: u64 = 2;
const QUIT: u64 = 3;

/// The last round trip carries this sequence number: the peer stops echoing after
/// it.
const LAST: u64 = u64::MAX;

fn command(op: u64, size: usize, count: u64) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&op.to_le_bytes());
    bytes[8..16].copy_from_slice(&(size as u64).to_le_bytes());
    bytes[16..].copy_from_slice(&count.to_le_bytes());
    bytes
}

fn field(bytes: &[u8], index: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
    u64::from_le_bytes(word)
}

// ANCHOR: send_all
/// Sends all of `bytes`: a pipe or socket may take only part of a large write.
fn send_all(end: &mut End, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        let n = end.send(bytes)?;
        bytes = &bytes[n..];
    }
    Ok(())
}
// ANCHOR_END: send_all

/// Receives exactly `buffer.len()` bytes; a stream may deliver them in pieces.
fn receive_exact(end: &mut End, buffer: &mut [u8]) -> Result<(), Failure> {
    let mut filled = 0;
    while filled < buffer.len() {
        match end.read_into(&mut buffer[filled..]) {
            Ok(0) => {
                return Err(Failure::new("read", "end of file: the peer is gone"));
            }
            Ok(n) => filled += n,
            Err(err) => return Err(Failure::new("read", err)),
        }
    }
    Ok(())
}

/// The peer: obeys the commands on `control` until QUIT or end of file.
pub fn peer(
    mut end: End,
    control: &std::os::fd::OwnedFd,
    largest: usize,
) -> Result<(), Failure> {
    let message = pattern(largest);
    let mut echo = vec![0u8; SMALL];
    let mut order = [0u8; 24];
    loop {
        let n =
            nix::unistd::read(control, &mut order).context("read control pipe")?;
        if n == 0 {
            return Ok(()); // the measuring side is done (or gone)
        }
        if n != order.len() {
            return Err(Failure::new("read control pipe", format!("{n} bytes")));
        }
        let (op, size, count) =
            (field(&order, 0), field(&order, 1), field(&order, 2));
        let size = usize::try_from(size).unwrap_or(usize::MAX).min(largest);
        match op {
            // ANCHOR: stream
            STREAM => {
                let message = &message[..size];
                for _ in 0..count {
                    send_all(&mut end, message).context("send")?;
                }
            }
            // ANCHOR_END: stream
            ECHO => loop {
                receive_exact(&mut end, &mut echo)?;
                send_all(&mut end, &echo).context("send reply")?;
                if field(&echo, 0) == LAST {
                    break;
                }
            },
            QUIT => return Ok(()),
            other => {
                return Err(Failure::new(
                    "control pipe",
                    format!("command {other}"),
                ));
            }
        }
    }
}

/// Where the measuring side writes its results, one line each, for the coordinator.
pub struct Results {
    out: std::fs::File,
}

impl Results {
    pub fn new(fd: std::os::fd::OwnedFd) -> Results {
        Results { out: fd.into() }
    }

    /// One line in one `write` (a few dozen bytes, below PIPE_BUF: it arrives whole),
    /// formatted after the clock stopped.
    pub fn line(&mut self, text: std::fmt::Arguments) -> Result<(), Failure> {
        let line = format!("{text}\n");
        self.out
            .write_all(line.as_bytes())
            .context("write results pipe")
    }
}

/// The measuring side of one mechanism: throughput for every size, then round
/// trips.
#[allow(clippy::too_many_arguments)]
pub fn measurer(
    mut end: End,
    control: std::os::fd::OwnedFd,
    results: &mut Results,
    plan: &Plan,
    streams: bool,
    echoes: bool,
    sees_bytes: bool,
) -> Result<(), Failure> {
    let largest = plan.sizes.iter().copied().max().unwrap_or(SMALL);
    let mut scratch = vec![0u8; largest];
    if streams {
        for &size in &plan.sizes {
            let count = plan.messages(size);
            let expected = checksum(&pattern(size)).wrapping_mul(count);
            for rep in 0..plan.reps {
                let order = command(STREAM, size, count);
                nix::unistd::write(&control, &order)
                    .context("write control pipe")?;
                let (took, got, sum) = receive_stream(
                    &mut end,
                    &mut scratch[..size],
                    size as u64 * count,
                )?;
                if sees_bytes && sum != expected {
                    return Err(Failure::new(
                        format!("{size}-byte messages"),
                        format!(
                            "checksum {sum}, sent {expected}: bytes lost or \
                         repeated"
                        ),
                    ));
                }
                results.line(format_args!(
                    "tp {size} {rep} {} {got} {}",
                    took.as_nanos(),
                    u8::from(sees_bytes) // 1: the checksum was compared
                ))?;
            }
        }
    }
    if echoes {
        let mut times = Vec::with_capacity(plan.rounds as usize);
        for rep in 0..plan.reps {
            nix::unistd::write(&control, &command(ECHO, SMALL, 0))
                .context("write control pipe")?;
            round_trips(&mut end, plan.rounds, &mut times)?;
            times.sort_unstable();
            let median = percentile(&times, 50);
            let p99 = percentile(&times, 99);
            results.line(format_args!(
                "rt {SMALL} {rep} {median} {p99} {}",
                times.len()
            ))?;
        }
    }
    nix::unistd::write(&control, &command(QUIT, 0, 0))
        .context("write control pipe")?;
    Ok(())
}

// ANCHOR: receive_stream
/// Receives `total` bytes, looking at each once (the checksum), and times it from
/// the command to the last byte. Returns the time, the bytes and their checksum.
fn receive_stream(
    end: &mut End,
    scratch: &mut [u8],
    total: u64,
) -> Result<(Duration, u64, u64), Failure> {
    let mut sum = 0u64;
    let mut look = |piece: &[u8]| sum = sum.wrapping_add(checksum(piece));
    let mut got = 0u64;
    let start = Instant::now();
    while got < total {
        let max = (total - got).min(scratch.len() as u64) as usize;
        match end.receive(scratch, max, &mut look) {
            Ok(0) => {
                return Err(Failure::new(
                    "receive",
                    format!("end of file after {got} of {total} bytes"),
                ));
            }
            Ok(n) => got += n as u64,
            Err(err) => return Err(Failure::new("receive", err)),
        }
    }
    let took = start.elapsed();
    Ok((took, got, sum))
}
// ANCHOR_END: receive_stream

// ANCHOR: round_trips
/// Sends `rounds` small messages, each numbered, and waits for each to come back
/// before sending the next; records every round trip's time in `times`. A reply
/// that is not the request just sent means a record was lost, repeated or damaged.
fn round_trips(
    end: &mut End,
    rounds: u32,
    times: &mut Vec<u64>,
) -> Result<(), Failure> {
    times.clear();
    let mut request = pattern(SMALL);
    let mut reply = vec![0u8; SMALL];
    let give_up = Instant::now() + ROUND_TRIP_CAP;
    for seq in (0..u64::from(rounds)).chain([LAST]) {
        request[..8].copy_from_slice(&seq.to_le_bytes());
        let start = Instant::now();
        send_all(end, &request).context("send request")?;
        receive_exact(end, &mut reply)?;
        let took = start.elapsed();
        if reply != request {
            return Err(Failure::new(
                format!("round trip {seq}"),
                format!(
                    "reply carries record {}: lost, repeated or damaged",
                    field(&reply, 0)
                ),
            ));
        }
        if seq == LAST {
            break;
        }
        times.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        if Instant::now() > give_up && seq + 1 < u64::from(rounds) {
            // Stop early, but still end with LAST so the peer stops echoing.
            request[..8].copy_from_slice(&LAST.to_le_bytes());
            send_all(end, &request).context("send request")?;
            receive_exact(end, &mut reply)?;
            break;
        }
    }
    Ok(())
}
// ANCHOR_END: round_trips

/// The `p`th percentile of sorted `times` (0 if there are none).
pub fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

// ANCHOR: limits
/// The machine's limits, measured the same way: `memcpy` of each size, as often as
/// a throughput repetition sends messages, and a trivial system call.
pub fn limits(results: &mut Results, plan: &Plan) -> Result<(), Failure> {
    for &size in &plan.sizes {
        let source = pattern(size);
        let mut target = vec![0u8; size];
        let count = plan.messages(size);
        for rep in 0..plan.reps {
            let start = Instant::now();
            for _ in 0..count {
                target.copy_from_slice(std::hint::black_box(&source));
                std::hint::black_box(&mut target); // the copy must really happen
            }
            let took = start.elapsed();
            results.line(format_args!(
                "mc {size} {rep} {} {}",
                took.as_nanos(),
                size as u64 * count
            ))?;
        }
    }
    for rep in 0..plan.reps {
        let start = Instant::now();
        for _ in 0..plan.syscalls {
            // SAFETY: getppid takes no arguments and cannot fail; called through
            // syscall(2) so that no library cache answers in its place.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let took = start.elapsed();
        results.line(format_args!(
            "sc 0 {rep} {} {}",
            took.as_nanos(),
            plan.syscalls
        ))?;
    }
    Ok(())
}
// ANCHOR_END: limits

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_the_byte_sum_and_sees_a_lost_or_repeated_piece() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[1, 2, 250]), 253);
        let big = vec![255u8; (1 << 16) + 3]; // more than one chunk: no overflow
        assert_eq!(checksum(&big), 255 * ((1 << 16) + 3));
        let message = pattern(1000);
        let whole = checksum(&message);
        assert_ne!(checksum(&message[..999]), whole);
        assert_eq!(checksum(&message[..400]) + checksum(&message[400..]), whole);
    }

    #[test]
    fn the_pattern_never_holds_a_zero_byte() {
        let bytes = pattern(600);
        assert_eq!(bytes.len(), 600);
        assert!(bytes.iter().all(|&b| b != 0));
        assert_eq!((bytes[0], bytes[250], bytes[251]), (1, 251, 1));
    }

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let times: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&times, 50), 50);
        assert_eq!(percentile(&times, 99), 99);
        assert_eq!(percentile(&times, 100), 100);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[1, 2, 3], 50), 2);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn messages_per_repetition_follow_the_byte_budget_within_bounds() {
        let plan = Plan {
            sizes: vec![64],
            reps: 1,
            bytes: 8192,
            max_messages: 32,
            rounds: 1,
            syscalls: 1,
        };
        assert_eq!(plan.messages(64), 32); // 128 by bytes, capped at 32
        assert_eq!(plan.messages(1000), 8);
        assert_eq!(plan.messages(4096), 2);
        assert_eq!(plan.messages(1 << 20), 1); // at least one
    }

    #[test]
    fn commands_round_trip_through_their_bytes() {
        let order = command(STREAM, 65536, 7);
        assert_eq!(
            (field(&order, 0), field(&order, 1), field(&order, 2)),
            (STREAM, 65536, 7)
        );
    }
}
