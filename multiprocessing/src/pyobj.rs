//! What `multi2`'s pipe carries: a few kinds of Python object (int, str, list,
//! dict, set), written as one JSON text per line, and printed the way Python prints
//! them.
//!
//! Python's `Connection.send` pickles the object: a binary format only Python
//! reads, and one that runs code when it is loaded (never unpickle what a stranger
//! sent). JSON is readable with `strace` or `socat`, and parsing it runs nothing.
//! JSON has no set, so a set travels as `{"$set": [...]}`. Written by hand (about a
//! hundred lines): a JSON crate would cost more build time than the whole lesson.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A Python value of the kinds the lesson sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PyObject {
    Int(i64),
    Str(String),
    List(Vec<PyObject>),
    /// Keys in insertion order, as in a Python dict.
    Dict(Vec<(String, PyObject)>),
    /// Sorted, so it prints the same every run (Python's order depends on string
    /// hashes, which change from run to run).
    Set(BTreeSet<PyObject>),
}

/// `'spam'`, as Python's `str` plus `repr`.
pub fn str_obj(text: &str) -> PyObject {
    PyObject::Str(text.to_owned())
}

impl PyObject {
    // ANCHOR: repr
    /// Python's `repr()`: `['spam', 42, 'eggs']`, `{'name': 'Bob', 'spam': 42}`,
    /// `{'aa', 'mm'}`, `set()`.
    pub fn repr(&self) -> String {
        match self {
            PyObject::Int(n) => n.to_string(),
            PyObject::Str(text) => str_repr(text),
            PyObject::List(items) => {
                format!("[{}]", join(items.iter().map(PyObject::repr)))
            }
            PyObject::Dict(pairs) => format!(
                "{{{}}}",
                join(pairs.iter().map(|(k, v)| format!(
                    "{}: {}",
                    str_repr(k),
                    v.repr()
                )))
            ),
            PyObject::Set(items) if items.is_empty() => "set()".to_owned(),
            PyObject::Set(items) => {
                format!("{{{}}}", join(items.iter().map(PyObject::repr)))
            }
        }
    }
    // ANCHOR_END: repr

    // ANCHOR: to_json
    /// One line of JSON (no newline inside: control characters are escaped).
    pub fn to_json(&self) -> String {
        match self {
            PyObject::Int(n) => n.to_string(),
            PyObject::Str(text) => json_string(text),
            PyObject::List(items) => {
                format!("[{}]", join(items.iter().map(PyObject::to_json)))
            }
            PyObject::Dict(pairs) => format!(
                "{{{}}}",
                join(pairs.iter().map(|(k, v)| format!(
                    "{}: {}",
                    json_string(k),
                    v.to_json()
                )))
            ),
            PyObject::Set(items) => format!(
                "{{\"$set\": [{}]}}",
                join(items.iter().map(PyObject::to_json))
            ),
        }
    }
    // ANCHOR_END: to_json

    /// Parses one JSON text as [`PyObject::to_json`] writes it (any JSON made only
    /// of integers, strings, arrays and objects). The error says what was expected
    /// where.
    pub fn from_json(text: &str) -> Result<PyObject, String> {
        let mut parser = JsonParser {
            text: text.as_bytes(),
            at: 0,
        };
        let value = parser.value(0)?;
        parser.skip_space();
        if parser.at != parser.text.len() {
            return Err(parser.error("end of input"));
        }
        Ok(value)
    }
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(", ")
}

/// Python's `repr()` of a `str`: single quotes unless the text has `'` and no `"`;
/// backslash, the quote, `\t`, `\n`, `\r` escaped; other control characters as
/// `\xhh`. (Python also escapes non-printable Unicode; the lesson sends none.)
pub fn str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(c);
            }
            _ if c < ' ' || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A JSON string: `"` and `\` escaped, control characters as `\u00hh`.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How deeply lists may nest: a hostile line of `[[[[...` must not overflow the
/// stack.
const MAX_DEPTH: usize = 64;

struct JsonParser<'a> {
    text: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn error(&self, expected: &str) -> String {
        format!("expected {expected} at byte {}", self.at)
    }

    fn skip_space(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    /// Consumes `byte` (after spaces) if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.text.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn value(&mut self, depth: usize) -> Result<PyObject, String> {
        if depth > MAX_DEPTH {
            return Err(
                self.error(&format!("at most {MAX_DEPTH} levels of nesting"))
            );
        }
        self.skip_space();
        match self.text.get(self.at) {
            Some(b'"') => self.string().map(PyObject::Str),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b'[') => {
                self.at += 1;
                self.items(b']', depth).map(PyObject::List)
            }
            Some(b'{') => {
                self.at += 1;
                self.object(depth)
            }
            _ => Err(self.error("an integer, a string, '[' or '{'")),
        }
    }

    fn integer(&mut self) -> Result<PyObject, String> {
        let start = self.at;
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
        digits.parse().map(PyObject::Int).map_err(|_| {
            self.at = start;
            self.error("an integer that fits in 64 bits")
        })
    }

    fn items(&mut self, close: u8, depth: usize) -> Result<Vec<PyObject>, String> {
        let mut items = Vec::new();
        if self.eat(close) {
            return Ok(items);
        }
        loop {
            items.push(self.value(depth + 1)?);
            if self.eat(close) {
                return Ok(items);
            }
            if !self.eat(b',') {
                return Err(self.error(&format!("',' or '{}'", char::from(close))));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<PyObject, String> {
        let mut pairs = Vec::new();
        if self.eat(b'}') {
            return Ok(PyObject::Dict(pairs));
        }
        loop {
            self.skip_space();
            if self.text.get(self.at) != Some(&b'"') {
                return Err(self.error("a string key"));
            }
            let key = self.string()?;
            if !self.eat(b':') {
                return Err(self.error("':'"));
            }
            pairs.push((key, self.value(depth + 1)?));
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return Err(self.error("',' or '}'"));
            }
        }
        // {"$set": [...]} is how a set travels.
        if let [(key, PyObject::List(_))] = pairs.as_slice()
            && key == "$set"
            && let Some((_, PyObject::List(items))) = pairs.pop()
        {
            return Ok(PyObject::Set(items.into_iter().collect()));
        }
        Ok(PyObject::Dict(pairs))
    }

    /// A string starting at the opening quote.
    fn string(&mut self) -> Result<String, String> {
        self.at += 1; // the opening quote
        let mut bytes = Vec::new();
        loop {
            let Some(&byte) = self.text.get(self.at) else {
                return Err(self.error("'\"' to end the string"));
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let escaped = self.escape()?;
                    let mut utf8 = [0u8; 4];
                    bytes.extend_from_slice(
                        escaped.encode_utf8(&mut utf8).as_bytes(),
                    );
                }
                0..0x20 => {
                    self.at -= 1;
                    return Err(self.error("no raw control character in a string"));
                }
                _ => bytes.push(byte),
            }
        }
        // The input was a &str and escapes add whole characters: still valid UTF-8.
        String::from_utf8(bytes).map_err(|_| self.error("UTF-8"))
    }

    /// The character after a backslash.
    fn escape(&mut self) -> Result<char, String> {
        let byte = self.text.get(self.at).copied();
        self.at += 1;
        Ok(match byte {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let code = self.hex4()?;
                if (0xd800..0xdc00).contains(&code) {
                    // A surrogate pair: `\ud83d\ude00`.
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return Err(
                            self.error("the second half of a surrogate pair")
                        );
                    }
                    let low = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.error("a low surrogate"));
                    }
                    let code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                    char::from_u32(code).ok_or_else(|| self.error("a character"))?
                } else {
                    char::from_u32(code).ok_or_else(|| self.error("a character"))?
                }
            }
            _ => {
                self.at -= 1;
                return Err(
                    self.error("an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u")
                );
            }
        })
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .ok_or_else(|| self.error("four hex digits"))?;
        self.at += 4;
        Ok(digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PyObject::from_json` with a deadline: a parser that loops for ever (a
    /// position that stops moving) fails the test within seconds instead of hanging
    /// the run.
    fn parse(text: &str) -> Result<PyObject, String> {
        let (done, result) = std::sync::mpsc::channel();
        let text = text.to_owned();
        std::thread::spawn(move || done.send(PyObject::from_json(&text)));
        result
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the parser returns within 5 s")
    }

    fn document_objects() -> [PyObject; 3] {
        [
            PyObject::List(vec![
                str_obj("spam"),
                PyObject::Int(42),
                str_obj("eggs"),
            ]),
            PyObject::Dict(vec![
                ("name".to_owned(), str_obj("Bob")),
                ("spam".to_owned(), PyObject::Int(42)),
            ]),
            PyObject::Set(
                ["ss", "pp", "aa", "mm"].into_iter().map(str_obj).collect(),
            ),
        ]
    }

    #[test]
    fn reprs_match_what_python_prints_for_the_documents_objects() {
        let [list, dict, set] = document_objects();
        assert_eq!(list.repr(), "['spam', 42, 'eggs']");
        assert_eq!(dict.repr(), "{'name': 'Bob', 'spam': 42}");
        assert_eq!(set.repr(), "{'aa', 'mm', 'pp', 'ss'}");
        assert_eq!(PyObject::Set(BTreeSet::new()).repr(), "set()");
        assert_eq!(PyObject::List(vec![]).repr(), "[]");
        assert_eq!(PyObject::Dict(vec![]).repr(), "{}");
    }

    #[test]
    fn str_repr_quotes_and_escapes_like_python() {
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("say \"hi\""), "'say \"hi\"'");
        assert_eq!(str_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(
            str_repr("a\\b\tc\nd\re\u{1}\u{7f}é"),
            "'a\\\\b\\tc\\nd\\re\\x01\\x7fé'"
        );
    }

    #[test]
    fn json_lines_are_readable_and_read_back_the_same() {
        let [list, dict, set] = document_objects();
        assert_eq!(list.to_json(), r#"["spam", 42, "eggs"]"#);
        assert_eq!(dict.to_json(), r#"{"name": "Bob", "spam": 42}"#);
        assert_eq!(set.to_json(), r#"{"$set": ["aa", "mm", "pp", "ss"]}"#);
        let tricky = PyObject::List(vec![
            str_obj("quote \" backslash \\ newline \n tab \t nul \u{0} é 😀"),
            PyObject::Int(i64::MIN),
            PyObject::Int(i64::MAX),
            PyObject::Dict(vec![("$set".to_owned(), PyObject::Int(1))]),
            PyObject::Set(BTreeSet::new()),
            PyObject::List(vec![]),
        ]);
        for object in [list, dict, set, tricky] {
            let line = object.to_json();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(parse(&line), Ok(object), "{line}");
        }
    }

    #[test]
    fn json_from_elsewhere_is_read_with_its_escapes() {
        let parsed =
            parse(" [ \"\\u00e9\\ud83d\\ude00\\/\\b\\f\\r\\n\\t\" , -7 ] ");
        assert_eq!(
            parsed,
            Ok(PyObject::List(vec![
                str_obj("é😀/\u{8}\u{c}\r\n\t"),
                PyObject::Int(-7)
            ]))
        );
    }

    #[test]
    fn bad_json_is_refused_with_the_place() {
        for (text, expected) in [
            ("", "expected an integer, a string, '[' or '{' at byte 0"),
            ("[1 2]", "expected ',' or ']' at byte 3"),
            ("{\"a\" 1}", "expected ':' at byte 5"),
            ("{1: 2}", "expected a string key at byte 1"),
            ("{\"a\": 1 \"b\"}", "expected ',' or '}' at byte 8"),
            ("\"abc", "expected '\"' to end the string at byte 4"),
            (
                "\"a\u{1}\"",
                "expected no raw control character in a string at byte 2",
            ),
            ("\"\\x\"", "expected an escape"),
            ("\"\\u12\"", "expected four hex digits at byte 3"),
            (
                "\"\\ud800x\"",
                "expected the second half of a surrogate pair",
            ),
            ("\"\\ud800\\u0041\"", "expected a low surrogate"),
            (
                "99999999999999999999",
                "expected an integer that fits in 64 bits at byte 0",
            ),
            ("-", "expected an integer that fits in 64 bits at byte 0"),
            ("1.5", "expected end of input at byte 1"),
            ("true", "expected an integer, a string"),
            ("[1] x", "expected end of input at byte 4"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
        let deep = "[".repeat(100);
        // The place of a bad escape is the character after the backslash.
        let err = parse("\"\\x\"").unwrap_err();
        assert!(err.ends_with("at byte 2"), "{err}");
        let err = parse(&deep).unwrap_err();
        assert!(err.contains("levels of nesting"), "{err}");
        // MAX_DEPTH (64) levels inside the outermost list are fine, not one more.
        let nested = |levels: usize| {
            format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
        };
        assert!(parse(&nested(64)).is_ok());
        assert!(parse(&nested(65)).is_err());
        // Dicts count as levels too.
        let dicts = format!("{}1{}", "{\"a\": ".repeat(65), "}".repeat(65));
        let err = parse(&dicts).unwrap_err();
        assert!(err.contains("levels of nesting"), "{err}");
    }
}
