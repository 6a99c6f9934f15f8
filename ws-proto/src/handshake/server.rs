//! Server side: incremental request parsing, validation (RFC 6455 §4.2.1) and responses.

use super::Headers;
use crate::error::HandshakeError;

/// Incremental parser for the client's opening request.
///
/// Bytes are appended as they arrive; the header block is parsed once its end (`\r\n\r\n`) has
/// been seen, and the search for it only scans new bytes, so a trickled request costs linear time.
#[derive(Debug)]
pub struct RequestParser {
    buf: Vec<u8>,
    max_bytes: usize,
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
    pub fn new(max_bytes: usize, max_headers: usize) -> RequestParser {
        RequestParser {
            buf: Vec::new(),
            max_bytes,
            max_headers,
        }
    }

    /// Feeds bytes. Once the header block is complete, returns the request and how many bytes of
    /// `data` it used; the rest of `data` belongs to the WebSocket stream.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<(ParsedRequest, usize)>, HandshakeError> {
        todo!(
            "H1 {:?} {} {}",
            data.len(),
            self.max_bytes,
            self.max_headers
        )
    }
}

/// Appends a `101 Switching Protocols` response.
pub fn response_101(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
    out: &mut Vec<u8>,
) {
    todo!(
        "H1 {key} {protocol:?} {extensions:?} {extra_headers:?} {}",
        out.len()
    )
}

/// Appends a complete HTTP/1.1 response with `Content-Length` and `Connection: close`.
/// Status 426 also carries `Sec-WebSocket-Version: 13`.
pub fn http_response(status: u16, headers: &[(String, String)], body: &[u8], out: &mut Vec<u8>) {
    todo!("H1 {status} {headers:?} {} {}", body.len(), out.len())
}
