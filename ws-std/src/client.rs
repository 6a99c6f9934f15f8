//! A blocking WebSocket client on the same [`ws_proto`] core as the servers: one socket, one
//! thread, no background work. Automatic replies (pongs, the close echo) are written during
//! [`Client::recv`].
//!
//! ```no_run
//! use ws_std::client::{Client, ClientEvent};
//! use ws_std::CloseCode;
//! use ws_proto::{ClientRequest, Config};
//!
//! let mut extras = ClientRequest::new("", "");
//! extras.protocols = vec!["chat.v1".into()];
//! extras.headers = vec![("Origin".into(), "http://localhost".into())];
//! let mut ws = Client::connect_with("ws://127.0.0.1:9001/room/1", Config::default(), extras)?;
//! assert_eq!(ws.protocol(), Some("chat.v1"));
//! ws.send_binary(&[1, 2, 3])?;
//! ws.close(CloseCode::NORMAL, "done")?;
//! loop {
//!     match ws.recv()? {
//!         ClientEvent::Closed(closed) => break println!("closed: {}", closed.code),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use ws_proto::handshake::Response;
use ws_proto::{
    ClientRequest, CloseCode, Closed, Config, Connection, ConnectionError, Event, HandshakeError,
    Message,
};

/// What [`Client::recv`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A complete message.
    Message(Message),
    /// A ping (already answered with a pong).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The connection is over; nothing follows.
    Closed(Closed),
}

/// Connects to a `ws://` (or, with the `tls` feature, `wss://`) URL with the default
/// [`Config`].
pub fn connect(url: &str) -> io::Result<Client> {
    Client::connect(url)
}

/// A blocking WebSocket client connection.
pub struct Client {
    stream: Stream,
    conn: Connection,
    response: Response,
    buf: Vec<u8>,
    read_timeout: Option<Duration>,
    /// The timeout last set on the socket, so it is changed only when needed.
    socket_timeout: Option<Duration>,
    /// `Closed` was returned: nothing more to receive.
    finished: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer_addr().ok())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to a `ws://` (or, with the `tls` feature, `wss://`) URL with the default
    /// [`Config`] and completes the opening handshake.
    pub fn connect(url: &str) -> io::Result<Client> {
        Client::connect_with(url, Config::default(), ClientRequest::new("", ""))
    }

    /// Connects with a configuration (limits, timers, permessage-deflate) and handshake extras:
    /// `extras.protocols` are offered and `extras.headers` sent. The host and path come from
    /// `url`; `extras.host` and `extras.path` are ignored.
    ///
    /// A refused handshake is an error whose inner error is the [`ConnectionError`] (for
    /// example `HandshakeError::BadStatus(503)`).
    pub fn connect_with(url: &str, config: Config, extras: ClientRequest) -> io::Result<Client> {
        Client::open(url, config, extras, None)
    }

    /// Like [`Client::connect_with`], trusting for `wss://` only the CA certificates in
    /// `ca_pem` (PEM text) instead of the system's (`SSL_CERT_FILE`, or the usual bundle
    /// paths). For private CAs and tests.
    #[cfg(feature = "tls")]
    pub fn connect_with_ca(
        url: &str,
        config: Config,
        extras: ClientRequest,
        ca_pem: &[u8],
    ) -> io::Result<Client> {
        Client::open(url, config, extras, Some(ca_pem))
    }

    fn open(
        url: &str,
        config: Config,
        extras: ClientRequest,
        ca_pem: Option<&[u8]>,
    ) -> io::Result<Client> {
        let url = Url::parse(url)?;
        let tcp = connect_tcp(&url.host, url.port)?;
        let stream = if url.secure {
            Stream::tls(tcp, &url.host, ca_pem)?
        } else {
            Stream::Plain(tcp)
        };
        let request = ClientRequest {
            host: url.authority,
            path: url.path,
            ..extras
        };
        let conn = Connection::client(config, request, seed(), Instant::now());
        let mut client = Client {
            stream,
            conn,
            response: Response {
                status: 0,
                headers: Default::default(),
                protocol: None,
            },
            buf: vec![0; 16 << 10],
            read_timeout: None,
            socket_timeout: None,
            finished: false,
        };
        loop {
            match client.next_event()? {
                Event::Connected(response) => {
                    client.response = *response;
                    return Ok(client);
                }
                Event::Closed(closed) => return Err(handshake_error(*closed)),
                _ => {}
            }
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.conn.send_text(text).map_err(api_error)?;
        self.flush()
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.send_binary(data).map_err(api_error)?;
        self.flush()
    }

    /// Sends a message of either kind.
    pub fn send(&mut self, message: &Message) -> io::Result<()> {
        self.conn.send(message).map_err(api_error)?;
        self.flush()
    }

    /// Sends a ping (payload of at most 125 bytes); the pong arrives through [`Client::recv`].
    pub fn ping(&mut self, payload: &[u8]) -> io::Result<()> {
        self.conn.ping(payload).map_err(api_error)?;
        self.flush()
    }

    /// Starts the close handshake; call [`Client::recv`] until it returns
    /// [`ClientEvent::Closed`] to finish it.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.conn.close(code, reason).map_err(api_error)?;
        self.flush()
    }

    /// Waits for the next message, ping, pong or the end of the connection.
    ///
    /// With a read timeout set, an error of kind [`io::ErrorKind::TimedOut`] means nothing
    /// arrived in time; the client stays usable. After [`ClientEvent::Closed`] it is an error
    /// of kind [`io::ErrorKind::NotConnected`].
    pub fn recv(&mut self) -> io::Result<ClientEvent> {
        loop {
            match self.next_event()? {
                Event::Message(m) => return Ok(ClientEvent::Message(m)),
                Event::Ping(p) => return Ok(ClientEvent::Ping(p)),
                Event::Pong(p) => return Ok(ClientEvent::Pong(p)),
                Event::Closed(closed) => {
                    self.await_transport_end();
                    self.finished = true;
                    return Ok(ClientEvent::Closed(*closed));
                }
                _ => {}
            }
        }
    }

    /// How long [`Client::recv`] waits before giving up (`None`: for ever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero read timeout is not allowed",
            ));
        }
        self.read_timeout = timeout;
        Ok(())
    }

    /// The subprotocol the server selected.
    pub fn protocol(&self) -> Option<&str> {
        self.conn.protocol()
    }

    /// The server's handshake response (status 101 and its headers).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The protocol state: agreed extensions, buffered amount, whether it is open.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.tcp().local_addr()
    }

    /// The server's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.tcp().peer_addr()
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.stream.write(self.conn.pending_output()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.conn.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stream.flush()
    }

    /// The next event of the connection, reading (and running its timers) as needed.
    fn next_event(&mut self) -> io::Result<Event> {
        let give_up = self.read_timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(event) = self.conn.poll_event() {
                return Ok(event);
            }
            if self.finished || self.conn.should_close_transport() {
                return Err(io::ErrorKind::NotConnected.into());
            }
            // A write failure means the peer is gone; reading tells how it ended.
            if let Err(e) = self.flush() {
                log::debug!("write failed: {e}");
                self.conn.receive_eof(Instant::now());
                continue;
            }
            let now = Instant::now();
            let timer = self.conn.poll_timeout();
            if timer.is_some_and(|t| t <= now) {
                self.conn.handle_timeout(now);
                continue;
            }
            if give_up.is_some_and(|t| t <= now) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing received within the read timeout",
                ));
            }
            let wait = [timer, give_up]
                .into_iter()
                .flatten()
                .min()
                .map(|t| (t - now).max(Duration::from_millis(1)));
            if wait != self.socket_timeout {
                self.stream.tcp().set_read_timeout(wait)?;
                self.socket_timeout = wait;
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => self.conn.receive_eof(Instant::now()),
                Ok(n) => self.conn.receive(&self.buf[..n], Instant::now()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    log::debug!("read failed: {e}");
                    self.conn.receive_eof(Instant::now());
                }
            }
        }
    }

    /// After the close handshake the server closes TCP first (RFC 6455 §7.1.1), so that it, not
    /// the client, keeps the TIME_WAIT state: wait for that, bounded by the close timeout.
    fn await_transport_end(&mut self) {
        let saved = self.read_timeout.take();
        while !self.conn.should_close_transport() {
            match self.next_event() {
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.read_timeout = saved;
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
    }
}

fn api_error(e: ws_proto::Error) -> io::Error {
    let kind = match e {
        ws_proto::Error::NotOpen | ws_proto::Error::AlreadyClosing => io::ErrorKind::NotConnected,
        _ => io::ErrorKind::InvalidInput,
    };
    io::Error::new(kind, e)
}

fn handshake_error(closed: Closed) -> io::Error {
    let error = closed
        .error
        .unwrap_or(ConnectionError::Handshake(HandshakeError::Eof));
    let kind = match &error {
        ConnectionError::Handshake(HandshakeError::BadStatus(_)) => {
            io::ErrorKind::ConnectionRefused
        }
        ConnectionError::Handshake(HandshakeError::Timeout) => io::ErrorKind::TimedOut,
        ConnectionError::Handshake(HandshakeError::Eof) => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, error)
}

fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))))
}

/// 32 bytes for the masking-key generator. std's `RandomState` is keyed from the operating
/// system's randomness, so SipHash under it gives unpredictable output without another crate.
fn seed() -> [u8; 32] {
    let state = std::collections::hash_map::RandomState::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&state.hash_one((i, nanos)).to_le_bytes());
    }
    seed
}

/// The parts of a `ws://` or `wss://` URL a client needs.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    secure: bool,
    /// Host name or address, without IPv6 brackets.
    host: String,
    port: u16,
    /// `host[:port]` as written, for the Host header.
    authority: String,
    /// Path and query (`/` when empty); the fragment is dropped.
    path: String,
}

impl Url {
    fn parse(url: &str) -> io::Result<Url> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            _ => return Err(bad("the scheme must be ws or wss")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected ws://host[:port]/path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if secure => 443,
            None => 80,
        };
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Url {
            secure,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }
}

/// The socket, with or without TLS.
enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsStream>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "tls")]
            Stream::Tls(s) => &s.sock,
        }
    }

    #[cfg(feature = "tls")]
    fn tls(tcp: TcpStream, host: &str, ca_pem: Option<&[u8]>) -> io::Result<Stream> {
        Ok(Stream::Tls(Box::new(tls::connect(tcp, host, ca_pem)?)))
    }

    #[cfg(not(feature = "tls"))]
    fn tls(_: TcpStream, _: &str, _: Option<&[u8]>) -> io::Result<Stream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "wss:// needs the `tls` feature of ws-std",
        ))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::io;
    use std::net::TcpStream;
    use std::sync::Arc;

    use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    pub(super) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

    fn invalid(what: &str, e: impl std::fmt::Display) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
    }

    /// The system's CA bundle, found where OpenSSL would look on common Unix systems.
    fn system_roots() -> io::Result<Vec<u8>> {
        let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
        let known = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ];
        for path in env.into_iter().chain(known.iter().map(Into::into)) {
            if let Ok(pem) = std::fs::read(&path) {
                return Ok(pem);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no CA bundle found (set SSL_CERT_FILE)",
        ))
    }

    /// Opens TLS over `tcp` and completes the TLS handshake, so that certificate errors
    /// surface here rather than at the first WebSocket read.
    pub(super) fn connect(
        tcp: TcpStream,
        host: &str,
        ca_pem: Option<&[u8]>,
    ) -> io::Result<TlsStream> {
        let pem = match ca_pem {
            Some(p) => p.to_vec(),
            None => system_roots()?,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid("CA PEM", e))?;
            // A bundle may hold certificates webpki cannot use; the rest still count.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(invalid("CA PEM", "no usable certificate"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS versions", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.to_owned()).map_err(|e| invalid(host, e))?;
        let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| invalid("TLS", e))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_path() {
        let u = Url::parse("ws://127.0.0.1:9001/chat?room=1#x").unwrap();
        assert_eq!(
            u,
            Url {
                secure: false,
                host: "127.0.0.1".into(),
                port: 9001,
                authority: "127.0.0.1:9001".into(),
                path: "/chat?room=1".into(),
            }
        );
        let u = Url::parse("WSS://[::1]?a=b").unwrap();
        assert_eq!((u.secure, u.host.as_str(), u.port), (true, "::1", 443));
        assert_eq!(u.path, "/?a=b");
        assert_eq!(Url::parse("ws://example.com").unwrap().path, "/");
        assert_eq!(Url::parse("ws://example.com").unwrap().port, 80);
        for bad in ["http://x/", "ws://", "ws://u@x/", "ws://x:port/", "x"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(seed(), seed());
    }
}
