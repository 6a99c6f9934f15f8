//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! - [`parse_extensions`]: `Sec-WebSocket-Extensions` syntax, for any extension.
//! - [`negotiate_server`], [`client_offer`], [`accept_response`]: the RFC 7692 §7.1 rules.
//! - [`PerMessageDeflate`]: compresses whole outgoing messages and inflates incoming ones
//!   incrementally, frame by frame, checking the size limit while inflating.
//!
//! # Using the codec
//!
//! Sending: [`PerMessageDeflate::compress`] either appends the complete compressed payload (tail
//! `00 00 ff ff` already removed, nothing to prepend) and returns `true`, in which case the
//! message goes out with RSV1 on its first frame, or returns `false` and the message goes out
//! uncompressed. Receiving a message whose first frame has RSV1: pass every payload chunk to
//! [`PerMessageDeflate::decompress`], then call [`PerMessageDeflate::finish_message`] once after
//! the FIN frame. Both directions are independent; one value holds both.
//!
//! # Windows and context takeover
//!
//! `miniz_oxide` always compresses with a 32 KiB window. When our sending direction must stay
//! within 2^N bytes (N < 15), each message is compressed as independent pieces of at most 2^N
//! bytes, each started from a clean history and ended with a full flush, so no back-reference
//! can reach further than 2^N − 1 bytes. That also drops context takeover for that direction,
//! which is always allowed: a sender may use less history than agreed. Receiving always uses a
//! 32 KiB window, so peers that round a window of 8 up to 9 (zlib does) are understood.
//!
//! # Memory per connection
//!
//! Nothing is allocated until the first compressed message. Heap bytes held per connection
//! (x86-64, `miniz_oxide` 0.8; [`PerMessageDeflate::heap_bytes`] reports them):
//!
//! | situation                                              | heap bytes per connection |
//! |--------------------------------------------------------|---------------------------|
//! | deflate not negotiated                                 | 0                         |
//! | negotiated, before any compressed message              | 0                         |
//! | we send with context takeover (window 15)              | + 319,326 (compressor)    |
//! | the peer sends with context takeover                   | + 43,312 (inflater)       |
//! | no context takeover either way, between messages       | 0                         |
//!
//! The inflater is its 32 KiB window plus `miniz_oxide`'s decoder state (10,504 bytes) and a
//! few fields.
//!
//! So a server that sets `server_no_context_takeover` and `client_no_context_takeover` (or is
//! offered them) holds nothing per idle connection; with context takeover both ways (the RFC
//! default, what browsers get unless the server asks otherwise) it holds ~355 KiB per connection
//! once messages have flowed. Without context, compression and inflation borrow a compressor
//! (319,326 bytes) and an inflater (43,312 bytes) for the duration of one message from a pool
//! shared by the whole process, which keeps at most 8 of each idle; see [`shared_buffer_bytes`]
//! and [`release_shared_buffers`]. The [`PerMessageDeflate`] value itself
//! is 40 bytes inline in its connection (`Option<PerMessageDeflate>` too).

mod codec;
mod negotiate;
mod params;

#[cfg(test)]
mod tests;

pub use codec::{release_shared_buffers, shared_buffer_bytes, PerMessageDeflate};
pub use negotiate::{accept_response, client_offer, negotiate_server, EXTENSION_NAME};
pub use params::{
    parse_extensions, Extension, ExtensionParam, ExtensionSyntaxError, ExtensionSyntaxErrorKind,
};

/// The smallest LZ77 window RFC 7692 allows, in bits (256 bytes).
pub const MIN_WINDOW_BITS: u8 = 8;
/// The largest (and default) LZ77 window RFC 7692 allows, in bits (32 KiB).
pub const MAX_WINDOW_BITS: u8 = 15;

/// What we offer (client) or accept (server) for permessage-deflate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Negotiate permessage-deflate at all.
    pub enabled: bool,
    /// Client: request `server_no_context_takeover`. Server: add it to every agreement, so the
    /// server never keeps a compressor per connection (see the module docs).
    pub server_no_context_takeover: bool,
    /// Client: offer `client_no_context_takeover`. Server: add it to every agreement.
    pub client_no_context_takeover: bool,
    /// Client: request this `server_max_window_bits`. Server: the largest window we use to
    /// compress (8–15). Values outside 8–15 are clamped.
    pub server_max_window_bits: Option<u8>,
    /// Client: offer this `client_max_window_bits`. Server: ask the client for this window when it
    /// offered the parameter. Values outside 8–15 are clamped.
    pub client_max_window_bits: Option<u8>,
    /// Compression level 0–9 (`miniz_oxide`'s scale; 10 is its slowest). 0 disables compressing
    /// outgoing messages while still negotiating, so incoming ones can be compressed.
    pub level: u8,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 1,
            threshold: 64,
        }
    }
}

/// The parameters both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// LZ77 window of the server's compressor (8–15).
    pub server_max_window_bits: u8,
    /// LZ77 window of the client's compressor (8–15).
    pub client_max_window_bits: u8,
}
