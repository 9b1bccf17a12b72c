//! Python-style formatting, so a lesson's output can be compared with the documents' line
//! for line.
//!
//! The documents print with Python's `format`, which shows a `bytes` object as its repr
//! (`b'Spam 0'`) and a float from `time.time()` as the shortest text that reads back as the
//! same float (`1628658450.6990933`). These functions reproduce exactly that and nothing more.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

// ANCHOR: bytes_repr
/// Python's `repr()` of a `bytes` object: `b'Spam 0'`.
///
/// The rules are CPython's (`bytes_repr` in `Objects/bytesobject.c`):
/// - the quotes are single, unless the bytes contain `'` and no `"`, then double;
/// - `\` and the chosen quote are escaped with a backslash;
/// - tab, newline and carriage return are written `\t`, `\n`, `\r`;
/// - any other byte outside printable ASCII (below 0x20, or 0x7f and up) is `\xhh`,
///   with lowercase hex digits.
pub fn bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote);
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(byte) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote);
    out
}
// ANCHOR_END: bytes_repr

/// Python's `time.time()`: seconds since the Unix epoch as a float.
pub fn time_now() -> f64 {
    seconds_since_epoch(SystemTime::now())
}

/// [`time_now`] for a given instant.
fn seconds_since_epoch(now: SystemTime) -> f64 {
    // A clock set before 1970 is the only way this fails; Python would print a negative
    // number, and so do we.
    match now.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// A float the way Python's `str()`/`format()` prints it: the shortest digits that read back
/// as the same value, with `.0` on whole numbers (`1628658450.0`).
///
/// Rust's `{:?}` for `f64` follows the same shortest-round-trip rule and also keeps the
/// `.0`; the two differ only in when they switch to exponent notation (Python at 1e16 and
/// below 1e-4), far outside the range of the timestamps and durations the lessons print.
pub fn float_str(value: f64) -> String {
    format!("{value:?}")
}

/// `time.time()` formatted as the documents print it.
pub fn time_str() -> String {
    float_str(time_now())
}

/// Python's `time.ctime()` (C's `ctime`, local time): `Sun Nov  2 05:53:10 2026`, the day
/// of the month padded with a space. The signal programs print their times this way.
pub fn ctime_now() -> String {
    let seconds = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as libc::time_t,
        Err(_) => 0,
    };
    ctime(seconds)
}

/// [`ctime_now`] for a given number of seconds since the epoch.
pub fn ctime(seconds: libc::time_t) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
        "Nov", "Dec",
    ];
    // SAFETY: `tm` is plain data, for which all zeroes is a valid value; localtime_r only
    // writes into the struct we pass and reads `seconds`, both valid for the call, and is
    // the thread-safe form of localtime.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            return format!("(time {seconds})");
        }
        tm
    };
    let day = DAYS.get(tm.tm_wday as usize).copied().unwrap_or("???");
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???");
    format!(
        "{day} {month} {:>2} {:02}:{:02}:{:02} {}",
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_repr_matches_python_for_the_documents_messages() {
        assert_eq!(bytes_repr(b"Spam 0"), "b'Spam 0'");
        assert_eq!(bytes_repr(b"Spam 4Spam 0"), "b'Spam 4Spam 0'");
        assert_eq!(bytes_repr(b""), "b''");
        assert_eq!(bytes_repr(b"how are you\n"), "b'how are you\\n'");
    }

    #[test]
    fn bytes_repr_chooses_quotes_like_python() {
        // repr(b"it's") == b"it's"; repr(b'say "hi"') == b'say "hi"';
        // repr(b'it\'s "x"') == b'it\'s "x"'
        assert_eq!(bytes_repr(b"it's"), "b\"it's\"");
        assert_eq!(bytes_repr(b"say \"hi\""), "b'say \"hi\"'");
        assert_eq!(bytes_repr(b"it's \"x\""), "b'it\\'s \"x\"'");
    }

    #[test]
    fn bytes_repr_escapes_like_python() {
        // repr(bytes([0, 7, 9, 10, 13, 27, 92, 127, 128, 255]))
        let all = [0u8, 7, 9, 10, 13, 27, 92, 127, 128, 255];
        assert_eq!(
            bytes_repr(&all),
            "b'\\x00\\x07\\t\\n\\r\\x1b\\\\\\x7f\\x80\\xff'"
        );
        // Every printable ASCII byte but the quote and the backslash stands for itself.
        let printable: Vec<u8> = (0x20..=0x7e)
            .filter(|b| *b != b'\'' && *b != b'\\')
            .collect();
        let repr = bytes_repr(&printable);
        assert_eq!(&repr.as_bytes()[2..repr.len() - 1], printable.as_slice());
    }

    #[test]
    fn float_str_prints_shortest_round_trip_digits_like_python() {
        // Values from the documents' transcripts.
        for text in [
            "1628658450.6990933",
            "1628658451.710451",
            "1628658460.76058",
        ] {
            let value: f64 = text.parse().unwrap();
            assert_eq!(float_str(value), text);
        }
        assert_eq!(float_str(1628658450.0), "1628658450.0");
        assert_eq!(float_str(0.5), "0.5");
    }

    #[test]
    fn ctime_has_cs_shape_with_a_space_padded_day() {
        // Whatever the local time zone, the shape is fixed: 24 characters.
        let text = ctime(1_628_658_450);
        assert_eq!(text.len(), 24, "{text}");
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{text}");
        assert!(
            fields[3].len() == 8 && fields[3].as_bytes()[2] == b':',
            "{text}"
        );
        if std::env::var("TZ").is_ok_and(|tz| tz == "UTC") {
            assert_eq!(text, "Wed Aug 11 05:07:30 2021");
        }
        // A single-digit day is padded with a space, as C does: "Nov  2".
        let padded = ctime(1_793_590_390); // 2026-11-02 around noon, any time zone
        assert!(
            padded.contains("Nov  2")
                || padded.contains("Nov  1")
                || padded.contains("Nov  3"),
            "{padded}"
        );
    }

    #[test]
    fn time_now_is_after_the_documents_were_written() {
        // The documents' first timestamp is from August 2021.
        assert!(time_now() > 1_628_658_450.0);
    }

    #[test]
    fn a_clock_before_1970_gives_negative_seconds_like_python() {
        use std::time::Duration;
        let before = UNIX_EPOCH - Duration::from_millis(2500);
        assert_eq!(seconds_since_epoch(before), -2.5);
        let after = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(seconds_since_epoch(after), 1.5);
    }

    #[test]
    fn time_str_is_the_current_time_as_python_prints_it() {
        let before = time_now();
        let text = time_str();
        let after = time_now();
        let value: f64 = text.parse().expect("a float");
        assert!(before <= value && value <= after, "{before} {text} {after}");
        assert_eq!(float_str(value), text, "shortest round-trip digits");
    }

    #[test]
    fn ctime_now_is_ctime_of_the_current_second() {
        let second = || time_now() as libc::time_t;
        let before = second();
        let text = ctime_now();
        let after = second();
        assert!(
            text == ctime(before) || text == ctime(after),
            "{text:?} is neither {:?} nor {:?}",
            ctime(before),
            ctime(after)
        );
    }
}
