//! Connection configuration: limits, timers and extensions, with sane defaults.

use std::time::Duration;

use crate::deflate::DeflateConfig;

/// What to do when a send would take the buffered output past [`Config::max_buffered_output`].
/// Control frames are never dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the message and return [`crate::Error::BufferFull`] to the sender.
    DropMessage,
    /// Close the connection with 1008 (policy violation) and drop the message.
    Close,
}

/// Limits, timers and extension settings of one connection.
///
/// ```
/// let mut config = ws_proto::Config::default();
/// config.max_message_size = 1 << 20;
/// config.keepalive_interval = Some(std::time::Duration::from_secs(20));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Largest incoming frame payload; larger frames fail with 1009 before any payload is read.
    pub max_frame_size: usize,
    /// Largest incoming message (after decompression); larger ones fail with 1009.
    pub max_message_size: usize,
    /// Outgoing messages are split into frames of at most this many payload bytes.
    pub outgoing_frame_size: usize,
    /// Largest opening handshake head (request or response line plus headers); 431 past it.
    pub max_handshake_bytes: usize,
    /// Most header fields in the opening handshake; 431 past it.
    pub max_handshake_headers: usize,
    /// Bound on bytes queued for the peer; see [`Backpressure`].
    pub max_buffered_output: usize,
    /// Policy at the output bound.
    pub backpressure: Backpressure,
    /// Answer pings with pongs automatically (RFC 6455 §5.5.2).
    pub auto_pong: bool,
    /// Deliver data as [`crate::Event::Fragment`]s as they arrive instead of whole messages.
    pub streaming: bool,
    /// The opening handshake must complete within this time.
    pub handshake_timeout: Option<Duration>,
    /// Send a ping after this long without hearing from the peer.
    pub keepalive_interval: Option<Duration>,
    /// Close (1011) when nothing arrives this long after a keepalive ping.
    pub keepalive_timeout: Duration,
    /// How long to wait for the peer's close frame (and, as a client, for the server to drop
    /// the connection) after the close handshake starts.
    pub close_timeout: Duration,
    /// permessage-deflate settings.
    pub deflate: DeflateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            outgoing_frame_size: 16 << 20,
            max_handshake_bytes: 16 << 10,
            max_handshake_headers: 64,
            max_buffered_output: 16 << 20,
            backpressure: Backpressure::Close,
            auto_pong: true,
            streaming: false,
            handshake_timeout: Some(Duration::from_secs(10)),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
            deflate: DeflateConfig::default(),
        }
    }
}
