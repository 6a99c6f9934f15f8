//! The HTTP/1.1 upgrade handshake (RFC 6455 §4): server-side request parsing and responses,
//! client-side request building and response checking.

pub mod client;
pub mod server;

pub use client::{ClientRequest, Response, ResponseParser};
pub use server::{ParsedRequest, Request, RequestParser};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(sha1(key + GUID)).
///
/// ```
/// assert_eq!(ws_proto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    todo!("H1: sha1 + base64 of key and WS_GUID; key {}", key.len())
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
}
