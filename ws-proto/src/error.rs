//! Error types. Peer violations map to close codes here and only here; handshake failures map to
//! HTTP statuses here and only here.

use crate::close::CloseCode;

/// The peer broke RFC 6455 / RFC 7692, or exceeded a configured limit. Fatal and sticky.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV bits set that no negotiated extension defines.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// RSV1 on a control or continuation frame.
    #[error("compression bit set on a control or continuation frame")]
    CompressedControlOrContinuation,
    /// Opcode 3–7 or 11–15.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A client sent an unmasked frame.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame.
    #[error("server frame is masked")]
    MaskedFrame,
    /// 64-bit payload length with the most significant bit set.
    #[error("payload length has its most significant bit set")]
    InvalidLength,
    /// Control frame payload over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlFrameTooLong,
    /// Control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// Continuation frame with no fragmented message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress.
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A close frame whose payload is a single byte.
    #[error("close frame payload of one byte")]
    CloseOneByte,
    /// A close code that may not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// Text message that is not UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A frame longer than the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// Declared payload length.
        size: u64,
        /// Configured limit.
        limit: usize,
    },
    /// A message (after decompression) longer than the configured maximum.
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Configured limit.
        limit: usize,
    },
    /// Compressed payload that does not inflate.
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// Data frame received after the peer's close frame.
    #[error("frame received after close")]
    FrameAfterClose,
}

impl ProtocolError {
    /// The close code to send for this violation (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Why an opening handshake failed. On the server side each maps to an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not parseable as HTTP/1.1.
    #[error("malformed HTTP: {0}")]
    Malformed(&'static str),
    /// The request line or headers are larger than the configured cap.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// More header fields than the configured cap.
    #[error("too many header fields")]
    TooManyHeaders,
    /// Method other than GET for an upgrade.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// HTTP version below 1.1.
    #[error("HTTP/1.1 or later required")]
    HttpVersion,
    /// Missing Host header.
    #[error("missing Host header")]
    MissingHost,
    /// `Upgrade: websocket` present but `Connection: upgrade` missing, or the reverse.
    #[error("missing or invalid Upgrade/Connection headers")]
    BadUpgrade,
    /// `Sec-WebSocket-Version` absent or not 13.
    #[error("unsupported WebSocket version")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` absent or not base64 of 16 bytes.
    #[error("missing or invalid Sec-WebSocket-Key")]
    BadKey,
    /// A header appears twice where only one is allowed.
    #[error("duplicate header {0}")]
    DuplicateHeader(&'static str),
    /// The handshake did not complete before the deadline.
    #[error("handshake timed out")]
    Timeout,
    /// The server limit on connections is reached.
    #[error("server is at its connection limit")]
    ServiceUnavailable,
    /// Client side: the response status was not 101.
    #[error("server answered with status {0}")]
    BadStatus(u16),
    /// Client side: `Sec-WebSocket-Accept` does not match the key.
    #[error("Sec-WebSocket-Accept does not match")]
    BadAccept,
    /// Client side: the server chose a subprotocol we did not offer.
    #[error("server selected a subprotocol that was not offered")]
    UnofferedProtocol,
    /// Client side: the server's extension response is invalid or names what we did not offer.
    #[error("invalid extension negotiation: {0}")]
    BadExtension(&'static str),
    /// The transport ended during the handshake.
    #[error("connection closed during the handshake")]
    Eof,
}

impl HandshakeError {
    /// The HTTP status a server answers this failure with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadersTooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::Timeout => 408,
            HandshakeError::ServiceUnavailable => 503,
            _ => 400,
        }
    }
}

/// API misuse by the application (not the peer's fault). The connection is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation needs an open connection.
    #[error("connection is not open")]
    NotOpen,
    /// A close frame was already sent; nothing more may be sent.
    #[error("close already sent")]
    AlreadyClosing,
    /// accept/reject called when no handshake decision is pending.
    #[error("no handshake is waiting for a decision")]
    NoPendingHandshake,
    /// Control frame payload over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlPayloadTooLong,
    /// The code may not be sent.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// Close reason over 123 bytes.
    #[error("close reason over 123 bytes")]
    ReasonTooLong,
    /// A whole message was sent while a streamed message is unfinished, or a fragment without start.
    #[error("a streamed message is in progress (or none is)")]
    StreamState,
    /// Output buffer limit reached: the message was dropped (backpressure policy `Drop`).
    #[error("output buffer full: message dropped")]
    BufferFull,
    /// A subprotocol was chosen that the client did not offer.
    #[error("subprotocol was not offered by the client")]
    UnofferedProtocol,
    /// Pre-encoded shared frames are server-to-client only (client frames must be masked).
    #[error("shared frames can only be sent by a server")]
    SharedFrameFromClient,
}

/// Why a connection ended, when it did not end by a clean close handshake.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer violated the protocol or a limit.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The opening handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// No pong within the keepalive timeout.
    #[error("keepalive timed out")]
    KeepaliveTimeout,
    /// The peer did not answer our close frame in time.
    #[error("close handshake timed out")]
    CloseTimeout,
    /// The transport ended without a close handshake.
    #[error("connection closed without a close frame")]
    Eof,
    /// Output stayed over the buffer limit (backpressure policy `Close`).
    #[error("output buffer limit exceeded")]
    OutputOverflow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_map_to_rfc_close_codes() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code().as_u16(), 1007);
        assert_eq!(
            ProtocolError::InvalidCloseReason.close_code().as_u16(),
            1007
        );
        assert_eq!(
            ProtocolError::MessageTooLarge { limit: 1 }
                .close_code()
                .as_u16(),
            1009
        );
        assert_eq!(
            ProtocolError::FrameTooLarge { size: 2, limit: 1 }
                .close_code()
                .as_u16(),
            1009
        );
        assert_eq!(ProtocolError::ReservedBits.close_code().as_u16(), 1002);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code().as_u16(), 1002);
    }

    #[test]
    fn handshake_failures_map_to_http_statuses() {
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
        assert_eq!(HandshakeError::HeadersTooLarge.status(), 431);
        assert_eq!(HandshakeError::TooManyHeaders.status(), 431);
        assert_eq!(HandshakeError::BadKey.status(), 400);
        assert_eq!(HandshakeError::MissingHost.status(), 400);
        assert_eq!(HandshakeError::ServiceUnavailable.status(), 503);
    }
}
