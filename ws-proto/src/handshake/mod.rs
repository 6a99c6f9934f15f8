//! The HTTP/1.1 upgrade handshake (RFC 6455 §4): server-side request parsing and responses,
//! client-side request building and response checking.

pub mod client;
pub mod server;

pub use client::{ClientRequest, Response, ResponseParser};
pub use server::{ParsedRequest, Request, RequestParser};

use crate::error::HandshakeError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(sha1(key + GUID)).
///
/// ```
/// assert_eq!(ws_proto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Header fields in arrival order; names compared case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, Vec<u8>)>,
}

impl Headers {
    /// Builds from (name, value) pairs.
    pub fn from_pairs(fields: Vec<(String, Vec<u8>)>) -> Headers {
        Headers { fields }
    }

    /// First value of `name`, as text if it is UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// First value of `name`, raw.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether any `name` field, read as a comma-separated list, holds `token`
    /// (case-insensitively, whitespace around list items ignored), as in `Connection: keep-alive,
    /// Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|value| {
            value
                .split(|&b| b == b',')
                .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Number of `name` fields.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }
}

/// Strips HTTP optional whitespace (spaces and tabs) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Converts httparse's parsed fields; names keep their spelling, values stay raw.
fn headers_from_httparse(fields: &[httparse::Header<'_>]) -> Headers {
    Headers::from_pairs(
        fields
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
    )
}

/// How many `httparse::Header` slots to allocate for a complete head.
///
/// Every field line takes at least three bytes (`a:` and a line feed), so a head cannot hold more
/// than `len / 3` fields: allocating more than that cannot change the outcome, and capping keeps
/// a generous `max_headers` setting from costing memory on small requests.
fn header_slots(head_len: usize, max_headers: usize) -> usize {
    max_headers.min(head_len / 3 + 1)
}

fn httparse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders,
        httparse::Error::HeaderName => HandshakeError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HandshakeError::Malformed("invalid header value"),
        httparse::Error::NewLine => HandshakeError::Malformed("invalid line ending"),
        httparse::Error::Status => HandshakeError::Malformed("invalid status"),
        httparse::Error::Token => HandshakeError::Malformed("invalid token"),
        httparse::Error::Version => HandshakeError::Malformed("invalid HTTP version"),
    }
}

/// Checks that httparse ended the head exactly where the `\r\n\r\n` search did.
///
/// httparse also accepts bare LF line endings, so it could stop earlier (at `\n\n`); the bytes
/// between its end and ours would then be neither headers nor frames.
fn check_complete(status: httparse::Status<usize>, head_len: usize) -> Result<(), HandshakeError> {
    match status {
        httparse::Status::Complete(n) if n == head_len => Ok(()),
        httparse::Status::Complete(_) => Err(HandshakeError::Malformed("bare LF line ending")),
        // Only possible when the head starts with an empty line.
        httparse::Status::Partial => Err(HandshakeError::Malformed("incomplete head")),
    }
}

const TERMINATOR: &[u8; 4] = b"\r\n\r\n";

/// Where the head ends within `data`, given the bytes already buffered before it.
///
/// Returns how many bytes of `data` belong to the head, terminator included. Only `tail` (the last
/// up-to-3 buffered bytes, which were scanned before but may start a terminator) and `data` are
/// looked at, so the total work over a trickled head is linear in its length.
fn find_terminator(tail: &[u8], data: &[u8]) -> Option<usize> {
    // A terminator straddling the old and new bytes ends before any that lies wholly in `data`.
    for in_data in 1..=3usize {
        let in_tail = 4 - in_data;
        if in_data <= data.len()
            && tail.ends_with(&TERMINATOR[..in_tail])
            && data.starts_with(&TERMINATOR[in_tail..])
        {
            return Some(in_data);
        }
    }
    data.windows(4).position(|w| w == TERMINATOR).map(|p| p + 4)
}

#[derive(Debug)]
enum HeadState {
    Reading,
    Done,
    Failed(HandshakeError),
}

/// Accumulates an HTTP message head up to its `\r\n\r\n`, capped at `max_bytes`; shared by the
/// request and response parsers.
///
/// Every byte is scanned exactly once: each push looks only at the new bytes plus the last three
/// buffered ones. Bytes after the terminator are never copied, and when a whole head arrives in one
/// push nothing is copied at all.
///
/// A head whose start line cannot begin a valid message fails before its end arrives (see
/// `check_start`): bytes that are not HTTP at all (a TLS hello on a plain port, noise) get their
/// error status at once, instead of waiting for a terminator that may never come. So does a head
/// with a bare LF, wherever it is: lines end with CRLF only, and a head that ended with a bare
/// `\n\n` would never be seen to end.
#[derive(Debug)]
struct HeadBuffer {
    buf: Vec<u8>,
    max_bytes: usize,
    state: HeadState,
    /// The start line ended and passed its check: no more early checks.
    start_checked: bool,
}

/// An unfinished start line is checked at every push that begins within its first this many
/// bytes: enough to see the method (or version) and most of a target; past it, the line is
/// checked once, when it ends, so a trickled head still costs linear time.
const START_PEEK: usize = 64;

impl HeadBuffer {
    fn new(max_bytes: usize) -> HeadBuffer {
        HeadBuffer {
            buf: Vec::new(),
            max_bytes,
            state: HeadState::Reading,
            start_checked: false,
        }
    }

    /// Adds `data`; once the head is complete, runs `parse` on it and returns its result and the
    /// number of bytes of `data` that belonged to the head. Until then, `check_start` sees the
    /// start line as it arrives (see `check_start`), and its error ends the head.
    ///
    /// After a result the buffer is released. Later pushes return `Ok(None)` after a success and
    /// the same error again after a failure.
    fn push<T>(
        &mut self,
        data: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<T, HandshakeError>,
        check_start: impl FnOnce(&[u8]) -> Result<(), HandshakeError>,
    ) -> Result<Option<(T, usize)>, HandshakeError> {
        match &self.state {
            HeadState::Reading => {}
            HeadState::Done => return Ok(None),
            HeadState::Failed(e) => return Err(e.clone()),
        }
        let old = self.buf.len();
        // Bytes past the cap could only belong to a head that is too large anyway.
        let window = &data[..data.len().min(self.max_bytes.saturating_sub(old))];
        let end = find_terminator(&self.buf[old.saturating_sub(3)..], window);
        // Only CRLF ends a line here; the bytes before these were looked at by earlier pushes.
        let result = if has_bare_lf(
            self.buf.last().copied(),
            &window[..end.unwrap_or(window.len())],
        ) {
            Err(HandshakeError::Malformed("bare LF line ending"))
        } else {
            self.complete_or_check(old, window, end, parse, check_start)
        };
        self.state = match &result {
            Ok(None) => return Ok(None),
            Ok(Some(_)) => HeadState::Done,
            Err(e) => HeadState::Failed(e.clone()),
        };
        self.buf = Vec::new();
        result
    }

    /// With the end of the head in `window` (`end`: how many of its bytes belong to the head),
    /// parses the head; without, buffers `window` and checks the start line so far.
    fn complete_or_check<T>(
        &mut self,
        old: usize,
        window: &[u8],
        end: Option<usize>,
        parse: impl FnOnce(&[u8]) -> Result<T, HandshakeError>,
        check_start: impl FnOnce(&[u8]) -> Result<(), HandshakeError>,
    ) -> Result<Option<(T, usize)>, HandshakeError> {
        match end {
            Some(used) => {
                let parsed = if self.buf.is_empty() {
                    parse(&window[..used])
                } else {
                    self.buf.extend_from_slice(&window[..used]);
                    parse(&self.buf)
                };
                parsed.map(|p| Some((p, used)))
            }
            None => {
                self.buf.extend_from_slice(window);
                self.check_start(old, check_start)?;
                // With `max_bytes` buffered and no terminator, the head is at least one byte
                // over.
                if self.buf.len() < self.max_bytes {
                    return Ok(None);
                }
                Err(HandshakeError::HeadersTooLarge)
            }
        }
    }

    /// Runs `check` on the start line of an unfinished head: on what there is of it after each
    /// push that began within its first `START_PEEK` bytes, and once more when its `\n` arrives
    /// (bytes from `old` on are new).
    fn check_start(
        &mut self,
        old: usize,
        check: impl FnOnce(&[u8]) -> Result<(), HandshakeError>,
    ) -> Result<(), HandshakeError> {
        if self.start_checked {
            return Ok(());
        }
        let line = match self.buf[old..].iter().position(|&b| b == b'\n') {
            Some(at) => {
                self.start_checked = true;
                &self.buf[..=old + at]
            }
            // A push that starts within the first `START_PEEK` bytes is looked at whole, however
            // long: one bad byte anywhere in a first burst of noise is enough.
            None if old < START_PEEK => &self.buf[..],
            None => return Ok(()),
        };
        check(line)
    }
}

/// Whether `bytes` hold an LF without a CR right before it; `before` is the byte that came
/// before them, if any.
fn has_bare_lf(before: Option<u8>, bytes: &[u8]) -> bool {
    let mut prev = before;
    bytes.iter().any(|&b| {
        let bare = b == b'\n' && prev != Some(b'\r');
        prev = Some(b);
        bare
    })
}

/// A token character (RFC 9110 §5.6.2), as required of header names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `value` may be sent as a field value: no control bytes other than tab, so in particular
/// no CR or LF that could end the line and start a forged header.
fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends `name: value\r\n` for a field this module controls the name of.
///
/// Control bytes in `value` are percent-encoded, so a value taken from elsewhere can never end
/// the line; a legitimate value contains none.
fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_escaped(out, value, |b| b != b'\t' && (b < 0x20 || b == 0x7f));
    out.extend_from_slice(b"\r\n");
}

/// Appends `bytes`, percent-encoding each byte for which `escape` holds.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8], escape: impl Fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if escape(b) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
}

/// Appends the application's extra fields, skipping any whose name is not a token, whose value
/// could break the line (CR, LF or another control byte), or whose name is one of `managed` (a
/// field this module writes itself, which a second copy would contradict).
fn push_extra_fields(out: &mut Vec<u8>, fields: &[(String, String)], managed: &[&str]) {
    for (name, value) in fields {
        let valid = !name.is_empty()
            && name.bytes().all(is_tchar)
            && is_field_value(value.as_bytes())
            && !managed.iter().any(|m| m.eq_ignore_ascii_case(name));
        if valid {
            push_field(out, name, value.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pushed = Result<Option<(Vec<u8>, usize)>, HandshakeError>;

    /// Feeds `chunks` to a fresh buffer whose parse step returns the head itself.
    fn feed(max_bytes: usize, chunks: &[&[u8]]) -> Vec<Pushed> {
        let mut head = HeadBuffer::new(max_bytes);
        chunks
            .iter()
            .map(|c| head.push(c, |h| Ok(h.to_vec()), |_| Ok(())))
            .collect()
    }

    #[test]
    fn accept_key_matches_rfc6455_section_1_3_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn has_token_reads_comma_lists_across_fields_case_insensitively() {
        let headers = Headers::from_pairs(vec![
            ("Connection".into(), b"keep-alive".to_vec()),
            ("connection".into(), b" foo ,\tUpGrAdE ".to_vec()),
        ]);
        assert!(headers.has_token("CONNECTION", "upgrade"));
        assert!(headers.has_token("connection", "Keep-Alive"));
        assert!(!headers.has_token("connection", "up"));
        assert!(!headers.has_token("upgrade", "upgrade"));
        assert_eq!(headers.count("connection"), 2);
    }

    #[test]
    fn terminator_is_found_wherever_the_input_is_split() {
        let msg: &[u8] = b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest";
        let head_len = msg.len() - 4;
        for cut in 0..=msg.len() {
            let (a, b) = msg.split_at(cut);
            let results = feed(1024, &[a, b]);
            let (first, second) = (&results[0], &results[1]);
            if cut >= head_len {
                assert_eq!(
                    first,
                    &Ok(Some((msg[..head_len].to_vec(), head_len))),
                    "cut {cut}"
                );
                assert_eq!(second, &Ok(None), "cut {cut}");
            } else {
                assert_eq!(first, &Ok(None), "cut {cut}");
                assert_eq!(
                    second,
                    &Ok(Some((msg[..head_len].to_vec(), head_len - cut))),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn terminator_split_over_four_pushes_is_found() {
        let results = feed(1024, &[b"GET / HTTP/1.1\r", b"\n", b"\r", b"\nxy"]);
        assert_eq!(
            results[3],
            Ok(Some((b"GET / HTTP/1.1\r\n\r\n".to_vec(), 1)))
        );
    }

    #[test]
    fn head_of_exactly_max_bytes_is_accepted_and_one_more_is_not() {
        let msg: &[u8] = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        assert_eq!(
            feed(msg.len(), &[msg])[0],
            Ok(Some((msg.to_vec(), msg.len())))
        );
        assert_eq!(
            feed(msg.len() - 1, &[msg])[0],
            Err(HandshakeError::HeadersTooLarge)
        );
        let bytes: Vec<&[u8]> = msg.chunks(1).collect();
        let trickled = feed(msg.len() - 1, &bytes);
        assert_eq!(
            trickled[msg.len() - 2],
            Err(HandshakeError::HeadersTooLarge)
        );
    }

    #[test]
    fn results_are_sticky() {
        let ok = feed(1024, &[b"a\r\n\r\n", b"more", b"\r\n\r\n"]);
        assert_eq!(ok[1..], [Ok(None), Ok(None)]);
        let err = feed(4, &[b"abcd", b"\r\n\r\n"]);
        assert_eq!(
            err,
            [
                Err(HandshakeError::HeadersTooLarge),
                Err(HandshakeError::HeadersTooLarge)
            ]
        );
    }

    #[test]
    fn extra_fields_that_could_inject_are_skipped() {
        let mut out = Vec::new();
        let fields = [
            ("X-Ok".to_owned(), "fine\tvalue".to_owned()),
            ("X-Evil".to_owned(), "a\r\nSet-Cookie: x=1".to_owned()),
            ("X-Lf".to_owned(), "a\nb".to_owned()),
            ("Bad Name".to_owned(), "v".to_owned()),
            ("X-Cr\r\nInjected".to_owned(), "v".to_owned()),
            (String::new(), "v".to_owned()),
            ("Upgrade".to_owned(), "h2c".to_owned()),
        ];
        push_extra_fields(&mut out, &fields, &["upgrade"]);
        assert_eq!(out, b"X-Ok: fine\tvalue\r\n");
    }

    #[test]
    fn controlled_fields_percent_encode_control_bytes() {
        let mut out = Vec::new();
        push_field(&mut out, "Host", b"a\r\nb");
        assert_eq!(out, b"Host: a%0D%0Ab\r\n");
    }
}
