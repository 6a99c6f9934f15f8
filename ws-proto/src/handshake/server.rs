//! Server side: incremental request parsing, validation (RFC 6455 §4.2.1) and responses.

use super::{HeadBuffer, Headers};
use crate::error::HandshakeError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Incremental parser for the client's opening request.
///
/// Bytes are appended as they arrive; the header block is parsed once its end (`\r\n\r\n`) has
/// been seen, and the search for it only scans new bytes, so a trickled request costs linear time.
///
/// Line endings must be CRLF: a bare LF anywhere in the head is [`HandshakeError::Malformed`], as
/// soon as it arrives.
///
/// Bytes that cannot start a request (a TLS hello sent to a plain port, another protocol, a
/// broken request line) fail as soon as they are seen, not when the head ends: the client gets
/// its 400 at once instead of waiting for the handshake timeout.
#[derive(Debug)]
pub struct RequestParser {
    head: HeadBuffer,
    max_headers: usize,
}

/// A complete request: either a WebSocket upgrade or a plain HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParsedRequest {
    /// A valid upgrade request; the application accepts or rejects it.
    Upgrade(Request),
    /// A request without `Upgrade: websocket` (for example a browser loading a page).
    Plain(Request),
}

/// The parsed opening request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method (GET for upgrades).
    pub method: String,
    /// The request target, e.g. `/chat?room=1`.
    pub path: String,
    /// All header fields.
    pub headers: Headers,
    /// `Sec-WebSocket-Key` (empty for plain requests).
    pub key: String,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    pub protocols: Vec<String>,
}

impl Request {
    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.headers.get("host")
    }

    /// The `Origin` header.
    pub fn origin(&self) -> Option<&str> {
        self.headers.get("origin")
    }

    /// Every `Sec-WebSocket-Extensions` header value.
    pub fn extension_headers(&self) -> Vec<&[u8]> {
        self.headers.get_all("sec-websocket-extensions").collect()
    }
}

impl RequestParser {
    /// A parser that fails with 431 past `max_bytes` of header block or `max_headers` fields.
    ///
    /// `max_bytes` counts the request line, the fields and the final empty line: a head of exactly
    /// `max_bytes` bytes is accepted.
    pub fn new(max_bytes: usize, max_headers: usize) -> RequestParser {
        RequestParser {
            head: HeadBuffer::new(max_bytes),
            max_headers,
        }
    }

    /// Feeds bytes. Once the header block is complete, returns the request and how many bytes of
    /// `data` it used; the rest of `data` belongs to the WebSocket stream.
    ///
    /// - `Ok(None)`: the head is not complete yet; all of `data` was taken (copied into the parser).
    /// - `Ok(Some((request, used)))`: the head ended `used` bytes into *this call's* `data`
    ///   (`1 <= used <= data.len()`); `data[used..]` was not looked at and is the start of the
    ///   frame stream (or, for [`ParsedRequest::Plain`], of a request body, which this parser does
    ///   not read).
    /// - `Err(e)`: reply with [`HandshakeError::status`]. [`HandshakeError::HeadersTooLarge`] comes
    ///   as soon as `max_bytes` bytes are buffered without the end of the head, without waiting for
    ///   more, and [`HandshakeError::Malformed`] as soon as the request line is seen to be wrong
    ///   (its first bytes, or the whole line once it ends).
    ///
    /// Checks, in order: HTTP syntax ([`HandshakeError::Malformed`], or
    /// [`HandshakeError::TooManyHeaders`]), version 1.1 ([`HandshakeError::HttpVersion`]); a
    /// request whose `Upgrade` fields lack the token `websocket` is then
    /// [`ParsedRequest::Plain`], whatever its method. An upgrade must be a GET
    /// ([`HandshakeError::MethodNotAllowed`]) with one non-empty `Host`
    /// ([`HandshakeError::MissingHost`], [`HandshakeError::DuplicateHeader`]), `Connection` holding
    /// the token `upgrade` ([`HandshakeError::BadUpgrade`]), a single `Sec-WebSocket-Version: 13`
    /// ([`HandshakeError::UnsupportedVersion`]) and a single `Sec-WebSocket-Key` that is base64 of
    /// 16 bytes ([`HandshakeError::BadKey`], [`HandshakeError::DuplicateHeader`]). Offered
    /// subprotocols must be UTF-8 ([`HandshakeError::Malformed`]).
    ///
    /// The parser is single-use and frees its buffer once it has a result: afterwards `push`
    /// ignores its input and returns `Ok(None)` after a success, or the same error after a failure.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<(ParsedRequest, usize)>, HandshakeError> {
        let max_headers = self.max_headers;
        self.head.push(
            data,
            |head| parse_request(head, max_headers),
            |start| {
                let status = httparse::Request::new(&mut []).parse(start);
                status.map(drop).map_err(super::httparse_error)
            },
        )
    }
}

fn parse_request(head: &[u8], max_headers: usize) -> Result<ParsedRequest, HandshakeError> {
    let mut fields = vec![httparse::EMPTY_HEADER; super::header_slots(head.len(), max_headers)];
    let mut req = httparse::Request::new(&mut fields);
    let status = req.parse(head).map_err(super::httparse_error)?;
    super::check_complete(status, head.len())?;
    if req.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let method = req.method.unwrap_or_default().to_owned();
    let path = req.path.unwrap_or_default().to_owned();
    let headers = super::headers_from_httparse(req.headers);
    if !headers.has_token("upgrade", "websocket") {
        let (key, protocols) = (String::new(), Vec::new());
        return Ok(ParsedRequest::Plain(Request {
            method,
            path,
            headers,
            key,
            protocols,
        }));
    }
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    // RFC 9110 §7.2: a request with no Host or with several gets a 400.
    match headers.count("host") {
        0 => return Err(HandshakeError::MissingHost),
        1 => {}
        _ => return Err(HandshakeError::DuplicateHeader("host")),
    }
    if headers
        .get_bytes("host")
        // A host is visible ASCII (RFC 9110 §7.2, RFC 3986 reg-name); anything else cannot be
        // handed to the application as text.
        .is_none_or(|h| {
            let h = super::trim_ows(h);
            h.is_empty() || !h.iter().all(|b| b.is_ascii_graphic())
        })
    {
        return Err(HandshakeError::MissingHost);
    }
    if !headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::BadUpgrade);
    }
    let version_ok = {
        let mut versions = headers.get_all("sec-websocket-version");
        versions.next().is_some_and(|v| super::trim_ows(v) == b"13") && versions.next().is_none()
    };
    if !version_ok {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = match headers.count("sec-websocket-key") {
        0 => return Err(HandshakeError::BadKey),
        1 => headers
            .get_bytes("sec-websocket-key")
            .map(super::trim_ows)
            .unwrap_or_default(),
        _ => return Err(HandshakeError::DuplicateHeader("sec-websocket-key")),
    };
    // The decoded key is otherwise unused, but its length is the RFC's only check on it.
    if STANDARD.decode(key).map_or(true, |k| k.len() != 16) {
        return Err(HandshakeError::BadKey);
    }
    // Text that decoded as base64 is ASCII, so this cannot fail.
    let key = std::str::from_utf8(key)
        .map_err(|_| HandshakeError::BadKey)?
        .to_owned();
    let mut protocols = Vec::new();
    for value in headers.get_all("sec-websocket-protocol") {
        let value = std::str::from_utf8(value)
            .map_err(|_| HandshakeError::Malformed("Sec-WebSocket-Protocol is not UTF-8"))?;
        protocols.extend(
            value
                .split(',')
                .map(|p| p.trim_matches([' ', '\t']))
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
    }
    Ok(ParsedRequest::Upgrade(Request {
        method,
        path,
        headers,
        key,
        protocols,
    }))
}

/// Fields that [`response_101`] writes itself.
const MANAGED_101: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Appends a `101 Switching Protocols` response.
///
/// `key` is the request's `Sec-WebSocket-Key` (as in [`Request::key`]); `protocol` and
/// `extensions` are written as `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` when
/// present. An extra header is skipped if its name is not an HTTP token, if its value contains CR,
/// LF or another control byte other than tab (so it cannot inject fields or end the head), or if
/// it names a field written here (`Upgrade`, `Connection`, `Sec-WebSocket-Accept`,
/// `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`). Control bytes in `protocol` or
/// `extensions` are percent-encoded rather than written raw.
pub fn response_101(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    super::push_field(
        out,
        "Sec-WebSocket-Accept",
        super::accept_key(key.as_bytes()).as_bytes(),
    );
    if let Some(protocol) = protocol {
        super::push_field(out, "Sec-WebSocket-Protocol", protocol.as_bytes());
    }
    if let Some(extensions) = extensions {
        super::push_field(out, "Sec-WebSocket-Extensions", extensions.as_bytes());
    }
    super::push_extra_fields(out, extra_headers, MANAGED_101);
    out.extend_from_slice(b"\r\n");
}

/// Appends a complete HTTP/1.1 response with `Content-Length` and `Connection: close`.
/// Status 426 also carries `Sec-WebSocket-Version: 13`.
///
/// - The status line uses [`reason_phrase`]; a status outside 100–999 is written as 500.
/// - `headers` follow, skipping (as in [`response_101`]) any that are not valid fields, and any
///   named `Content-Length`, `Transfer-Encoding` or `Connection`, which this function decides.
/// - 426 adds `Sec-WebSocket-Version: 13` and `Upgrade: websocket` (and skips caller fields of
///   those names); 405 adds `Allow: GET` unless `headers` has an `Allow` field (RFC 9110 §15.5.6).
/// - Statuses that cannot carry content (1xx, 204, 304) get neither `Content-Length` nor `body`.
pub fn http_response(status: u16, headers: &[(String, String)], body: &[u8], out: &mut Vec<u8>) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    let managed: &[&str] = if status == 426 {
        &[
            "content-length",
            "transfer-encoding",
            "connection",
            "sec-websocket-version",
            "upgrade",
        ]
    } else {
        &["content-length", "transfer-encoding", "connection"]
    };
    super::push_extra_fields(out, headers, managed);
    let has_allow = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("allow") && super::is_field_value(value.as_bytes())
    });
    if status == 405 && !has_allow {
        out.extend_from_slice(b"Allow: GET\r\n");
    }
    if status == 426 {
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
    }
    let has_content = status >= 200 && status != 204 && status != 304;
    if has_content {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    if has_content {
        out.extend_from_slice(body);
    }
}

/// Appends the response for a failed handshake: [`HandshakeError::status`], with the error's
/// description as a `text/plain` body.
pub fn reject_response(error: &HandshakeError, out: &mut Vec<u8>) {
    let content_type = [(
        "Content-Type".to_owned(),
        "text/plain; charset=utf-8".to_owned(),
    )];
    http_response(
        error.status(),
        &content_type,
        error.to_string().as_bytes(),
        out,
    );
}

/// The reason phrase for `status` (RFC 9110 §15), or `"Unknown"`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_ascii_host_is_400() {
        let req = b"GET / HTTP/1.1\r\nHost: \xff\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut p = super::RequestParser::new(8192, 64);
        assert_eq!(p.push(req), Err(crate::HandshakeError::MissingHost));
    }

    use super::*;
    use crate::handshake::client::ResponseParser;
    use proptest::prelude::*;

    /// The opening request from RFC 6455 §1.2.
    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// A request line and the given fields, CRLF-terminated.
    fn request(first_line: &str, fields: &[&str]) -> Vec<u8> {
        let mut s = format!("{first_line}\r\n");
        for f in fields {
            s.push_str(f);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// A valid upgrade with `fields` replacing the defaults of the same name.
    fn upgrade_with(fields: &[&str]) -> Vec<u8> {
        let mut all: Vec<&str> = vec![
            "Host: example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ];
        for f in fields {
            let name = f.split(':').next().unwrap_or_default();
            all.retain(|a| {
                !a.split(':')
                    .next()
                    .unwrap_or_default()
                    .eq_ignore_ascii_case(name)
            });
        }
        all.extend(fields.iter().filter(|f| !f.ends_with(':')));
        request("GET /chat HTTP/1.1", &all)
    }

    fn parse(data: &[u8]) -> Result<Option<(ParsedRequest, usize)>, HandshakeError> {
        RequestParser::new(16 << 10, 64).push(data)
    }

    fn parse_err(data: &[u8]) -> HandshakeError {
        parse(data).expect_err("request should be rejected")
    }

    fn upgrade_request(data: &[u8]) -> Request {
        match parse(data) {
            Ok(Some((ParsedRequest::Upgrade(r), used))) => {
                assert_eq!(used, data.len());
                r
            }
            other => panic!("expected an upgrade, got {other:?}"),
        }
    }

    /// Feeds chunks; returns the result and the total bytes used (earlier chunks count in full).
    fn feed_chunks(chunks: &[&[u8]]) -> (Result<Option<ParsedRequest>, HandshakeError>, usize) {
        let mut parser = RequestParser::new(16 << 10, 64);
        let mut before = 0;
        for chunk in chunks {
            match parser.push(chunk) {
                Ok(None) => before += chunk.len(),
                Ok(Some((r, used))) => return (Ok(Some(r)), before + used),
                Err(e) => return (Err(e), before),
            }
        }
        (Ok(None), before)
    }

    #[test]
    fn rfc_sample_request_is_parsed_as_upgrade() {
        let r = upgrade_request(RFC_REQUEST);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/chat");
        assert_eq!(r.host(), Some("server.example.com"));
        assert_eq!(r.origin(), Some("http://example.com"));
        assert_eq!(r.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(r.protocols, ["chat", "superchat"]);
        assert_eq!(r.headers.len(), 7);
        assert_eq!(
            r.headers.iter().next(),
            Some(("Host", &b"server.example.com"[..]))
        );
        assert!(r.extension_headers().is_empty());
    }

    #[test]
    fn protocols_from_several_fields_are_split_trimmed_and_kept_in_order() {
        let r = upgrade_request(&upgrade_with(&[
            "Sec-WebSocket-Protocol: a ,, b",
            "Sec-WebSocket-Protocol: c",
            "Sec-WebSocket-Extensions: permessage-deflate",
        ]));
        assert_eq!(r.protocols, ["a", "b", "c"]);
        assert_eq!(r.extension_headers(), [&b"permessage-deflate"[..]]);
    }

    #[test]
    fn key_is_stored_trimmed() {
        let r = upgrade_request(&upgrade_with(&[
            "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== ",
        ]));
        assert_eq!(r.key, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn firefox_connection_keep_alive_upgrade_is_accepted() {
        upgrade_request(&upgrade_with(&["Connection: keep-alive, Upgrade"]));
        upgrade_request(&upgrade_with(&[
            "Connection: keep-alive",
            "Connection: Upgrade",
        ]));
    }

    #[test]
    fn upgrade_and_connection_tokens_are_case_insensitive() {
        upgrade_request(&upgrade_with(&[
            "Upgrade: WebSocket",
            "Connection: UPGRADE",
        ]));
        upgrade_request(&upgrade_with(&[
            "upgrade: WEBSOCKET",
            "connection: upgrade",
        ]));
    }

    #[test]
    fn connection_without_upgrade_token_is_400() {
        let e = parse_err(&upgrade_with(&["Connection: keep-alive"]));
        assert_eq!((e.clone(), e.status()), (HandshakeError::BadUpgrade, 400));
        assert_eq!(
            parse_err(&upgrade_with(&["Connection:"])),
            HandshakeError::BadUpgrade
        );
    }

    #[test]
    fn missing_host_is_400() {
        let e = parse_err(&upgrade_with(&["Host:"]));
        assert_eq!((e.clone(), e.status()), (HandshakeError::MissingHost, 400));
        assert_eq!(
            parse_err(&upgrade_with(&["Host: "])),
            HandshakeError::MissingHost
        );
        let two = upgrade_with(&["Host: a", "Host: b"]);
        assert_eq!(parse_err(&two), HandshakeError::DuplicateHeader("host"));
    }

    #[test]
    fn missing_key_is_400() {
        let e = parse_err(&upgrade_with(&["Sec-WebSocket-Key:"]));
        assert_eq!((e.clone(), e.status()), (HandshakeError::BadKey, 400));
    }

    #[test]
    fn key_that_is_not_base64_is_400() {
        for key in ["not base64 at all!!!!!==", "dGhlIHNhbXBsZSBub25jZQ", ""] {
            let field = format!("Sec-WebSocket-Key: {key}");
            let e = parse_err(&upgrade_with(&[&field]));
            assert_eq!(
                (e.clone(), e.status()),
                (HandshakeError::BadKey, 400),
                "{key:?}"
            );
        }
    }

    #[test]
    fn key_of_15_or_17_bytes_is_400() {
        for len in [15, 17] {
            let field = format!("Sec-WebSocket-Key: {}", STANDARD.encode(vec![7u8; len]));
            let e = parse_err(&upgrade_with(&[&field]));
            assert_eq!(
                (e.clone(), e.status()),
                (HandshakeError::BadKey, 400),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn duplicate_key_is_400() {
        let two = upgrade_with(&[
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==",
        ]);
        let e = parse_err(&two);
        assert_eq!(
            (e.clone(), e.status()),
            (HandshakeError::DuplicateHeader("sec-websocket-key"), 400)
        );
    }

    #[test]
    fn version_8_is_unsupported_with_426() {
        let e = parse_err(&upgrade_with(&["Sec-WebSocket-Version: 8"]));
        assert_eq!(
            (e.clone(), e.status()),
            (HandshakeError::UnsupportedVersion, 426)
        );
        for v in [
            "Sec-WebSocket-Version:",
            "Sec-WebSocket-Version: 13, 8",
            "Sec-WebSocket-Version: 013",
        ] {
            assert_eq!(
                parse_err(&upgrade_with(&[v])),
                HandshakeError::UnsupportedVersion,
                "{v}"
            );
        }
        let two = upgrade_with(&["Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"]);
        assert_eq!(parse_err(&two), HandshakeError::UnsupportedVersion);
    }

    #[test]
    fn post_upgrade_is_405() {
        let mut req = upgrade_with(&[]);
        req.splice(..3, *b"POST");
        let e = parse_err(&req);
        assert_eq!(
            (e.clone(), e.status()),
            (HandshakeError::MethodNotAllowed, 405)
        );
    }

    #[test]
    fn http_1_0_is_rejected() {
        let req = request(
            "GET /chat HTTP/1.0",
            &[
                "Host: a",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Version: 13",
            ],
        );
        let e = parse_err(&req);
        assert_eq!((e.clone(), e.status()), (HandshakeError::HttpVersion, 400));
        assert_eq!(
            parse_err(&request("GET / HTTP/1.0", &[])),
            HandshakeError::HttpVersion
        );
    }

    #[test]
    fn malformed_http_is_400() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
        ] {
            let e = parse_err(bad);
            assert!(matches!(e, HandshakeError::Malformed(_)), "{bad:?}: {e:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn a_start_that_is_not_http_fails_before_the_head_ends() {
        for bad in [
            // A TLS ClientHello: its first byte is no token character.
            &b"\x16\x03\x01\x00\xc8\x01"[..],
            // A start line that ends without being a request line.
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"GET / HTTP/1.1 trailing\r\n",
            b"GET / HTP/1.1\r\nHost: a\r\n",
        ] {
            let e = RequestParser::new(16 << 10, 64).push(bad).unwrap_err();
            assert!(matches!(e, HandshakeError::Malformed(_)), "{bad:?}: {e:?}");
            // Trickled, it fails as soon as the bytes that make it wrong have arrived.
            let bytes: Vec<&[u8]> = bad.chunks(1).collect();
            let (result, used) = feed_chunks(&bytes);
            assert!(result.is_err(), "{bad:?} trickled: {result:?}");
            assert!(used < bad.len(), "{bad:?} trickled: failed only at the end");
        }
    }

    #[test]
    fn a_long_first_burst_fails_at_once_wherever_its_bad_byte_is() {
        // Past the bytes checked at every push, but in a push that began before them.
        let bad = [&b"GET /"[..], &[b'a'; 100], b" HTTP/1.1 x"].concat();
        let e = RequestParser::new(16 << 10, 64).push(&bad).unwrap_err();
        assert!(matches!(e, HandshakeError::Malformed(_)), "{e:?}");
        let noise: Vec<u8> = (0..200u32).map(|i| (i * 149 + 99) as u8).collect();
        assert!(RequestParser::new(16 << 10, 64).push(&noise).is_err());
    }

    #[test]
    fn a_bare_lf_anywhere_fails_as_soon_as_it_arrives() {
        let bare = HandshakeError::Malformed("bare LF line ending");
        let mut parser = RequestParser::new(16 << 10, 64);
        assert_eq!(parser.push(b"GET / HTTP/1.1"), Ok(None));
        assert_eq!(parser.push(b"\nHost: a"), Err(bare.clone()));
        let mut parser = RequestParser::new(16 << 10, 64);
        assert_eq!(parser.push(b"GET / HTTP/1.1\r\nHost: a\r"), Ok(None));
        assert_eq!(parser.push(b"\nX: y\n"), Err(bare.clone()));
        // In one piece, with CRLF everywhere else, too.
        for head in [
            &b"GET / HTTP/1.1\nHost: a\r\nUpgrade: websocket\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\nUpgrade: websocket\r\n\r\n",
            b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(parse(head), Err(bare.clone()), "{head:?}");
        }
    }

    #[test]
    fn a_valid_head_is_never_failed_early_wherever_it_is_cut() {
        // The start line is longer than the bytes checked at every push, so both early checks run.
        let target = format!("/{}", "p".repeat(100));
        let data = request(&format!("GET {target} HTTP/1.1"), &["Host: a", "X: y"]);
        let whole = parse(&data).unwrap().unwrap();
        for cut in 1..data.len() {
            let (result, used) = feed_chunks(&[&data[..cut], &data[cut..]]);
            assert_eq!(result, Ok(Some(whole.0.clone())), "cut at {cut}");
            assert_eq!(used, whole.1);
        }
        // Leading empty lines before the request line are not a start line.
        let mut parser = RequestParser::new(16 << 10, 64);
        assert_eq!(parser.push(b"\r\n"), Ok(None));
        assert_eq!(parser.push(b"GET / HTTP/1.1\r\n"), Ok(None));
    }

    #[test]
    fn bare_lf_inside_the_head_is_malformed() {
        let e = parse_err(b"GET / HTTP/1.1\nHost: a\n\nX: y\r\n\r\n");
        assert_eq!(e, HandshakeError::Malformed("bare LF line ending"));
    }

    #[test]
    fn plain_get_without_upgrade_is_plain() {
        let req = request(
            "GET /index.html HTTP/1.1",
            &["Host: example.com", "Accept: text/html"],
        );
        match parse(&req) {
            Ok(Some((ParsedRequest::Plain(r), used))) => {
                assert_eq!(used, req.len());
                assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/index.html"));
                assert_eq!(r.host(), Some("example.com"));
                assert!(r.key.is_empty() && r.protocols.is_empty());
            }
            other => panic!("expected a plain request, got {other:?}"),
        }
        // Another upgrade protocol, and any method, are plain too.
        let h2c = request("POST /x HTTP/1.1", &["Upgrade: h2c", "Connection: Upgrade"]);
        assert!(
            matches!(parse(&h2c), Ok(Some((ParsedRequest::Plain(r), _))) if r.method == "POST")
        );
    }

    #[test]
    fn bytes_after_the_request_are_not_used_in_one_push() {
        let mut data = RFC_REQUEST.to_vec();
        data.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
        let (_, used) = parse(&data).unwrap().unwrap();
        assert_eq!(used, RFC_REQUEST.len());
        assert!(used < data.len());
    }

    #[test]
    fn bytes_after_the_request_are_not_used_across_pushes() {
        let mut parser = RequestParser::new(16 << 10, 64);
        let split = RFC_REQUEST.len() - 2;
        assert_eq!(parser.push(&RFC_REQUEST[..split]), Ok(None));
        let mut rest = RFC_REQUEST[split..].to_vec();
        rest.extend_from_slice(b"frames");
        let (r, used) = parser.push(&rest).unwrap().unwrap();
        assert_eq!(used, 2);
        assert_eq!(&rest[used..], b"frames");
        assert!(matches!(r, ParsedRequest::Upgrade(_)));
    }

    #[test]
    fn request_fed_byte_by_byte_equals_one_piece() {
        let mut data = RFC_REQUEST.to_vec();
        data.extend_from_slice(b"xyz");
        let whole = parse(&data).unwrap().unwrap();
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let (trickled, used) = feed_chunks(&bytes);
        assert_eq!(trickled, Ok(Some(whole.0)));
        assert_eq!(used, whole.1);
    }

    #[test]
    fn oversized_head_fails_with_431_without_waiting_for_the_terminator() {
        let mut parser = RequestParser::new(1024, 64);
        assert_eq!(parser.push(b"GET / HTTP/1.1\r\nX: "), Ok(None));
        let mut result = Ok(None);
        for _ in 0..2000 {
            result = parser.push(b"a");
            if result.is_err() {
                break;
            }
        }
        let e = result.expect_err("the cap should be hit before any terminator");
        assert_eq!(
            (e.clone(), e.status()),
            (HandshakeError::HeadersTooLarge, 431)
        );
        // One big push with no terminator fails at once as well.
        let big = [b'a'; 4096];
        assert_eq!(
            RequestParser::new(1024, 64).push(&big),
            Err(HandshakeError::HeadersTooLarge)
        );
    }

    #[test]
    fn too_many_headers_is_431() {
        let fields: Vec<String> = (0..10).map(|i| format!("X-{i}: v")).collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let req = request("GET / HTTP/1.1", &fields);
        let e = RequestParser::new(16 << 10, 9)
            .push(&req)
            .expect_err("10 fields > 9");
        assert_eq!(
            (e.clone(), e.status()),
            (HandshakeError::TooManyHeaders, 431)
        );
        assert!(RequestParser::new(16 << 10, 10).push(&req).is_ok());
    }

    #[test]
    fn trickled_16k_header_completes() {
        let value = "v".repeat(16 << 10);
        let cookie = format!("Cookie: {value}");
        let req = upgrade_with(&[&cookie]);
        let mut parser = RequestParser::new(32 << 10, 64);
        let mut done = None;
        for (i, b) in req.iter().enumerate() {
            if let Some(r) = parser.push(std::slice::from_ref(b)).unwrap() {
                done = Some((i, r));
            }
        }
        let (at, (request, used)) = done.expect("request should complete");
        assert_eq!((at, used), (req.len() - 1, 1));
        assert!(
            matches!(request, ParsedRequest::Upgrade(r) if r.headers.get("cookie") == Some(value.as_str()))
        );
    }

    #[test]
    fn after_a_result_push_returns_none_or_the_same_error() {
        let mut parser = RequestParser::new(16 << 10, 64);
        assert!(parser.push(RFC_REQUEST).unwrap().is_some());
        assert_eq!(parser.push(RFC_REQUEST), Ok(None));
        let mut parser = RequestParser::new(16 << 10, 64);
        let bad = upgrade_with(&["Host:"]);
        assert_eq!(parser.push(&bad), Err(HandshakeError::MissingHost));
        assert_eq!(parser.push(RFC_REQUEST), Err(HandshakeError::MissingHost));
    }

    #[test]
    fn response_101_has_the_rfc_accept_and_chosen_fields() {
        let mut out = Vec::new();
        let extra = [("X-Server".to_owned(), "test".to_owned())];
        response_101(
            "dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            Some("permessage-deflate"),
            &extra,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\
             X-Server: test\r\n\r\n"
        );
    }

    #[test]
    fn response_101_round_trips_through_response_parser_and_validate() {
        let r = upgrade_request(RFC_REQUEST);
        let mut out = Vec::new();
        response_101(&r.key, Some("superchat"), None, &[], &mut out);
        out.extend_from_slice(b"\x81\x00");
        let (response, used) = ResponseParser::new(16 << 10, 64)
            .push(&out)
            .unwrap()
            .unwrap();
        assert_eq!(used, out.len() - 2);
        assert_eq!(response.status, 101);
        assert_eq!(response.protocol.as_deref(), Some("superchat"));
        assert_eq!(response.validate(&r.key, &r.protocols), Ok(()));
    }

    #[test]
    fn header_injection_attempt_is_skipped() {
        let evil = [
            (
                "X-A".to_owned(),
                "1\r\nSet-Cookie: session=stolen".to_owned(),
            ),
            (
                "X-B\r\nSet-Cookie: session=stolen\r\nX-C".to_owned(),
                "1".to_owned(),
            ),
            ("X-D".to_owned(), "ok".to_owned()),
        ];
        let mut out = Vec::new();
        response_101("dGhlIHNhbXBsZSBub25jZQ==", None, None, &evil, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Set-Cookie"), "{text}");
        assert!(text.ends_with("X-D: ok\r\n\r\n"), "{text}");
        let mut out = Vec::new();
        http_response(403, &evil, b"no", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Set-Cookie"), "{text}");
        assert!(text.contains("\r\nX-D: ok\r\n"), "{text}");
    }

    #[test]
    fn http_response_has_status_line_length_and_close() {
        let mut out = Vec::new();
        let headers = [
            ("Content-Type".to_owned(), "text/html".to_owned()),
            ("Content-Length".to_owned(), "999".to_owned()),
            ("connection".to_owned(), "keep-alive".to_owned()),
        ];
        http_response(404, &headers, b"missing", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 7\r\n\
             Connection: close\r\n\r\nmissing"
        );
    }

    #[test]
    fn response_426_contains_sec_websocket_version_13() {
        let mut out = Vec::new();
        reject_response(&HandshakeError::UnsupportedVersion, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
        assert_eq!(text.matches("Sec-WebSocket-Version").count(), 1);
    }

    #[test]
    fn reason_phrases_for_common_statuses() {
        for (status, phrase) in [
            (200, "OK"),
            (204, "No Content"),
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (413, "Content Too Large"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (599, "Unknown"),
        ] {
            assert_eq!(reason_phrase(status), phrase);
        }
    }

    #[test]
    fn special_statuses_get_their_required_fields() {
        let mut out = Vec::new();
        http_response(405, &[], b"", &mut out);
        assert!(String::from_utf8_lossy(&out).contains("\r\nAllow: GET\r\n"));
        let mut out = Vec::new();
        http_response(204, &[], b"ignored", &mut out);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        let mut out = Vec::new();
        http_response(7, &[], b"", &mut out);
        assert!(out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
    }

    proptest! {
        #[test]
        fn any_split_into_1_to_5_chunks_gives_the_same_request_and_used(
            cuts in proptest::collection::vec(0usize..=RFC_REQUEST.len() + 6, 0..=4),
        ) {
            let mut data = RFC_REQUEST.to_vec();
            data.extend_from_slice(b"\x81\x80abcd");
            let (whole, whole_used) = parse(&data).unwrap().unwrap();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[start..cut]);
                start = cut;
            }
            let (result, used) = feed_chunks(&chunks);
            prop_assert_eq!(result, Ok(Some(whole)));
            prop_assert_eq!(used, whole_used);
        }
    }
}
