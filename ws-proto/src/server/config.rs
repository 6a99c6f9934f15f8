//! Server settings shared by both adapters, with a builder in the style of the Python servers'
//! constructor arguments.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Backpressure, Config};

/// Everything a server needs to know before it starts.
///
/// ```
/// use std::time::Duration;
/// let config = ws_proto::server::ServerConfig::new()
///     .port(9001)
///     .max_connections(50_000)
///     .keepalive(Duration::from_secs(30), Duration::from_secs(10))
///     .max_message_size(1 << 20);
/// assert_eq!(config.host, "127.0.0.1");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to bind; loopback unless asked otherwise.
    pub host: String,
    /// Port to bind; 0 picks a free one (ask the server for its address).
    pub port: u16,
    /// Most clients at once; past it, upgrade requests get 503 (the error callback hears of
    /// each; the log, of the first and then once per `REFUSAL_REPORT_EVERY`).
    pub max_connections: usize,
    /// How long a graceful shutdown waits for clients to answer the close.
    pub shutdown_timeout: Duration,
    /// Certificate chain and private key (PEM files) for wss, with the `tls` feature.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Per-connection protocol settings and limits.
    pub connection: Config,
}

impl Default for ServerConfig {
    fn default() -> Self {
        // Streaming delivery is for code that drives Connection directly; servers hand whole
        // messages to callbacks.
        // Servers ping a peer silent for 20 s and drop it 20 s later (as Python websockets does):
        // half-open connections do not pile up. (Connection leaves keepalive to its embedder.)
        let connection = Config {
            streaming: false,
            keepalive_interval: Some(Duration::from_secs(20)),
            keepalive_timeout: Duration::from_secs(20),
            ..Config::default()
        };
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 0,
            max_connections: 100_000,
            shutdown_timeout: Duration::from_secs(5),
            tls: None,
            connection,
        }
    }
}

impl ServerConfig {
    /// Defaults: 127.0.0.1, a free port, 100,000 connections, keepalive ping after 20 s of
    /// silence (dropped 20 s later without an answer), and the other [`Config`] defaults.
    pub fn new() -> ServerConfig {
        ServerConfig::default()
    }

    /// Host to bind ("0.0.0.0" to listen on every interface).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Port to bind (0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Connection limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Graceful shutdown timeout.
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.shutdown_timeout = t;
        self.connection.close_timeout = t;
        self
    }

    /// wss: certificate chain and key PEM files (needs the adapter's `tls` feature).
    pub fn tls(mut self, cert_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Ping after `interval` of silence; close if nothing arrives within `timeout` after it.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.connection.keepalive_interval = Some(interval);
        self.connection.keepalive_timeout = timeout;
        self
    }

    /// permessage-deflate on or off.
    pub fn compression(mut self, on: bool) -> Self {
        self.connection.deflate.enabled = on;
        self
    }

    /// Outgoing messages are fragmented into frames of at most this many bytes.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.connection.outgoing_frame_size = bytes.max(1);
        self
    }

    /// Largest incoming frame (1009 past it).
    pub fn max_incoming_frame_size(mut self, bytes: usize) -> Self {
        self.connection.max_frame_size = bytes;
        self
    }

    /// Largest incoming message, after decompression (1009 past it).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.connection.max_message_size = bytes;
        self.connection.max_frame_size = self.connection.max_frame_size.min(bytes);
        self
    }

    /// Per-client bound on queued output, and what to do at it.
    pub fn backpressure(mut self, max_buffered: usize, policy: Backpressure) -> Self {
        self.connection.max_buffered_output = max_buffered;
        self.connection.backpressure = policy;
        self
    }

    /// Replaces the per-connection settings wholesale.
    pub fn connection_config(mut self, config: Config) -> Self {
        self.connection = config;
        self.connection.streaming = false;
        self
    }

    /// `host:port` for binding.
    pub fn bind_addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}
