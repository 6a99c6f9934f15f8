//! A tiny raw-TCP WebSocket client for adversarial tests: it sends whatever bytes a test asks for
//! (handshakes, masked or unmasked frames with any bits, truncated frames) and decodes what the
//! server answers (an HTTP head, then frames), with a read timeout so a broken server fails the
//! test instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any single read may block.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Opcodes (RFC 6455 §5.2).
pub mod op {
    /// Continuation frame.
    pub const CONT: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xA;
}

/// The sample key of RFC 6455 §1.3 and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A decoded frame from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1..3 as the three low bits (RSV1 = 4).
    pub rsv: u8,
    /// Opcode.
    pub opcode: u8,
    /// Whether the server (wrongly) masked it.
    pub masked: bool,
    /// Unmasked payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Close code and reason of a close frame (`None` for an empty close payload).
    pub fn close_code(&self) -> Option<(u16, String)> {
        assert_eq!(self.opcode, op::CLOSE, "not a close frame: {self:?}");
        if self.payload.is_empty() {
            return None;
        }
        assert!(self.payload.len() >= 2, "close payload of 1 byte: {self:?}");
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        let reason = String::from_utf8(self.payload[2..].to_vec())
            .unwrap_or_else(|_| panic!("close reason from the server is not UTF-8: {self:?}"));
        Some((code, reason))
    }
}

/// A parsed HTTP response head (and body, when it has a Content-Length).
#[derive(Clone, Debug)]
pub struct HttpHead {
    /// Status code.
    pub status: u16,
    /// Header fields as sent.
    pub headers: Vec<(String, String)>,
    /// Body (Content-Length bytes; empty without it).
    pub body: Vec<u8>,
}

impl HttpHead {
    /// The first value of a header field (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a read ended when it did not produce a frame.
#[derive(Debug)]
pub enum ReadEnd {
    /// The server closed the connection (EOF or reset).
    Closed(String),
    /// Nothing arrived within the read timeout.
    Timeout,
}

/// A standard upgrade request for `path` with extra header lines (each "Name: value").
pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &[&str]) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        r.push_str(line);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// Encodes a frame exactly as asked: any FIN/RSV/opcode, masked with `mask` or not.
pub fn encode_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = encode_header(fin, rsv, opcode, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    out
}

/// Encodes only a frame header declaring `len` payload bytes (for "header only" tests).
pub fn encode_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.push((u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    out
}

/// A close frame payload: code then reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A raw client connection.
pub struct RawClient {
    /// The socket (tests may write to it directly).
    pub stream: TcpStream,
    /// Bytes read but not yet decoded.
    buf: Vec<u8>,
    /// Varies the masking key from frame to frame.
    mask_counter: u32,
}

impl RawClient {
    /// Connects to `addr` (no handshake yet).
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        RawClient::from_stream(stream)
    }

    /// Wraps a connected stream (sets the read timeout and TCP_NODELAY).
    pub fn from_stream(stream: TcpStream) -> RawClient {
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set_read_timeout");
        stream.set_nodelay(true).expect("set_nodelay");
        RawClient {
            stream,
            buf: Vec::new(),
            mask_counter: 0x1234_5678,
        }
    }

    /// Connects and completes a standard handshake for `path`; panics unless the answer is a
    /// correct 101.
    pub fn open(addr: SocketAddr, path: &str) -> RawClient {
        RawClient::open_with(addr, path, &[]).0
    }

    /// Like [`RawClient::open`] with extra request header lines; returns the 101 head too.
    pub fn open_with(addr: SocketAddr, path: &str, extra: &[&str]) -> (RawClient, HttpHead) {
        let mut c = RawClient::connect(addr);
        c.send_raw(upgrade_request(addr, path, extra).as_bytes());
        let head = c.read_head();
        assert_eq!(head.status, 101, "handshake answered {head:?}");
        assert_eq!(
            head.header("Sec-WebSocket-Accept"),
            Some(SAMPLE_ACCEPT),
            "{head:?}"
        );
        (c, head)
    }

    /// This end's address (what the server sees as the peer address).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local_addr")
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write of {} bytes failed: {e}", bytes.len()));
    }

    /// Writes bytes, reporting failure instead of panicking (the server may have closed).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A fresh masking key (never all zero, so masking really changes the bytes).
    pub fn next_mask(&mut self) -> [u8; 4] {
        self.mask_counter = self
            .mask_counter
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        let mut k = self.mask_counter.to_be_bytes();
        k[0] |= 1;
        k
    }

    /// A masked frame with any FIN/RSV/opcode, as bytes (not sent).
    pub fn frame(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = self.next_mask();
        encode_frame(fin, rsv, opcode, Some(mask), payload)
    }

    /// Sends a masked frame with any FIN/RSV/opcode.
    pub fn send_frame(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) {
        let f = self.frame(fin, rsv, opcode, payload);
        self.send_raw(&f);
    }

    /// Sends a masked text frame (FIN set) with arbitrary bytes.
    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, 0, op::TEXT, text.as_bytes());
    }

    /// Sends a masked close frame.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        self.send_frame(true, 0, op::CLOSE, &close_payload(code, reason.as_bytes()));
    }

    fn fill(&mut self) -> Result<(), ReadEnd> {
        let mut tmp = [0u8; 16 << 10];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(ReadEnd::Closed("EOF".into())),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ReadEnd::Timeout)
                }
                Err(e) => return Err(ReadEnd::Closed(e.to_string())),
            }
        }
    }

    /// Reads an HTTP response head (and its Content-Length body).
    pub fn read_head(&mut self) -> HttpHead {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("no HTTP response from the server: {e:?}"))
    }

    /// Reads an HTTP response head, or says why there is none.
    pub fn try_read_head(&mut self) -> Result<HttpHead, ReadEnd> {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if let Err(e) = self.fill() {
                if self.buf.is_empty() {
                    return Err(e);
                }
                panic!(
                    "incomplete HTTP head ({e:?}): {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8(head).expect("HTTP head is not UTF-8");
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let mut head = HttpHead {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = head.header("Content-Length") {
            let len: usize = len.parse().expect("Content-Length is a number");
            while self.buf.len() < len {
                if let Err(e) = self.fill() {
                    panic!("body cut short at {} of {len} bytes: {e:?}", self.buf.len());
                }
            }
            head.body = self.buf.drain(..len).collect();
        }
        Ok(head)
    }

    /// Reads the next frame, or says why there is none.
    pub fn try_read_frame(&mut self) -> Result<Frame, ReadEnd> {
        loop {
            if let Some((frame, used)) = decode_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(frame);
            }
            self.fill()?;
        }
    }

    /// Reads the next frame; panics on EOF or timeout, or if the server masked it.
    pub fn read_frame(&mut self) -> Frame {
        match self.try_read_frame() {
            Ok(f) => {
                assert!(!f.masked, "server sent a masked frame: {f:?}");
                f
            }
            Err(e) => panic!("expected a frame from the server, got {e:?}"),
        }
    }

    /// Reads one whole data message (reassembling fragments; control frames in between are
    /// returned in order in the second element).
    pub fn read_message(&mut self) -> (u8, Vec<u8>) {
        let (opcode, rsv, data) = self.read_message_rsv();
        assert_eq!(rsv, 0, "RSV bits on a message without an extension");
        (opcode, data)
    }

    /// Reads one whole data message: opcode, RSV bits of its first frame, payload as sent
    /// (still compressed when RSV1 is set).
    pub fn read_message_rsv(&mut self) -> (u8, u8, Vec<u8>) {
        let first = self.read_frame();
        assert!(
            first.opcode == op::TEXT || first.opcode == op::BINARY,
            "expected a data frame, got {first:?}"
        );
        let (opcode, rsv, mut data, mut fin) = (first.opcode, first.rsv, first.payload, first.fin);
        while !fin {
            let f = self.read_frame();
            assert_eq!(f.opcode, op::CONT, "expected a continuation, got {f:?}");
            assert_eq!(f.rsv, 0, "RSV bits on a continuation frame: {f:?}");
            data.extend_from_slice(&f.payload);
            fin = f.fin;
        }
        (opcode, rsv, data)
    }

    /// Reads a text message; panics unless it is text.
    pub fn read_text(&mut self) -> String {
        let (opcode, data) = self.read_message();
        assert_eq!(opcode, op::TEXT, "expected text, got binary {data:?}");
        String::from_utf8(data).expect("server sent invalid UTF-8 text")
    }

    /// Reads the next frame and checks it is a close frame with `code`; returns the reason.
    pub fn expect_close(&mut self, code: u16) -> String {
        let f = self.read_frame();
        assert_eq!(
            f.opcode,
            op::CLOSE,
            "expected a close frame with {code}, got {f:?}"
        );
        match f.close_code() {
            Some((c, reason)) => {
                assert_eq!(c, code, "close code (reason {reason:?})");
                reason
            }
            None => panic!("expected close code {code}, got an empty close frame"),
        }
    }

    /// Expects the server to close the TCP connection (EOF or reset) within the read timeout,
    /// with no more bytes before it.
    pub fn expect_eof(&mut self) {
        if !self.buf.is_empty() {
            panic!(
                "expected EOF, but {} more bytes are buffered: {:?}",
                self.buf.len(),
                self.buf
            );
        }
        let mut tmp = [0u8; 4096];
        match self.stream.read(&mut tmp) {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {n} more bytes: {:?}", &tmp[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server did not close the connection within {READ_TIMEOUT:?}")
            }
            Err(e) => panic!("expected EOF, got error {e}"),
        }
    }

    /// Reads everything until the server closes the connection; panics after `limit`.
    pub fn read_to_eof(&mut self, limit: Duration) -> Vec<u8> {
        let start = Instant::now();
        let mut all = std::mem::take(&mut self.buf);
        let mut tmp = [0u8; 4096];
        loop {
            assert!(
                start.elapsed() < limit,
                "the server did not close the connection within {limit:?}"
            );
            match self.stream.read(&mut tmp) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return all,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read failed after {:?}: {e}", start.elapsed()),
            }
        }
    }

    /// Shuts down both directions (the server sees EOF).
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Decodes one frame from the front of `buf`: the frame and how many bytes it used.
pub fn decode_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let rsv = (buf[0] >> 4) & 7;
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut pos) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        if buf.len() < pos + 4 {
            return None;
        }
        let k = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(k)
    } else {
        None
    };
    let len = usize::try_from(len).expect("frame length fits usize");
    if buf.len() < pos + len {
        return None;
    }
    let mut payload = buf[pos..pos + len].to_vec();
    if let Some(k) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin,
            rsv,
            opcode,
            masked,
            payload,
        },
        pos + len,
    ))
}
