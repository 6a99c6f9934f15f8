//! permessage-deflate (RFC 7692): negotiation and the per-message codec.

use crate::error::{HandshakeError, ProtocolError};
use crate::Role;

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
    /// compress (8–15).
    pub server_max_window_bits: Option<u8>,
    /// Client: offer this `client_max_window_bits`. Server: ask the client for this window when it
    /// offered the parameter.
    pub client_max_window_bits: Option<u8>,
    /// Compression level 0–9 (miniz_oxide's scale).
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

/// Server: picks the first offer in `extension_headers` that we can honour. Returns the agreed
/// parameters and the `Sec-WebSocket-Extensions` response value. Invalid offers are skipped.
pub fn negotiate_server(
    config: &DeflateConfig,
    extension_headers: &[&[u8]],
) -> Option<(DeflateParams, String)> {
    todo!("H2 {config:?} {}", extension_headers.len())
}

/// Client: the `Sec-WebSocket-Extensions` offer, or `None` when disabled.
pub fn client_offer(config: &DeflateConfig) -> Option<String> {
    todo!("H2 {config:?}")
}

/// Client: checks the server's `Sec-WebSocket-Extensions` response against our offer.
pub fn accept_response(
    config: &DeflateConfig,
    extension_headers: &[&[u8]],
) -> Result<Option<DeflateParams>, HandshakeError> {
    todo!("H2 {config:?} {}", extension_headers.len())
}

/// Per-connection compression state. Allocates nothing until the first compressed message.
pub struct PerMessageDeflate {
    params: DeflateParams,
    role: Role,
    level: u8,
    threshold: usize,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("params", &self.params)
            .field("role", &self.role)
            .finish()
    }
}

impl PerMessageDeflate {
    /// State for one connection in `role` with the agreed `params`.
    pub fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> PerMessageDeflate {
        PerMessageDeflate {
            params,
            role,
            level: config.level,
            threshold: config.threshold,
        }
    }

    /// The agreed parameters.
    pub fn params(&self) -> DeflateParams {
        self.params
    }

    /// Compresses a whole message payload, appending to `out` without the trailing
    /// `00 00 ff ff`. Returns `false` (and leaves `out` as it was) when the message is better
    /// sent uncompressed (below the threshold, or not smaller).
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        todo!(
            "H2 {} {} {} {}",
            payload.len(),
            out.len(),
            self.level,
            self.threshold
        )
    }

    /// Inflates the next chunk of a compressed message, appending to `out`. Fails with
    /// `MessageTooLarge` as soon as `out` would exceed `max_len`, and with
    /// `InvalidCompressedData` on a bad stream.
    pub fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        todo!("H2 {} {} {}", input.len(), out.len(), max_len)
    }

    /// Ends a compressed message: inflates the implicit `00 00 ff ff` tail and resets the
    /// decompressor when the peer does not keep its context.
    pub fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        todo!("H2 {} {}", out.len(), max_len)
    }
}
