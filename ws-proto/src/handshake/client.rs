//! Client side: the opening request and checking the server's response (RFC 6455 §4.1).

use super::{HeadBuffer, Headers};
use crate::error::HandshakeError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// What the client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// `Host` header value (host, or host:port).
    pub host: String,
    /// Request target, e.g. `/chat`.
    pub path: String,
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// Extra header fields (e.g. `Origin`, `Authorization`).
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` on `host` with no subprotocols or extra headers.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> ClientRequest {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            protocols: Vec::new(),
            headers: Vec::new(),
        }
    }
}

/// base64 of a 16-byte nonce: a `Sec-WebSocket-Key`.
pub fn key_from_nonce(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// Fields that [`build_request`] writes itself.
const MANAGED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Appends the opening request.
///
/// An empty path is sent as `/`, and a path not starting with `/` gets one. Bytes that cannot
/// appear in a request target (controls, space, non-ASCII) are percent-encoded, as browsers do;
/// control bytes in the host, key, subprotocols or `extensions` are percent-encoded too, so no
/// input can end a line early. `req.headers` are filtered as in
/// [`response_101`](super::server::response_101): invalid fields, and fields this function writes
/// itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`,
/// `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`), are skipped.
pub fn build_request(req: &ClientRequest, key: &str, extensions: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"GET ");
    if !req.path.starts_with('/') {
        out.push(b'/');
    }
    super::push_escaped(out, req.path.as_bytes(), |b| b <= b' ' || b >= 0x7f);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    super::push_field(out, "Host", req.host.as_bytes());
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    super::push_field(out, "Sec-WebSocket-Key", key.as_bytes());
    out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    if !req.protocols.is_empty() {
        super::push_field(
            out,
            "Sec-WebSocket-Protocol",
            req.protocols.join(", ").as_bytes(),
        );
    }
    if let Some(extensions) = extensions {
        super::push_field(out, "Sec-WebSocket-Extensions", extensions.as_bytes());
    }
    super::push_extra_fields(out, &req.headers, MANAGED);
    out.extend_from_slice(b"\r\n");
}

/// The server's response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// All header fields.
    pub headers: Headers,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
}

impl Response {
    /// Every `Sec-WebSocket-Extensions` header value.
    pub fn extension_headers(&self) -> Vec<&[u8]> {
        self.headers.get_all("sec-websocket-extensions").collect()
    }

    /// Checks a response against our request (§4.1 steps 1–6, except extensions, which the
    /// extension negotiation checks): status 101, Upgrade/Connection, accept key, subprotocol.
    ///
    /// In order: status 101 ([`HandshakeError::BadStatus`]); `Upgrade` holding the token
    /// `websocket` and `Connection` the token `upgrade` ([`HandshakeError::BadUpgrade`]); exactly
    /// one `Sec-WebSocket-Accept`, equal to [`accept_key`](super::accept_key) of `key`
    /// ([`HandshakeError::BadAccept`]); at most one `Sec-WebSocket-Protocol`, naming a single
    /// protocol from `offered_protocols` ([`HandshakeError::UnofferedProtocol`]).
    pub fn validate(&self, key: &str, offered_protocols: &[String]) -> Result<(), HandshakeError> {
        if self.status != 101 {
            return Err(HandshakeError::BadStatus(self.status));
        }
        if !self.headers.has_token("upgrade", "websocket")
            || !self.headers.has_token("connection", "upgrade")
        {
            return Err(HandshakeError::BadUpgrade);
        }
        let mut accepts = self.headers.get_all("sec-websocket-accept");
        let expected = super::accept_key(key.as_bytes());
        let accept_ok = accepts
            .next()
            .is_some_and(|a| super::trim_ows(a) == expected.as_bytes())
            && accepts.next().is_none();
        if !accept_ok {
            return Err(HandshakeError::BadAccept);
        }
        if self.headers.count("sec-websocket-protocol") > 1 {
            return Err(HandshakeError::UnofferedProtocol);
        }
        if let Some(protocol) = &self.protocol {
            // The server must pick one; a list is not a choice even if each item was offered.
            if protocol.contains(',') || !offered_protocols.iter().any(|p| p == protocol) {
                return Err(HandshakeError::UnofferedProtocol);
            }
        }
        Ok(())
    }
}

/// Incremental parser for the server's response head (same caps as the request parser).
///
/// It parses only; [`Response::validate`] decides whether the response completes the handshake.
#[derive(Debug)]
pub struct ResponseParser {
    head: HeadBuffer,
    max_headers: usize,
}

impl ResponseParser {
    /// A parser with caps on header bytes and field count.
    pub fn new(max_bytes: usize, max_headers: usize) -> ResponseParser {
        ResponseParser {
            head: HeadBuffer::new(max_bytes),
            max_headers,
        }
    }

    /// Feeds bytes; once complete, the response and how many bytes of `data` it used.
    ///
    /// The contract is that of [`RequestParser::push`](super::server::RequestParser::push):
    /// `Ok(None)` took all of `data`; `Ok(Some((response, used)))` means the head ended `used`
    /// bytes into this call's `data` and `data[used..]` is the start of the frame stream (for a
    /// non-101 response, of its body); errors are [`HandshakeError::Malformed`] (as soon as the
    /// status line is seen to be wrong, before the head ends),
    /// [`HandshakeError::HeadersTooLarge`] (as soon as `max_bytes` are buffered without the end of
    /// the head) and [`HandshakeError::TooManyHeaders`], plus [`HandshakeError::HttpVersion`] for
    /// an `HTTP/1.0 101` (other HTTP/1.0 statuses are returned, for `validate` to report). The
    /// parser is single-use: after a result it returns `Ok(None)`, or the same error again.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let max_headers = self.max_headers;
        self.head.push(
            data,
            |head| parse_response(head, max_headers),
            |start| {
                let status = httparse::Response::new(&mut []).parse(start);
                status.map(drop).map_err(super::httparse_error)
            },
        )
    }
}

fn parse_response(head: &[u8], max_headers: usize) -> Result<Response, HandshakeError> {
    let mut fields = vec![httparse::EMPTY_HEADER; super::header_slots(head.len(), max_headers)];
    let mut res = httparse::Response::new(&mut fields);
    let status = res.parse(head).map_err(super::httparse_error)?;
    super::check_complete(status, head.len())?;
    let code = res.code.unwrap_or_default();
    // 101 exists only in HTTP/1.1.
    if code == 101 && res.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let headers = super::headers_from_httparse(res.headers);
    // A name that is not UTF-8 cannot match an offered one; keeping it (lossily) lets `validate`
    // report the mismatch instead of this parser failing on it.
    let protocol = headers
        .get_bytes("sec-websocket-protocol")
        .map(|p| String::from_utf8_lossy(super::trim_ows(p)).into_owned());
    Ok(Response {
        status: code,
        headers,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::server::{response_101, ParsedRequest, RequestParser};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn parse(data: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        ResponseParser::new(16 << 10, 64).push(data)
    }

    #[test]
    fn a_start_that_is_not_http_fails_before_the_head_ends() {
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"HTTP/1.1 abc\r\n",
            b"\x15\x03\x03",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, HandshakeError::Malformed(_)), "{bad:?}: {e:?}");
        }
        assert_eq!(parse(b"HTTP/1.1 101 Switching"), Ok(None));
        assert_eq!(parse(b"HTTP/1.1 101 Switching Protocols\r\n"), Ok(None));
    }

    /// A response head with the given status line and fields.
    fn response(status_line: &str, fields: &[&str]) -> Response {
        let mut s = format!("{status_line}\r\n");
        for f in fields {
            s.push_str(f);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        let (r, used) = parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(used, s.len());
        r
    }

    /// A valid 101 for [`KEY`] plus `fields`.
    fn ok_101(fields: &[&str]) -> Response {
        let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
        let mut all = vec!["Upgrade: websocket", "Connection: Upgrade", accept.as_str()];
        all.extend_from_slice(fields);
        response("HTTP/1.1 101 Switching Protocols", &all)
    }

    fn offered() -> Vec<String> {
        vec!["chat".to_owned(), "superchat".to_owned()]
    }

    #[test]
    fn key_from_nonce_is_base64_of_the_nonce() {
        assert_eq!(key_from_nonce(*b"the sample nonce"), KEY);
    }

    #[test]
    fn build_request_writes_the_rfc_fields() {
        let mut req = ClientRequest::new("server.example.com", "/chat");
        req.protocols = offered();
        req.headers
            .push(("Origin".to_owned(), "http://example.com".to_owned()));
        let mut out = Vec::new();
        build_request(
            &req,
            KEY,
            Some("permessage-deflate; client_max_window_bits"),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /chat HTTP/1.1\r\n\
             Host: server.example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Origin: http://example.com\r\n\r\n"
        );
    }

    #[test]
    fn build_request_with_empty_path_asks_for_root() {
        let mut out = Vec::new();
        build_request(&ClientRequest::new("h", ""), KEY, None, &mut out);
        assert!(out.starts_with(b"GET / HTTP/1.1\r\nHost: h\r\n"));
        assert!(!String::from_utf8_lossy(&out).contains("Sec-WebSocket-Protocol"));
        assert!(!String::from_utf8_lossy(&out).contains("Sec-WebSocket-Extensions"));
        let mut out = Vec::new();
        build_request(&ClientRequest::new("h", "?q=1"), KEY, None, &mut out);
        assert!(out.starts_with(b"GET /?q=1 HTTP/1.1\r\n"));
    }

    #[test]
    fn build_request_cannot_be_used_for_header_injection() {
        let mut req = ClientRequest::new("h\r\nX-Host: evil", "/a b\r\nX-Path: evil");
        req.headers
            .push(("X-Evil".to_owned(), "1\r\nX-Injected: 1".to_owned()));
        req.headers
            .push(("Sec-WebSocket-Version".to_owned(), "8".to_owned()));
        let mut out = Vec::new();
        build_request(&req, KEY, None, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "GET /a%20b%0D%0AX-Path:%20evil HTTP/1.1\r\nHost: h%0D%0AX-Host: evil\r\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("X-Injected") && !text.contains("\nX-Evil"),
            "{text}"
        );
        assert_eq!(text.matches("Sec-WebSocket-Version").count(), 1, "{text}");
    }

    #[test]
    fn built_request_is_accepted_by_the_server_parser() {
        let mut req = ClientRequest::new("example.com:8080", "/ws?room=1");
        req.protocols = offered();
        let mut out = Vec::new();
        build_request(&req, &key_from_nonce([9; 16]), None, &mut out);
        match RequestParser::new(16 << 10, 64).push(&out) {
            Ok(Some((ParsedRequest::Upgrade(r), used))) => {
                assert_eq!(used, out.len());
                assert_eq!(r.path, "/ws?room=1");
                assert_eq!(r.host(), Some("example.com:8080"));
                assert_eq!(r.protocols, req.protocols);
                assert_eq!(r.key, key_from_nonce([9; 16]));
            }
            other => panic!("expected an upgrade, got {other:?}"),
        }
    }

    #[test]
    fn response_101_round_trip_validates() {
        let mut out = Vec::new();
        response_101(KEY, Some("chat"), Some("permessage-deflate"), &[], &mut out);
        let (r, used) = parse(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(r.protocol.as_deref(), Some("chat"));
        assert_eq!(r.extension_headers(), [&b"permessage-deflate"[..]]);
        assert_eq!(r.validate(KEY, &offered()), Ok(()));
    }

    #[test]
    fn valid_response_without_protocol_validates() {
        assert_eq!(ok_101(&[]).validate(KEY, &offered()), Ok(()));
        assert_eq!(ok_101(&[]).validate(KEY, &[]), Ok(()));
        let lower = response(
            "HTTP/1.1 101 OK",
            &[
                "upgrade: WebSocket",
                "connection: keep-alive, upgrade",
                "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            ],
        );
        assert_eq!(lower.validate(KEY, &[]), Ok(()));
    }

    #[test]
    fn validate_rejects_a_status_other_than_101() {
        let r = response("HTTP/1.1 403 Forbidden", &["Content-Length: 0"]);
        assert_eq!(r.validate(KEY, &[]), Err(HandshakeError::BadStatus(403)));
        let r = response("HTTP/1.0 404 Not Found", &[]);
        assert_eq!(r.validate(KEY, &[]), Err(HandshakeError::BadStatus(404)));
    }

    #[test]
    fn validate_rejects_missing_upgrade_or_connection() {
        let accept = format!("Sec-WebSocket-Accept: {ACCEPT}");
        let no_upgrade = response(
            "HTTP/1.1 101 Switching Protocols",
            &["Connection: Upgrade", &accept],
        );
        assert_eq!(
            no_upgrade.validate(KEY, &[]),
            Err(HandshakeError::BadUpgrade)
        );
        let no_connection = response(
            "HTTP/1.1 101 Switching Protocols",
            &["Upgrade: websocket", &accept],
        );
        assert_eq!(
            no_connection.validate(KEY, &[]),
            Err(HandshakeError::BadUpgrade)
        );
        let wrong = response(
            "HTTP/1.1 101 Switching Protocols",
            &["Upgrade: h2c", "Connection: Upgrade", &accept],
        );
        assert_eq!(wrong.validate(KEY, &[]), Err(HandshakeError::BadUpgrade));
    }

    #[test]
    fn validate_rejects_a_wrong_missing_or_repeated_accept() {
        assert_eq!(
            ok_101(&[]).validate("AAAAAAAAAAAAAAAAAAAAAA==", &[]),
            Err(HandshakeError::BadAccept)
        );
        let missing = response(
            "HTTP/1.1 101 Switching Protocols",
            &["Upgrade: websocket", "Connection: Upgrade"],
        );
        assert_eq!(missing.validate(KEY, &[]), Err(HandshakeError::BadAccept));
        let twice = ok_101(&["Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]);
        assert_eq!(twice.validate(KEY, &[]), Err(HandshakeError::BadAccept));
    }

    #[test]
    fn validate_rejects_an_unoffered_protocol() {
        let r = ok_101(&["Sec-WebSocket-Protocol: mqtt"]);
        assert_eq!(
            r.validate(KEY, &offered()),
            Err(HandshakeError::UnofferedProtocol)
        );
        let r = ok_101(&["Sec-WebSocket-Protocol: chat"]);
        assert_eq!(r.validate(KEY, &[]), Err(HandshakeError::UnofferedProtocol));
    }

    #[test]
    fn validate_rejects_a_protocol_list_or_repeated_protocol_field() {
        let list = ok_101(&["Sec-WebSocket-Protocol: chat, superchat"]);
        assert_eq!(
            list.validate(KEY, &offered()),
            Err(HandshakeError::UnofferedProtocol)
        );
        let twice = ok_101(&[
            "Sec-WebSocket-Protocol: chat",
            "Sec-WebSocket-Protocol: chat",
        ]);
        assert_eq!(
            twice.validate(KEY, &offered()),
            Err(HandshakeError::UnofferedProtocol)
        );
    }

    #[test]
    fn response_protocol_is_trimmed() {
        let r = ok_101(&["Sec-WebSocket-Protocol:   chat  "]);
        assert_eq!(r.protocol.as_deref(), Some("chat"));
        assert_eq!(r.validate(KEY, &offered()), Ok(()));
    }

    #[test]
    fn response_bytes_after_the_head_are_not_used() {
        let mut out = Vec::new();
        response_101(KEY, None, None, &[], &mut out);
        let head_len = out.len();
        out.extend_from_slice(b"\x81\x02hi");
        let (_, used) = parse(&out).unwrap().unwrap();
        assert_eq!(used, head_len);
        let mut parser = ResponseParser::new(16 << 10, 64);
        let mut found = None;
        for (i, b) in out.iter().enumerate() {
            if let Some((_, used)) = parser.push(std::slice::from_ref(b)).unwrap() {
                found = Some((i, used));
                break;
            }
        }
        assert_eq!(found, Some((head_len - 1, 1)));
    }

    #[test]
    fn oversized_or_crowded_response_head_is_431() {
        let big = format!(
            "HTTP/1.1 101 Switching Protocols\r\nX: {}\r\n\r\n",
            "a".repeat(200)
        );
        let e = ResponseParser::new(100, 64)
            .push(big.as_bytes())
            .unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (HandshakeError::HeadersTooLarge, 431)
        );
        let crowded = "HTTP/1.1 101 Switching Protocols\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            ResponseParser::new(1024, 2).push(crowded.as_bytes()),
            Err(HandshakeError::TooManyHeaders)
        );
    }

    #[test]
    fn http_1_0_101_is_rejected() {
        let head = b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(parse(head), Err(HandshakeError::HttpVersion));
    }
}
