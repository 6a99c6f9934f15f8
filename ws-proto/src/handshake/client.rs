//! Client side: the opening request and checking the server's response (RFC 6455 §4.1).

use super::Headers;
use crate::error::HandshakeError;

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
    todo!("H1 {nonce:?}")
}

/// Appends the opening request.
pub fn build_request(req: &ClientRequest, key: &str, extensions: Option<&str>, out: &mut Vec<u8>) {
    todo!("H1 {req:?} {key} {extensions:?} {}", out.len())
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
    pub fn validate(&self, key: &str, offered_protocols: &[String]) -> Result<(), HandshakeError> {
        todo!("H1 {key} {offered_protocols:?}")
    }
}

/// Incremental parser for the server's response head (same caps as the request parser).
#[derive(Debug)]
pub struct ResponseParser {
    buf: Vec<u8>,
    max_bytes: usize,
    max_headers: usize,
}

impl ResponseParser {
    /// A parser with caps on header bytes and field count.
    pub fn new(max_bytes: usize, max_headers: usize) -> ResponseParser {
        ResponseParser {
            buf: Vec::new(),
            max_bytes,
            max_headers,
        }
    }

    /// Feeds bytes; once complete, the response and how many bytes of `data` it used.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        todo!("H1 {} {} {}", data.len(), self.max_bytes, self.max_headers)
    }
}
