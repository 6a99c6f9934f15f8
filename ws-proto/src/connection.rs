//! The connection state machine: Handshaking → Open → Closing → Closed.
//!
//! One [`Connection`] per WebSocket, in either role. It never touches a socket or a clock:
//! received bytes and the current time come in as arguments, and events and bytes to send come
//! out of queues the caller drains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use self::events::Events;
use self::message_buf::MessageBuf;
use crate::close::{CloseCode, ClosePayload, MAX_REASON_LEN};
use crate::config::{Backpressure, Config};
use crate::deflate::{self, DeflateConfig, DeflateParams, PerMessageDeflate};
use crate::error::{ConnectionError, Error, HandshakeError, ProtocolError};
use crate::frame::{first_byte, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1};
use crate::handshake::{
    client, server, ClientRequest, ParsedRequest, Request, RequestParser, Response, ResponseParser,
};
use crate::mask::apply_mask;
use crate::output::{OutputQueue, SharedFrame};
use crate::reuse;
use crate::rng::Rng;
use crate::utf8::Utf8Validator;
use crate::Role;

/// Most whole messages decoded per trip through the decoder (see `Connection::decode_ahead`):
/// bounds the event queue, and the memory one read can turn into messages before the
/// application has taken them.
const AHEAD_MAX: usize = 8;

/// The size a whole message of `len` bytes predicts for the next (see
/// [`Connection::receive_predicted`]): its own, if worth reading in place; otherwise none.
fn predicted_size(len: usize) -> u16 {
    use predicted::PREDICTED_MAX;
    match len {
        PREDICT_MIN..=PREDICTED_MAX => len as u16,
        _ => 0,
    }
}

/// A whole message's payload, copied out of the input into a recycled buffer.
fn copy_payload(payload: &[u8]) -> Vec<u8> {
    let mut data = reuse::take_small(payload.len());
    data.extend_from_slice(payload);
    data
}

/// Unmasks and validates the payload of the whole message `h` starts. `None` for invalid
/// UTF-8, the buffer given back to the pool.
fn into_message(mask: Option<[u8; 4]>, kind: DataKind, mut data: Vec<u8>) -> Option<Message> {
    if let Some(k) = mask {
        apply_mask(&mut data, k, 0);
    }
    match kind {
        DataKind::Text => match String::from_utf8(data) {
            Ok(text) => Some(Message::Text(text)),
            Err(e) => {
                reuse::give_message(e.into_bytes());
                None
            }
        },
        DataKind::Binary => Some(Message::Binary(data)),
    }
}

/// Payloads from this size up are queued without a copy by [`Connection::send_owned`]; smaller
/// ones are cheaper to copy into the coalescing buffer than to write as a separate slice.
const ZERO_COPY_MIN: usize = 4096;

/// Most bytes reserved ahead of a frame's payload actually arriving.
const RESERVE_AHEAD: u64 = 256 << 10;

/// Least space worth a direct read ([`Connection::receive_direct`]): below it, the copy it saves
/// costs less than the read it may split in two. Fuzzing lowers it, with the pool's threshold
/// and `direct_lead`'s page, so that inputs of fuzzer size take that path too.
const DIRECT_MIN: usize = if cfg!(fuzzing) { 16 } else { 16 << 10 };
/// Most space lent to one direct read: what the read brings in is unmasked next, while it is
/// still in the CPU's cache (a read of several MiB would be unmasked from memory).
const DIRECT_MAX: u64 = 256 << 10;
/// Smallest message whose successor is read straight into a buffer of its own
/// ([`Connection::receive_predicted`]): below it, the copy it saves costs less than the
/// planning. Fuzzing lowers it, so that inputs of fuzzer size take that path too.
const PREDICT_MIN: usize = if cfg!(fuzzing) { 4 } else { 4 << 10 };

/// Where a direct read of frame `h` puts its bytes: how far past the end of the message so
/// far (`end_addr`, an address), the read starting at payload offset `offset`. The bytes are
/// moved back into place as they are unmasked (`mask::unmask_to_front`), at no cost over the
/// unmask itself.
///
/// Why: the kernel copies a read's bytes with `rep movsb`, which on some CPUs (this project's
/// AMD EPYC machine) runs 25 to 30 times slower when the destination lies 1 to 31 bytes past the
/// source's offset within a page. Over loopback the source is the sender's page fragment,
/// which typically begins with the frame's header at the start of a page; glibc puts a large
/// buffer 16 bytes into one; so a 16 MiB frame (14-byte header) read straight into its message
/// lands 2 bytes past its source, and ws-std spent a third more CPU per 16 MiB message there
/// than with the buffer elsewhere (an `LD_PRELOAD` shim placing buffers: 11.7 against 8.4 ms).
/// Aiming half a page away from the likely source is as good as any place when the source lies
/// elsewhere. At least 256 bytes, so that the move's vector loop runs (see
/// `mask::words_shifted`).
fn direct_lead(end_addr: usize, offset: usize, h: &FrameHeader) -> usize {
    const PAGE: usize = if cfg!(fuzzing) { 64 } else { 4096 };
    const MIN_LEAD: usize = if cfg!(fuzzing) { 8 } else { 256 };
    // The source's offset in its page of the payload byte that lands at `end_addr + lead`:
    // the frame's header and the payload before it, counted from a page start.
    let source = (h.encoded_len() + offset) % PAGE;
    let lead = (source + PAGE / 2 + PAGE - end_addr % PAGE) % PAGE;
    if lead < MIN_LEAD {
        lead + PAGE
    } else {
        lead
    }
}

/// Makes room for `n` more payload bytes of frame `h` (received up to `offset`) in `buf`.
fn make_room(buf: &mut MessageBuf, h: &FrameHeader, offset: usize, n: usize) {
    if buf.spare_capacity() >= n {
        return;
    }
    // Growing by doubling would copy the message again at every step. Once a quarter of the
    // frame is here the peer has shown it means the declared size: make room for the rest at
    // once (before that, see RESERVE_AHEAD).
    let rest = (h.payload_len - offset as u64) as usize;
    if (offset + n) as u64 * 4 >= h.payload_len {
        buf.reserve_exact(rest);
    } else {
        buf.reserve(n);
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The payload bytes, owned.
    ///
    /// ```
    /// assert_eq!(ws_proto::Message::Text("hi".into()).into_bytes(), b"hi");
    /// ```
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Message::Text(s) => s.into_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The kind of message.
    pub fn kind(&self) -> DataKind {
        match self {
            Message::Text(_) => DataKind::Text,
            Message::Binary(_) => DataKind::Binary,
        }
    }
}

/// A complete data message lent rather than given: the payload still lies in the buffer it was
/// read into (see [`Connection::receive_in_place`]), so receiving it cost no allocation and no
/// copy.
///
/// ```
/// use ws_proto::{Message, MessageRef};
/// let lent = MessageRef::Text("hi");
/// assert_eq!(lent.as_bytes(), b"hi");
/// assert_eq!(lent.to_message(), Message::Text("hi".into()));
/// assert_eq!(Message::Binary(vec![1]).as_ref(), MessageRef::Binary(&[1]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> MessageRef<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            MessageRef::Text(s) => s.as_bytes(),
            MessageRef::Binary(b) => b,
        }
    }

    /// The kind of message.
    pub fn kind(&self) -> DataKind {
        match self {
            MessageRef::Text(_) => DataKind::Text,
            MessageRef::Binary(_) => DataKind::Binary,
        }
    }

    /// An owned copy, in a buffer from the pool that sent messages give theirs back to.
    pub fn to_message(&self) -> Message {
        let mut data = reuse::take_small(self.as_bytes().len());
        match *self {
            MessageRef::Text(s) => {
                let mut text = String::from_utf8(data).unwrap_or_default();
                text.push_str(s);
                Message::Text(text)
            }
            MessageRef::Binary(b) => {
                data.extend_from_slice(b);
                Message::Binary(data)
            }
        }
    }
}

impl Message {
    /// The message, lent.
    pub fn as_ref(&self) -> MessageRef<'_> {
        match self {
            Message::Text(s) => MessageRef::Text(s),
            Message::Binary(b) => MessageRef::Binary(b),
        }
    }
}

/// Text or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

impl DataKind {
    fn opcode(self) -> OpCode {
        match self {
            DataKind::Text => OpCode::Text,
            DataKind::Binary => OpCode::Binary,
        }
    }
}

/// Who ended the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClosedBy {
    /// This endpoint started the close: the application, a protocol violation by the peer, a
    /// timeout or a rejected handshake (see [`Closed::error`]).
    Local,
    /// The peer sent the first close frame.
    Remote,
    /// The transport ended (EOF, reset, abort) without a close handshake.
    Transport,
}

/// The terminal event: exactly one per connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Who started the close.
    pub by: ClosedBy,
    /// The close code of the frame that started the close (1005 when it had none, 1006 when
    /// there was no close frame at all).
    pub code: u16,
    /// The reason of that frame.
    pub reason: String,
    /// Why, when the connection did not end by a normal close handshake.
    pub error: Option<ConnectionError>,
    /// Whether the close handshake completed (both close frames exchanged).
    pub clean: bool,
}

/// The server's answer to an upgrade request: see [`Connection::accept`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    /// The subprotocol to select; must be one the client offered.
    pub protocol: Option<String>,
    /// Extra response header fields.
    pub headers: Vec<(String, String)>,
}

/// What happened; drain with [`Connection::poll_event`] after every input or command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Server: a valid upgrade request arrived. Answer with [`Connection::accept`] or
    /// [`Connection::respond`].
    Request(Box<Request>),
    /// Server: a plain HTTP request (no `Upgrade: websocket`) arrived. Answer with
    /// [`Connection::respond`].
    HttpRequest(Box<Request>),
    /// Client: the server accepted the handshake.
    Connected(Box<Response>),
    /// A complete message (not in streaming mode).
    Message(Message),
    /// Streaming mode: the payload of one data frame; `fin` ends the message.
    Fragment {
        /// Kind of the message this fragment belongs to.
        kind: DataKind,
        /// The (unmasked, inflated) payload.
        data: Vec<u8>,
        /// Last fragment of the message.
        fin: bool,
    },
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Vec<u8>),
    /// A pong arrived.
    Pong(Vec<u8>),
    /// The connection is over. Nothing follows this event.
    Closed(Box<Closed>),
}

#[derive(Debug)]
enum State {
    /// Server, reading the request.
    ServerHandshake(Box<RequestParser>),
    /// Server, waiting for the application to accept or reject.
    AwaitingDecision(Box<PendingRequest>),
    /// Server, a plain HTTP request waiting for its response.
    AwaitingHttpResponse,
    /// Client, waiting for the response.
    ClientHandshake(Box<ClientHandshake>),
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// Terminal; the transport may still need flushing.
    Closed,
}

#[derive(Debug)]
struct PendingRequest {
    key: String,
    protocols: Vec<String>,
    extensions: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct ClientHandshake {
    parser: ResponseParser,
    key: String,
    protocols: Vec<String>,
}

/// When the transport may be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Keep,
    CloseAfterFlush,
    CloseNow,
}

/// Where the frame decoder is.
#[derive(Clone, Copy, Debug)]
enum Rx {
    Header,
    Payload {
        header: FrameHeader,
        remaining: u64,
        offset: usize,
    },
}

/// A data message being received.
#[derive(Debug)]
struct Incoming {
    kind: DataKind,
    compressed: bool,
    buf: MessageBuf,
}

/// One WebSocket connection, server or client, with no I/O.
///
/// A tiny blocking echo server driven by hand (adapters such as ws-mio and ws-std do the same
/// with non-blocking sockets and many connections):
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::net::TcpListener;
/// use std::time::Instant;
/// use ws_proto::{Accept, Config, Connection, Event, Message};
///
/// let listener = TcpListener::bind("127.0.0.1:9001")?;
/// let (mut tcp, _) = listener.accept()?;
/// let mut conn = Connection::server(Config::default(), Instant::now());
/// let mut buf = [0u8; 8192];
/// loop {
///     let n = tcp.read(&mut buf)?;
///     if n == 0 {
///         conn.receive_eof(Instant::now());
///     } else {
///         conn.receive(&buf[..n], Instant::now());
///     }
///     while let Some(event) = conn.poll_event() {
///         match event {
///             Event::Request(_) => conn.accept(Accept::default()).unwrap(),
///             Event::HttpRequest(_) => conn.respond(426, &[], b"WebSocket only").unwrap(),
///             Event::Message(Message::Text(t)) => { let _ = conn.send_text(&t); }
///             Event::Message(Message::Binary(b)) => { let _ = conn.send_binary(&b); }
///             _ => {}
///         }
///     }
///     while conn.wants_write() {
///         let n = tcp.write(conn.pending_output())?;
///         conn.consume_output(n);
///     }
///     if conn.should_close_transport() {
///         break;
///     }
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// Shared by every connection of a server: one copy, not one per connection.
    config: Arc<Config>,
    state: State,
    now: Instant,
    events: Events,
    out: OutputQueue,
    /// Received bytes not yet processed: a partial frame header, or frames that followed the
    /// handshake while the application decides.
    inbuf: Vec<u8>,
    /// Start of the unprocessed bytes in `inbuf` (an offset, so that pipelined messages are
    /// decoded one by one without moving the rest each time).
    inpos: usize,
    rx: Rx,
    incoming: Option<Incoming>,
    control: Vec<u8>,
    utf8: Utf8Validator,
    deflate: Option<Box<Deflate>>,
    /// What only some connections need (a client's generator, a subprotocol, a close we sent),
    /// out of line: every byte here is paid by each of a server's idle connections.
    rare: Option<Box<Rare>>,
    /// Kind of the message being streamed out with `send_fragment`, if any.
    sending_stream: Option<DataKind>,
    transport: Transport,
    /// The state's one deadline (see [`Timer`]), besides the keepalive ping.
    timer: Option<Instant>,
    timer_kind: Timer,
    last_rx: Instant,
    /// Numbers keepalive pings (16 bits, like `predicted`, keep the connection's size).
    ping_counter: u16,
    /// Payload length of the last message when it was a whole frame of a size worth reading in
    /// place (see [`Connection::receive_predicted`]); 0 otherwise.
    predicted: u16,
    /// How many of the queued events, at the back, are messages decoded ahead of the
    /// application (see [`Connection::decode_ahead`]).
    ahead: u8,
    /// See [`Connection::keep_output_buffers`].
    keep_output: bool,
}

/// What [`Connection`]'s deadline is for. One deadline serves them all: the handshake's ends
/// before pings start, and a close (whose deadline replaces a pending pong's) ends pinging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Handshake,
    Pong,
    Close,
}

/// Compression state of a connection that negotiated permessage-deflate, with the scratch
/// space only such a connection needs (unmasking compressed input, compressing output).
#[derive(Debug)]
struct Deflate {
    codec: PerMessageDeflate,
    scratch: Vec<u8>,
}

impl Deflate {
    fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> Box<Deflate> {
        Box::new(Deflate {
            codec: PerMessageDeflate::new(params, role, config),
            scratch: Vec::new(),
        })
    }
}

/// See [`Connection::rare`].
#[derive(Debug, Default)]
struct Rare {
    rng: Option<Rng>,
    protocol: Option<Box<str>>,
    /// The close frame we sent, for the Closed event when we initiated.
    sent_close: Option<(u16, String)>,
}

impl Connection {
    /// A server-side connection waiting for the client's opening request.
    pub fn server(config: impl Into<Arc<Config>>, now: Instant) -> Connection {
        let config = config.into();
        let parser = RequestParser::new(config.max_handshake_bytes, config.max_handshake_headers);
        let mut c = Connection::new(
            Role::Server,
            config,
            State::ServerHandshake(Box::new(parser)),
            now,
        );
        c.arm_handshake_timer(now);
        c
    }

    /// A client-side connection; the opening request is queued for sending at once.
    ///
    /// `seed` seeds the generator of the handshake key and the masking keys: pass fresh OS
    /// randomness (never a constant).
    pub fn client(
        config: impl Into<Arc<Config>>,
        request: ClientRequest,
        seed: [u8; 32],
        now: Instant,
    ) -> Connection {
        let config = config.into();
        let mut rng = Rng::from_seed(seed);
        let key = client::key_from_nonce(rng.nonce());
        let offer = deflate::client_offer(&config.deflate);
        let parser = ResponseParser::new(config.max_handshake_bytes, config.max_handshake_headers);
        let hs = ClientHandshake {
            parser,
            key,
            protocols: request.protocols.clone(),
        };
        let mut c = Connection::new(
            Role::Client,
            config,
            State::ClientHandshake(Box::new(hs)),
            now,
        );
        if let State::ClientHandshake(hs) = &c.state {
            c.out
                .append(|buf| client::build_request(&request, &hs.key, offer.as_deref(), buf));
        }
        c.rare_mut().rng = Some(rng);
        c.arm_handshake_timer(now);
        c
    }

    /// A connection whose HTTP upgrade was done elsewhere (for example by an HTTP server that
    /// hands over the socket): it starts open, with the given permessage-deflate agreement.
    /// `seed` seeds the masking keys of a client (ignored for a server).
    pub fn from_upgraded(
        role: Role,
        config: impl Into<Arc<Config>>,
        deflate: Option<DeflateParams>,
        seed: [u8; 32],
        now: Instant,
    ) -> Connection {
        let mut c = Connection::new(role, config.into(), State::Open, now);
        c.deflate = deflate.map(|p| Deflate::new(p, role, &c.config.deflate));
        if role == Role::Client {
            c.rare_mut().rng = Some(Rng::from_seed(seed));
        }
        c
    }

    fn new(role: Role, config: Arc<Config>, state: State, now: Instant) -> Connection {
        Connection {
            role,
            config,
            state,
            now,
            events: Events::default(),
            out: OutputQueue::default(),
            inbuf: Vec::new(),
            inpos: 0,
            rx: Rx::Header,
            incoming: None,
            control: Vec::new(),
            utf8: Utf8Validator::default(),
            deflate: None,
            rare: None,
            sending_stream: None,
            transport: Transport::Keep,
            timer: None,
            timer_kind: Timer::Handshake,
            last_rx: now,
            ping_counter: 0,
            predicted: 0,
            ahead: 0,
            keep_output: false,
        }
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn sent_close(&self) -> Option<&(u16, String)> {
        self.rare.as_ref().and_then(|r| r.sent_close.as_ref())
    }

    fn arm_handshake_timer(&mut self, now: Instant) {
        if let Some(t) = self.config.handshake_timeout {
            self.set_timer(Timer::Handshake, now + t);
        }
    }

    fn set_timer(&mut self, kind: Timer, at: Instant) {
        self.timer = Some(at);
        self.timer_kind = kind;
    }

    /// Stops the deadline if it is one of `kind`'s.
    fn clear_timer(&mut self, kind: Timer) {
        if self.timer_kind == kind {
            self.timer = None;
        }
    }

    /// Input arrived (at `self.now`): it postpones the keepalive ping and answers one sent.
    fn heard_from_peer(&mut self) {
        self.last_rx = self.now;
        self.clear_timer(Timer::Pong);
    }

    fn awaiting_pong(&self) -> bool {
        self.timer.is_some() && self.timer_kind == Timer::Pong
    }

    // ----- queries -----

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages may be sent (handshake done, no close frame sent or received).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// An event waits to be polled, with no input left to decode: a command (a send that
    /// tripped backpressure, say) produced one since the last [`Connection::poll_event`] that
    /// returned `None`.
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// The terminal `Closed` event has been produced.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.protocol.as_deref())
    }

    /// The permessage-deflate parameters agreed in the handshake.
    pub fn deflate_params(&self) -> Option<DeflateParams> {
        self.deflate.as_ref().map(|d| d.codec.params())
    }

    /// Bytes queued for the transport.
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// There are bytes to write.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() && self.transport != Transport::CloseNow
    }

    /// The IO layer should close the transport now (after writing nothing more).
    pub fn should_close_transport(&self) -> bool {
        match self.transport {
            Transport::Keep => false,
            Transport::CloseAfterFlush => self.out.is_empty(),
            Transport::CloseNow => true,
        }
    }

    // ----- output -----

    /// The next bytes to write. May be only part of what is pending (see
    /// [`Connection::output_slices`] for a vectored write).
    pub fn pending_output(&self) -> &[u8] {
        if self.transport == Transport::CloseNow {
            return &[];
        }
        self.out.front()
    }

    /// Fills `dst` with the pending chunks in order, for `write_vectored`; returns how many.
    pub fn output_slices<'a>(&'a self, dst: &mut [&'a [u8]]) -> usize {
        if self.transport == Transport::CloseNow {
            return 0;
        }
        self.out.slices(dst)
    }

    /// Reports that `n` bytes of the pending output were written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume_keeping(n, self.keep_output);
    }

    /// Whether the output queue keeps its memory once everything is written, instead of
    /// returning it to the thread's pool (the default, `false`, suits an event loop: an idle
    /// connection then holds no output memory, and the next connection to reply takes it from
    /// the pool while it is still in the CPU's cache). An adapter that runs each connection on a
    /// thread of its own sets it: that thread's pool serves no other connection, and fetching
    /// from it after other threads ran misses the cache on every reply. A kept queue holds at
    /// most a pooled buffer (16 KiB) while idle.
    ///
    /// ```
    /// # use std::time::Instant;
    /// let mut conn = ws_proto::Connection::server(ws_proto::Config::default(), Instant::now());
    /// conn.keep_output_buffers(true);
    /// ```
    pub fn keep_output_buffers(&mut self, keep: bool) {
        self.keep_output = keep;
    }

    /// The next event, if any.
    ///
    /// Input is decoded lazily, one event at a time: the next frame is only looked at once the
    /// application has taken the previous event. Whatever it sends in response (an echo, say)
    /// is therefore queued before anything the later input causes (a close reply, a protocol
    /// error), and a flood of input is never decoded ahead of the application. (A few whole
    /// data messages that follow one another in the input are decoded together: they cause
    /// nothing but their events, and are dropped unseen if the connection closes first.)
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.resume_input();
        }
        let event = self.events.pop_front();
        // Taking a message decoded ahead makes it the current one: what is still queued is
        // all ahead.
        self.ahead = self.ahead.min(self.events.len() as u8);
        if event.is_none() {
            // Nothing more for now: an idle connection holds no event storage.
            self.events.release();
        }
        event
    }

    // ----- timers -----

    /// The earliest moment [`Connection::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keepalive = match (&self.state, self.config.keepalive_interval) {
            (State::Open, Some(interval)) if !self.awaiting_pong() => Some(self.last_rx + interval),
            _ => None,
        };
        match (self.timer, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time of the latest input, timer or [`Connection::set_time`].
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Tells the connection the current time without giving it input. Call it before commands
    /// issued long after the last input (a close, a send that may trip backpressure): the
    /// deadlines they start count from the latest time the connection was told.
    pub fn set_time(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.timer.is_some_and(|d| d <= now) {
            self.timer = None;
            match (self.timer_kind, &self.state) {
                (Timer::Handshake, _) if self.in_handshake() => {
                    self.fail_handshake(HandshakeError::Timeout, false);
                    return;
                }
                (Timer::Close, State::Closing) => {
                    self.transport = Transport::CloseNow;
                    let (code, reason) = self
                        .sent_close()
                        .cloned()
                        .unwrap_or((CloseCode::ABNORMAL_CLOSURE, String::new()));
                    self.finish(
                        ClosedBy::Local,
                        code,
                        reason,
                        Some(ConnectionError::CloseTimeout),
                        false,
                    );
                }
                (Timer::Close, State::Closed) => self.transport = Transport::CloseNow,
                (Timer::Pong, State::Open) => {
                    // The 1011 is still sent: a peer that is merely slow learns why it was
                    // dropped, and a dead one cannot delay us past the close timeout.
                    self.fail_local(
                        CloseCode::INTERNAL_ERROR,
                        "keepalive ping timeout",
                        ConnectionError::KeepaliveTimeout,
                        Transport::CloseAfterFlush,
                    );
                    return;
                }
                _ => {}
            }
        }
        if let (State::Open, Some(interval), false) = (
            &self.state,
            self.config.keepalive_interval,
            self.awaiting_pong(),
        ) {
            if self.last_rx + interval <= now {
                self.ping_counter = self.ping_counter.wrapping_add(1);
                let payload = self.ping_counter.to_be_bytes();
                self.write_frame(OpCode::Ping, true, 0, &payload);
                self.set_timer(Timer::Pong, now + self.config.keepalive_timeout);
            }
        }
    }

    // ----- input -----

    /// Reads the next payload bytes straight into the message being received, when that is
    /// possible: in the middle of a large uncompressed data frame, with no other input pending,
    /// and with space in the message's buffer that is already initialised (a large message
    /// reuses the buffer of one sent before; safe code reads only into initialised memory).
    /// This saves copying a large payload from a read buffer of the caller's.
    ///
    /// `read` gets the space to fill and returns how many bytes it put there, as
    /// [`std::io::Read::read`] does. The result is `None` when a direct read is not possible now
    /// (read into a buffer of your own and call [`Connection::receive`]), else what `read`
    /// returned, the bytes already taken in; `Ok(0)` means end of stream
    /// ([`Connection::receive_eof`] is still yours to call).
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection, Role};
    /// # let mut conn = Connection::from_upgraded(Role::Server, Config::default(), None, [0; 32], Instant::now());
    /// # let mut socket: &[u8] = &[];
    /// use std::io::Read;
    /// let mut buf = [0u8; 8192];
    /// let now = Instant::now();
    /// let n = match conn.receive_direct(now, |space| socket.read(space)) {
    ///     Some(result) => result?,
    ///     None => {
    ///         let n = socket.read(&mut buf)?;
    ///         conn.receive(&buf[..n], now);
    ///         n
    ///     }
    /// };
    /// if n == 0 {
    ///     conn.receive_eof(now);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn receive_direct(
        &mut self,
        now: Instant,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        let Rx::Payload {
            header,
            remaining,
            offset,
        } = self.rx
        else {
            return None;
        };
        if header.opcode.is_control()
            || self.config.streaming
            || !self.input_drained()
            || !self.accepting_frames()
        {
            return None;
        }
        let incoming = self.incoming.as_mut().filter(|i| !i.compressed)?;
        let start = incoming.buf.len();
        let want = remaining.min(DIRECT_MAX) as usize;
        let room = incoming.buf.room();
        if want < DIRECT_MIN || room < DIRECT_MIN {
            return None;
        }
        // The read lands where `direct_lead` says if the buffer has room for that, else right
        // at the message's end.
        let lead = header
            .mask
            .map(|_| direct_lead(incoming.buf.end_addr(), offset, &header))
            .filter(|&lead| room >= lead + DIRECT_MIN)
            .unwrap_or(0);
        let space = incoming.buf.space(lead + want);
        let asked = space.len() - lead;
        let result = read(&mut space[lead..]);
        let n = result.as_ref().map_or(0, |&n| n.min(asked));
        incoming.buf.take_read(lead, n, header.mask, offset);
        if n > 0 {
            self.now = now;
            self.heard_from_peer();
            match self.after_payload(&header, start, n) {
                Ok(()) => self.advance_payload(header, remaining, offset, n),
                Err(e) => self.fail_protocol(e),
            }
        }
        Some(result)
    }

    /// Feeds bytes received from the peer.
    pub fn receive(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        match &mut self.state {
            State::ServerHandshake(parser) => match parser.push(data) {
                Ok(None) => {}
                Ok(Some((parsed, used))) => {
                    self.inbuf.extend_from_slice(&data[used..]);
                    self.clear_timer(Timer::Handshake);
                    match parsed {
                        ParsedRequest::Upgrade(req) => {
                            let pending = PendingRequest {
                                key: req.key.clone(),
                                protocols: req.protocols.clone(),
                                extensions: req
                                    .extension_headers()
                                    .into_iter()
                                    .map(<[u8]>::to_vec)
                                    .collect(),
                            };
                            self.state = State::AwaitingDecision(Box::new(pending));
                            self.events.push_back(Event::Request(Box::new(req)));
                        }
                        ParsedRequest::Plain(req) => {
                            self.state = State::AwaitingHttpResponse;
                            self.events.push_back(Event::HttpRequest(Box::new(req)));
                        }
                    }
                }
                Err(e) => self.fail_handshake(e, true),
            },
            State::AwaitingDecision(_) | State::AwaitingHttpResponse => {
                // Frames sent right after the request wait for the decision; bound them so a
                // client cannot make us buffer without limit meanwhile.
                if self.inbuf.len() + data.len()
                    <= self.config.max_frame_size.saturating_add(MAX_HEADER_LEN)
                {
                    self.inbuf.extend_from_slice(data);
                }
            }
            State::ClientHandshake(hs) => match hs.parser.push(data) {
                Ok(None) => {}
                Ok(Some((resp, used))) => self.finish_client_handshake(resp, &data[used..]),
                Err(e) => self.fail_handshake(e, false),
            },
            State::Open | State::Closing => {
                self.heard_from_peer();
                self.process_input(data);
            }
            State::Closed => {}
        }
    }

    /// Decodes the whole message that starts `data`, if it is a small single frame and nothing
    /// received before waits, right where it lies: unmasks it in place and lends it out, with the
    /// number of bytes it took. An echo or a relay then costs no allocation and no copy on the
    /// way in. `None` means nothing was taken: hand `data` (the rest of it, after the messages
    /// taken) to [`Connection::receive`] as usual. Call it again after each message, once the
    /// application has handled it, so that replies keep the order of the input.
    ///
    /// It takes only what [`Connection::receive`] would turn into a message event and nothing
    /// else (control frames, fragments, compressed or large messages go the usual way), with the
    /// same checks. A text message that is not UTF-8 fails the connection (1007), as it would
    /// there.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Accept, Config, Connection, Event, MessageRef};
    ///
    /// let mut conn = Connection::server(Config::default(), Instant::now());
    /// conn.receive(
    ///     b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ///     Instant::now(),
    /// );
    /// assert!(matches!(conn.poll_event(), Some(Event::Request(_))));
    /// conn.accept(Accept::default()).unwrap();
    /// // "hi" masked with the key 1, 2, 3, 4, then a ping.
    /// let mut input = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2, 0x89, 0x80, 0, 0, 0, 0];
    /// let (message, used) = conn.receive_in_place(&mut input, Instant::now()).unwrap();
    /// assert_eq!(message, MessageRef::Text("hi"));
    /// assert_eq!(used, 8);
    /// // A ping is not a message: it goes the usual way.
    /// assert!(conn.receive_in_place(&mut input[used..], Instant::now()).is_none());
    /// conn.receive(&input[used..], Instant::now());
    /// assert!(matches!(conn.poll_event(), Some(Event::Ping(_))));
    /// ```
    // Inlined into the adapter's read loop: returned through memory, the lent message is
    // reloaded wider than it was stored, a store-forwarding stall per message.
    #[inline(always)]
    pub fn receive_in_place<'a>(
        &mut self,
        data: &'a mut [u8],
        now: Instant,
    ) -> Option<(MessageRef<'a>, usize)> {
        if !matches!(self.rx, Rx::Header) || !self.accepting_frames() || !self.input_drained() {
            return None;
        }
        let Ok(Some((h, n))) = FrameHeader::decode(data) else {
            return None;
        };
        let kind = self.whole_message_kind(&h, data.len() - n)?;
        let len = h.payload_len as usize;
        // Larger messages are better served as buffers of their own (a zero-copy echo, reads
        // straight into the next one: see `receive_predicted`).
        if len >= ZERO_COPY_MIN {
            return None;
        }
        self.now = now;
        self.heard_from_peer();
        self.predicted = predicted_size(len);
        let payload = &mut data[n..n + len];
        if let Some(k) = h.mask {
            apply_mask(payload, k, 0);
        }
        let payload: &'a [u8] = payload;
        let message = match kind {
            DataKind::Binary => MessageRef::Binary(payload),
            DataKind::Text => match std::str::from_utf8(payload) {
                Ok(text) => MessageRef::Text(text),
                Err(_) => {
                    // The input is unmasked now: the connection must not decode it again, and
                    // failing it means it will not.
                    self.fail_protocol(ProtocolError::InvalidUtf8);
                    return None;
                }
            },
        };
        Some((message, n + len))
    }

    /// The transport reached end of stream (or failed).
    pub fn receive_eof(&mut self, now: Instant) {
        self.now = now;
        self.transport = Transport::CloseNow;
        match self.state {
            State::Closed => {}
            State::ServerHandshake(_)
            | State::AwaitingDecision(_)
            | State::AwaitingHttpResponse
            | State::ClientHandshake(_) => {
                self.finish(
                    ClosedBy::Transport,
                    CloseCode::ABNORMAL_CLOSURE,
                    String::new(),
                    Some(HandshakeError::Eof.into()),
                    false,
                );
            }
            State::Open | State::Closing => {
                self.finish(
                    ClosedBy::Transport,
                    CloseCode::ABNORMAL_CLOSURE,
                    String::new(),
                    Some(ConnectionError::Eof),
                    false,
                );
            }
        }
    }

    /// Drops the connection at once (abrupt shutdown): discards pending output and produces the
    /// `Closed` event if it was not produced yet.
    pub fn abort(&mut self) {
        self.out.clear();
        self.transport = Transport::CloseNow;
        if !self.is_closed() {
            // Aborting a close we started (a shutdown past its timeout) reports that close.
            let (code, reason) = self
                .sent_close()
                .cloned()
                .unwrap_or((CloseCode::ABNORMAL_CLOSURE, String::new()));
            self.finish(ClosedBy::Local, code, reason, None, false);
        }
    }

    fn in_handshake(&self) -> bool {
        matches!(
            self.state,
            State::ServerHandshake(_)
                | State::AwaitingDecision(_)
                | State::AwaitingHttpResponse
                | State::ClientHandshake(_)
        )
    }

    // ----- handshake -----

    /// Server: accepts the pending upgrade request, negotiating extensions.
    ///
    /// Frames that arrived right behind the request are decoded as events are polled.
    pub fn accept(&mut self, accept: Accept) -> Result<(), Error> {
        let State::AwaitingDecision(pending) = &self.state else {
            return Err(Error::NoPendingHandshake);
        };
        if let Some(p) = &accept.protocol {
            if !pending.protocols.iter().any(|o| o == p) {
                return Err(Error::UnofferedProtocol);
            }
        }
        let ext_refs: Vec<&[u8]> = pending.extensions.iter().map(Vec::as_slice).collect();
        let negotiated = if self.config.deflate.enabled && !ext_refs.is_empty() {
            deflate::negotiate_server(&self.config.deflate, &ext_refs)
        } else {
            None
        };
        let key = pending.key.clone();
        let ext_header = negotiated.as_ref().map(|(_, h)| h.clone());
        self.deflate =
            negotiated.map(|(params, _)| Deflate::new(params, Role::Server, &self.config.deflate));
        self.out.append(|buf| {
            server::response_101(
                &key,
                accept.protocol.as_deref(),
                ext_header.as_deref(),
                &accept.headers,
                buf,
            )
        });
        if let Some(p) = accept.protocol {
            self.rare_mut().protocol = Some(p.into_boxed_str());
        }
        self.state = State::Open;
        self.last_rx = self.now;
        // Frames that came right behind the request are decoded as events are polled.
        Ok(())
    }

    /// Server: answers the pending request with an HTTP response and ends the connection after it
    /// is written. Rejects an upgrade request, or serves a plain HTTP request (a page on the same
    /// port). `Content-Length` and `Connection: close` are added.
    pub fn respond(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), Error> {
        if !matches!(
            self.state,
            State::AwaitingDecision(_) | State::AwaitingHttpResponse
        ) {
            return Err(Error::NoPendingHandshake);
        }
        self.out
            .append(|buf| server::http_response(status, headers, body, buf));
        self.inbuf = Vec::new();
        self.inpos = 0;
        self.enter_close_after_flush();
        self.finish(
            ClosedBy::Local,
            CloseCode::ABNORMAL_CLOSURE,
            String::new(),
            None,
            false,
        );
        Ok(())
    }

    fn finish_client_handshake(&mut self, resp: Response, rest: &[u8]) {
        let State::ClientHandshake(hs) = &self.state else {
            return;
        };
        if let Err(e) = resp.validate(&hs.key, &hs.protocols) {
            self.fail_handshake(e, false);
            return;
        }
        let ext = resp.extension_headers();
        match deflate::accept_response(&self.config.deflate, &ext) {
            Ok(params) => {
                self.deflate = params.map(|p| Deflate::new(p, Role::Client, &self.config.deflate));
            }
            Err(e) => {
                self.fail_handshake(e, false);
                return;
            }
        }
        if let Some(p) = &resp.protocol {
            self.rare_mut().protocol = Some(p.as_str().into());
        }
        self.clear_timer(Timer::Handshake);
        self.state = State::Open;
        self.last_rx = self.now;
        self.events.push_back(Event::Connected(Box::new(resp)));
        if !rest.is_empty() {
            self.process_input(rest);
        }
    }

    fn fail_handshake(&mut self, e: HandshakeError, send_status: bool) {
        if send_status && self.role == Role::Server {
            self.out.append(|buf| {
                server::http_response(e.status(), &[], e.to_string().as_bytes(), buf)
            });
            self.enter_close_after_flush();
        } else {
            self.transport = Transport::CloseNow;
        }
        self.inbuf = Vec::new();
        self.inpos = 0;
        self.finish(
            ClosedBy::Local,
            CloseCode::ABNORMAL_CLOSURE,
            String::new(),
            Some(e.into()),
            false,
        );
    }

    // ----- frames in -----

    fn process_input(&mut self, data: &[u8]) {
        if self.input_drained() {
            // Nothing pending: decode straight from the caller's buffer and keep only the rest.
            self.clear_input();
            let used = self.process_frames(data);
            if used < data.len() && self.accepting_frames() {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.inbuf.extend_from_slice(data);
            if self.events.is_empty() {
                self.resume_input();
            }
        }
    }

    /// Decodes buffered input up to the next event.
    fn resume_input(&mut self) {
        if self.inpos == self.inbuf.len() || !self.accepting_frames() {
            return;
        }
        let mut buf = std::mem::take(&mut self.inbuf);
        let used = self.process_frames(&buf[self.inpos..]);
        if !self.accepting_frames() {
            self.clear_input();
            return;
        }
        self.inpos += used;
        if self.inpos == buf.len() {
            // Drained: an idle connection keeps no input buffer.
            buf = Vec::new();
            self.inpos = 0;
        } else if self.inpos > 4096 && self.inpos * 2 > buf.len() {
            buf.drain(..self.inpos);
            self.inpos = 0;
        }
        self.inbuf = buf;
    }

    /// Everything received so far is decoded and its events polled: new input may be decoded
    /// straight from where it lies (the caller's buffer, or a message's own for a direct read).
    fn input_drained(&self) -> bool {
        self.events.is_empty() && self.inpos == self.inbuf.len()
    }

    fn clear_input(&mut self) {
        self.inbuf.clear();
        self.inpos = 0;
    }

    fn accepting_frames(&self) -> bool {
        matches!(self.state, State::Open | State::Closing)
    }

    /// Decodes as much of `buf` as possible; returns how many bytes were used. Payload bytes are
    /// consumed as they arrive (only a partial header is ever left over), so a large frame is
    /// never buffered twice.
    fn process_frames(&mut self, buf: &[u8]) -> usize {
        let mut pos = 0;
        while self.accepting_frames() && self.events.is_empty() {
            match self.rx {
                Rx::Header => {
                    let header = match FrameHeader::decode(&buf[pos..]) {
                        Ok(Some((h, n))) => {
                            pos += n;
                            h
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.fail_protocol(e);
                            break;
                        }
                    };
                    if self.whole_message(&header, &buf[pos..]) {
                        pos += header.payload_len as usize;
                        pos += self.decode_ahead(&buf[pos..]);
                        continue;
                    }
                    if let Err(e) = self.on_header(&header) {
                        self.fail_protocol(e);
                        break;
                    }
                    if header.payload_len == 0 {
                        self.on_frame_end(&header);
                    } else {
                        self.rx = Rx::Payload {
                            header,
                            remaining: header.payload_len,
                            offset: 0,
                        };
                    }
                }
                Rx::Payload {
                    header,
                    remaining,
                    offset,
                } => {
                    let avail = buf.len() - pos;
                    if avail == 0 {
                        break;
                    }
                    let take = remaining.min(avail as u64) as usize;
                    let chunk = &buf[pos..pos + take];
                    pos += take;
                    if let Err(e) = self.on_payload(&header, chunk, offset) {
                        self.fail_protocol(e);
                        break;
                    }
                    self.advance_payload(header, remaining, offset, take);
                }
            }
        }
        pos
    }

    /// Decodes in one step a message that is a single frame lying whole in `payload` (the bytes
    /// after its header), the common case of small and mid-sized messages, skipping the
    /// reassembly machinery. Returns false, having done nothing, when the frame needs the general
    /// path: fragments, compression, streaming, a partial or very large payload, or anything
    /// the general path must reject.
    fn whole_message(&mut self, h: &FrameHeader, payload: &[u8]) -> bool {
        let Some(kind) = self.whole_message_kind(h, payload.len()) else {
            self.predicted = 0;
            return false;
        };
        let data = copy_payload(&payload[..h.payload_len as usize]);
        self.deliver_whole_message(h.mask, kind, data);
        true
    }

    /// After a whole message, decodes up to [`AHEAD_MAX`] more that follow it whole and valid
    /// in `buf`, and returns the bytes used. Such a message has no effect but its event (no
    /// reply, no state), so decoding it before the application has taken the previous one
    /// changes nothing it can see, and spares a trip through the decoder per message. It stops,
    /// leaving the frame undecoded, at anything else: a control frame, a fragment, a limit, or
    /// invalid UTF-8 are met one event at a time, in order. A local close drops what was
    /// decoded ahead (see [`Self::finish`]), as that input would never have been decoded.
    fn decode_ahead(&mut self, buf: &[u8]) -> usize {
        if !self.accepting_frames() {
            // The message before failed (invalid UTF-8): nothing more is decoded.
            return 0;
        }
        let mut pos = 0;
        for _ in 1..AHEAD_MAX {
            let Ok(Some((h, n))) = FrameHeader::decode(&buf[pos..]) else {
                break;
            };
            let Some(kind) = self.whole_message_kind(&h, buf.len() - pos - n) else {
                break;
            };
            let len = h.payload_len as usize;
            let data = copy_payload(&buf[pos + n..pos + n + len]);
            let Some(message) = into_message(h.mask, kind, data) else {
                // Invalid UTF-8: reported when the decoder reaches it, after the messages
                // before it.
                break;
            };
            self.predicted = predicted_size(len);
            self.events.push_back(Event::Message(message));
            self.ahead += 1;
            pos += n + len;
        }
        pos
    }

    /// The kind of message `h` starts, if it is a whole message that [`Self::whole_message`]
    /// may decode with `available` payload bytes at hand.
    fn whole_message_kind(&self, h: &FrameHeader, available: usize) -> Option<DataKind> {
        let kind = match h.opcode {
            OpCode::Text => DataKind::Text,
            OpCode::Binary => DataKind::Binary,
            _ => return None,
        };
        let len = h.payload_len;
        let whole = h.fin
            && h.rsv == 0
            && self.incoming.is_none()
            && !self.config.streaming
            && h.mask.is_some() == (self.role == Role::Server)
            && len <= available as u64
            && len < reuse::MIN_POOLED_CAPACITY as u64
            && len <= self.config.max_frame_size as u64
            && len <= self.config.max_message_size as u64;
        whole.then_some(kind)
    }

    /// Unmasks and validates the payload of a whole message, and reports it. A message of a
    /// size worth reading in place predicts the next (see [`Self::receive_predicted`]).
    fn deliver_whole_message(&mut self, mask: Option<[u8; 4]>, kind: DataKind, data: Vec<u8>) {
        self.predicted = predicted_size(data.len());
        match into_message(mask, kind, data) {
            Some(message) => self.events.push_back(Event::Message(message)),
            None => self.fail_protocol(ProtocolError::InvalidUtf8),
        }
    }

    /// Records `n` more payload bytes of the current frame as received.
    fn advance_payload(&mut self, header: FrameHeader, remaining: u64, offset: usize, n: usize) {
        let remaining = remaining - n as u64;
        if remaining == 0 {
            self.rx = Rx::Header;
            self.on_frame_end(&header);
        } else {
            self.rx = Rx::Payload {
                header,
                remaining,
                offset: offset + n,
            };
        }
    }

    fn on_header(&mut self, h: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.rsv & !RSV1 != 0 || (h.rsv & RSV1 != 0 && self.deflate.is_none()) {
            return Err(ProtocolError::ReservedBits);
        }
        let compressed = h.rsv & RSV1 != 0;
        if h.opcode.is_control() {
            if compressed {
                return Err(ProtocolError::CompressedControlOrContinuation);
            }
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            self.control.clear();
            return Ok(());
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: h.payload_len,
                limit: self.config.max_frame_size,
            });
        }
        match (h.opcode, &self.incoming) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(_)) if compressed => {
                return Err(ProtocolError::CompressedControlOrContinuation)
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
        if matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            let kind = if h.opcode == OpCode::Text {
                DataKind::Text
            } else {
                DataKind::Binary
            };
            self.utf8.reset();
            // A large message takes a buffer a previous one left, instead of fresh pages.
            let buf = match usize::try_from(h.payload_len) {
                Ok(n)
                    if n >= reuse::MIN_POOLED_CAPACITY && !compressed && !self.config.streaming =>
                {
                    reuse::take(n).map_or_else(MessageBuf::default, MessageBuf::reusing)
                }
                _ if !compressed => {
                    MessageBuf::with_capacity(h.payload_len.min(RESERVE_AHEAD) as usize)
                }
                _ => MessageBuf::default(),
            };
            self.incoming = Some(Incoming {
                kind,
                compressed,
                buf,
            });
        }
        let limit = self.config.max_message_size;
        let streaming = self.config.streaming;
        let incoming = self.incoming.as_mut().expect("a message is in progress");
        if !incoming.compressed {
            let total = if streaming {
                0
            } else {
                incoming.buf.len() as u64
            } + h.payload_len;
            if total > limit as u64 {
                return Err(ProtocolError::MessageTooLarge { limit });
            }
            // Reserve for what is declared only up to a point: a peer that declares a large frame
            // and then trickles it must not make us commit the whole size up front.
            incoming
                .buf
                .reserve(h.payload_len.min(RESERVE_AHEAD) as usize);
        }
        Ok(())
    }

    fn on_payload(
        &mut self,
        h: &FrameHeader,
        chunk: &[u8],
        offset: usize,
    ) -> Result<(), ProtocolError> {
        let key = h.mask;
        if h.opcode.is_control() {
            let start = self.control.len();
            self.control.extend_from_slice(chunk);
            if let Some(k) = key {
                apply_mask(&mut self.control[start..], k, offset);
            }
            return Ok(());
        }
        let limit = self.config.max_message_size;
        let incoming = self.incoming.as_mut().expect("a message is in progress");
        let start = incoming.buf.len();
        if incoming.compressed {
            let d = self
                .deflate
                .as_mut()
                .expect("compressed frames need deflate");
            d.scratch.clear();
            d.scratch.extend_from_slice(chunk);
            if let Some(k) = key {
                apply_mask(&mut d.scratch, k, offset);
            }
            incoming
                .buf
                .append_with(|v| d.codec.decompress(&d.scratch, v, limit))?;
        } else {
            make_room(&mut incoming.buf, h, offset, chunk.len());
            incoming.buf.extend_from_slice(chunk);
            if let Some(k) = key {
                apply_mask(incoming.buf.tail_mut(start), k, offset);
            }
        }
        self.after_payload(h, start, chunk.len())
    }

    /// Validates the payload bytes just placed, unmasked, at `start..` of the message buffer;
    /// `n` of them came off the wire.
    fn after_payload(
        &mut self,
        h: &FrameHeader,
        start: usize,
        n: usize,
    ) -> Result<(), ProtocolError> {
        let incoming = self.incoming.as_mut().expect("a message is in progress");
        // A whole single-frame text message that arrived in one piece is validated once, when it
        // becomes a String; the incremental pass is for messages that arrive in parts, where it
        // lets us fail before the rest comes.
        let whole_message = h.fin
            && start == 0
            && n as u64 == h.payload_len
            && !incoming.compressed
            && !self.config.streaming;
        if incoming.kind == DataKind::Text && !whole_message {
            self.utf8
                .feed(incoming.buf.tail(start))
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    fn on_frame_end(&mut self, h: &FrameHeader) {
        match h.opcode {
            OpCode::Ping => {
                let payload = std::mem::take(&mut self.control);
                if self.config.auto_pong && matches!(self.state, State::Open) {
                    // A peer that floods pings and never reads would otherwise grow our queue
                    // of pongs without bound. Control frames are never dropped, so past the
                    // output limit such a peer is closed with 1008, whatever the policy.
                    if self.out.len() + payload.len() + 2 <= self.config.max_buffered_output {
                        self.write_frame(OpCode::Pong, true, 0, &payload);
                    } else {
                        self.fail_local(
                            CloseCode::POLICY_VIOLATION,
                            "output buffer limit exceeded",
                            ConnectionError::OutputOverflow,
                            Transport::CloseAfterFlush,
                        );
                        return;
                    }
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => {
                let payload = std::mem::take(&mut self.control);
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::Close => self.on_close_frame(),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if let Err(e) = self.on_data_frame_end(h.fin) {
                    self.fail_protocol(e);
                }
            }
        }
    }

    fn on_data_frame_end(&mut self, fin: bool) -> Result<(), ProtocolError> {
        let limit = self.config.max_message_size;
        let incoming = self.incoming.as_mut().expect("a message is in progress");
        if fin && incoming.compressed {
            let start = incoming.buf.len();
            let deflate = self
                .deflate
                .as_mut()
                .expect("compressed frames need deflate");
            incoming
                .buf
                .append_with(|v| deflate.codec.finish_message(v, limit))?;
            if incoming.kind == DataKind::Text {
                self.utf8
                    .feed(incoming.buf.tail(start))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        if fin && incoming.kind == DataKind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if self.config.streaming {
            let kind = incoming.kind;
            let data = incoming.buf.take();
            if fin {
                self.incoming = None;
            }
            self.events.push_back(Event::Fragment { kind, data, fin });
        } else if fin {
            let incoming = self.incoming.take().expect("a message is in progress");
            let msg = match incoming.kind {
                // Validated incrementally above; this second check is a cheap safety net.
                DataKind::Text => Message::Text(
                    String::from_utf8(incoming.buf.into_vec())
                        .map_err(|_| ProtocolError::InvalidUtf8)?,
                ),
                DataKind::Binary => Message::Binary(incoming.buf.into_vec()),
            };
            self.events.push_back(Event::Message(msg));
        }
        Ok(())
    }

    fn on_close_frame(&mut self) {
        let payload = match ClosePayload::parse(&self.control) {
            Ok(p) => p,
            Err(e) => {
                self.fail_protocol(e);
                return;
            }
        };
        self.control = Vec::new();
        match self.state {
            State::Open => {
                // Echo the status code (RFC 6455 §5.5.1); an empty close is answered empty.
                let mut reply = Vec::with_capacity(2);
                if let ClosePayload::Code(code, _) = &payload {
                    reply.extend_from_slice(&code.as_u16().to_be_bytes());
                }
                self.write_frame(OpCode::Close, true, 0, &reply);
                self.after_close_handshake();
                self.finish(
                    ClosedBy::Remote,
                    payload.code_u16(),
                    payload.reason().to_owned(),
                    None,
                    true,
                );
            }
            State::Closing => {
                self.after_close_handshake();
                let (code, reason) = self.sent_close().cloned().unwrap_or_default();
                self.finish(ClosedBy::Local, code, reason, None, true);
            }
            _ => {}
        }
    }

    /// The close handshake is complete: the server drops TCP first (RFC 6455 §7.1.1); the client
    /// waits for that, but not forever.
    fn after_close_handshake(&mut self) {
        match self.role {
            Role::Server => self.enter_close_after_flush(),
            Role::Client => {
                self.transport = Transport::Keep;
                self.set_timer(Timer::Close, self.now + self.config.close_timeout);
            }
        }
    }

    fn enter_close_after_flush(&mut self) {
        self.transport = Transport::CloseAfterFlush;
        // A peer that never reads must not keep us waiting for the flush.
        self.set_timer(Timer::Close, self.now + self.config.close_timeout);
    }

    /// Fails the connection for a peer violation: close frame with the mapped code, then drop.
    fn fail_protocol(&mut self, e: ProtocolError) {
        let code = e.close_code();
        let reason = e.to_string();
        self.fail_local(code, &reason, e.into(), Transport::CloseAfterFlush);
    }

    fn fail_local(
        &mut self,
        code: CloseCode,
        reason: &str,
        error: ConnectionError,
        transport: Transport,
    ) {
        if self.is_closed() {
            return;
        }
        let mut reason = reason.to_owned();
        truncate_utf8(&mut reason, MAX_REASON_LEN);
        if matches!(self.state, State::Open) {
            let mut payload = Vec::with_capacity(2 + reason.len());
            ClosePayload::Code(code, reason.clone()).encode(&mut payload);
            self.write_frame(OpCode::Close, true, 0, &payload);
        }
        let (code, reason) = match (&self.state, self.sent_close()) {
            (State::Closing, Some(sent)) => sent.clone(),
            _ => (code.as_u16(), reason),
        };
        self.incoming = None;
        self.inbuf = Vec::new();
        self.inpos = 0;
        if transport == Transport::CloseNow {
            self.transport = Transport::CloseNow;
        } else {
            self.enter_close_after_flush();
        }
        self.finish(ClosedBy::Local, code, reason, Some(error), false);
    }

    /// Enters the terminal state and emits the one `Closed` event.
    fn finish(
        &mut self,
        by: ClosedBy,
        code: u16,
        reason: String,
        error: Option<ConnectionError>,
        clean: bool,
    ) {
        if self.is_closed() {
            return;
        }
        self.state = State::Closed;
        self.incoming = None;
        // Messages decoded ahead are input that a close now would have left undecoded.
        self.events.drop_back(self.ahead.into());
        self.ahead = 0;
        if self.timer_kind != Timer::Close {
            self.timer = None;
        }
        self.control = Vec::new();
        if let Some(d) = &mut self.deflate {
            d.scratch = Vec::new();
        }
        if self.transport == Transport::CloseNow {
            self.out.clear();
        }
        self.events.push_back(Event::Closed(Box::new(Closed {
            by,
            code,
            reason,
            error,
            clean,
        })));
    }

    // ----- frames out -----

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_message(DataKind::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_message(DataKind::Binary, data)
    }

    /// Sends a message of either kind.
    pub fn send(&mut self, message: &Message) -> Result<(), Error> {
        self.send_message(message.kind(), message.as_bytes())
    }

    /// Sends a message it may keep: a server queues a large uncompressed payload as it is,
    /// behind its header, instead of copying it (an echo of a 16 MiB message then costs no copy
    /// and no fresh memory).
    pub fn send_owned(&mut self, message: Message) -> Result<(), Error> {
        let len = message.as_bytes().len();
        let zero_copy = self.role == Role::Server
            && len >= ZERO_COPY_MIN
            && len <= self.config.outgoing_frame_size
            && self.deflate.is_none()
            && self.sending_stream.is_none()
            && self.check_can_send_data().is_ok();
        if !zero_copy {
            let result = self.send(&message);
            // Copied into the output: the next small message that arrives can have its buffer.
            reuse::give_message(message.into_bytes());
            return result;
        }
        self.queue_payload(message)
    }

    /// [`Self::send_owned`]'s queueing of a payload as it is: out of line, so that the copying
    /// path of small messages stays small.
    #[inline(never)]
    fn queue_payload(&mut self, message: Message) -> Result<(), Error> {
        let len = message.as_bytes().len();
        self.admit(self.framed_len(len))?;
        let kind = message.kind();
        let payload = message.into_bytes();
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: kind.opcode(),
            mask: None,
            payload_len: len as u64,
        };
        self.out.append(|buf| header.encode(buf));
        self.out.push_owned(payload);
        Ok(())
    }

    fn check_can_send_data(&self) -> Result<(), Error> {
        match self.state {
            State::Open => Ok(()),
            State::Closing | State::Closed if self.sent_close().is_some() => {
                Err(Error::AlreadyClosing)
            }
            _ => Err(Error::NotOpen),
        }
    }

    /// Bytes a payload takes once split into frames of `outgoing_frame_size`, headers included.
    fn framed_len(&self, payload: usize) -> usize {
        let max = self.config.outgoing_frame_size.max(1);
        // One frame, the common case, without the division.
        if payload <= max {
            return payload + MAX_HEADER_LEN;
        }
        payload + payload.div_ceil(max) * MAX_HEADER_LEN
    }

    /// Applies the backpressure policy before queueing `len` more bytes.
    fn admit(&mut self, len: usize) -> Result<(), Error> {
        if self.out.is_empty() || self.out.len() + len <= self.config.max_buffered_output {
            return Ok(());
        }
        if self.config.backpressure == Backpressure::Close {
            self.fail_local(
                CloseCode::POLICY_VIOLATION,
                "output buffer limit exceeded",
                ConnectionError::OutputOverflow,
                Transport::CloseAfterFlush,
            );
        }
        Err(Error::BufferFull)
    }

    fn send_message(&mut self, kind: DataKind, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send_data()?;
        if self.sending_stream.is_some() {
            return Err(Error::StreamState);
        }
        if self.deflate.is_none() {
            self.admit(self.framed_len(payload.len()))?;
            self.write_data(kind.opcode(), payload, 0, true);
            return Ok(());
        }
        self.send_compressed(kind, payload)
    }

    /// [`Self::send_message`] with permessage-deflate on: out of line, so that the plain path
    /// stays small.
    #[inline(never)]
    fn send_compressed(&mut self, kind: DataKind, payload: &[u8]) -> Result<(), Error> {
        // Without deflate (never so from send_message) the payload goes out as it is.
        let (compressed, use_deflate) = match self.deflate.as_mut() {
            Some(d) => {
                let mut scratch = std::mem::take(&mut d.scratch);
                scratch.clear();
                let used = d.codec.compress(payload, &mut scratch);
                (scratch, used)
            }
            None => (Vec::new(), false),
        };
        let body: &[u8] = if use_deflate { &compressed } else { payload };
        let result = self.admit(self.framed_len(body.len())).map(|()| {
            self.write_data(
                kind.opcode(),
                body,
                if use_deflate { RSV1 } else { 0 },
                true,
            );
        });
        if let Some(d) = self
            .deflate
            .as_mut()
            .filter(|_| compressed.capacity() <= 64 << 10)
        {
            d.scratch = compressed;
        }
        result
    }

    /// Writes a data message, split into frames of at most `outgoing_frame_size` bytes.
    #[inline(always)]
    fn write_data(&mut self, opcode: OpCode, payload: &[u8], rsv: u8, fin: bool) {
        let max = self.config.outgoing_frame_size.max(1);
        if payload.len() <= max {
            self.write_frame(opcode, fin, rsv, payload);
            return;
        }
        self.write_fragmented(opcode, payload, rsv, fin, max);
    }

    /// [`Self::write_data`] for a payload over `max`: out of line, as it is rarely needed.
    #[inline(never)]
    fn write_fragmented(&mut self, opcode: OpCode, payload: &[u8], rsv: u8, fin: bool, max: usize) {
        let mut chunks = payload.chunks(max).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let op = if first { opcode } else { OpCode::Continuation };
            self.write_frame(op, fin && last, if first { rsv } else { 0 }, chunk);
            first = false;
        }
    }

    /// Encodes one frame into the output buffer, masking it in place for a client.
    #[inline(always)]
    fn write_frame(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        if self.role == Role::Server && payload.len() < 126 {
            // The usual reply: a two-byte header, unmasked.
            let head = [first_byte(fin, rsv, opcode), payload.len() as u8];
            self.out.append(|buf| {
                buf.reserve(2 + payload.len());
                buf.extend_from_slice(&head);
                buf.extend_from_slice(payload);
            });
            return;
        }
        self.write_frame_general(opcode, fin, rsv, payload);
    }

    /// [`Self::write_frame`] for a client, or a payload from 126 bytes: out of line, so that
    /// the small server reply stays a few instructions.
    #[inline(never)]
    fn write_frame_general(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let mask = self
            .rare
            .as_mut()
            .and_then(|r| r.rng.as_mut())
            .map(|r| r.mask_key());
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode_to(&mut head);
        self.out.append(|buf| {
            let start = buf.len();
            buf.reserve(MAX_HEADER_LEN + payload.len());
            // The whole array, then cut to size: a copy of fixed size is a few moves, where
            // one of the header's own length is a call to memcpy.
            buf.extend_from_slice(&head);
            buf.truncate(start + head_len);
            buf.extend_from_slice(payload);
            if let Some(k) = mask {
                apply_mask(&mut buf[start + head_len..], k, 0);
            }
        });
    }

    /// Queues a pre-encoded frame shared with other connections (server only).
    pub fn send_shared(&mut self, frame: &SharedFrame) -> Result<(), Error> {
        if self.role == Role::Client {
            return Err(Error::SharedFrameFromClient);
        }
        self.check_can_send_data()?;
        if self.sending_stream.is_some() {
            return Err(Error::StreamState);
        }
        self.admit(frame.len())?;
        self.out.push_shared(frame);
        Ok(())
    }

    /// Streams a message of unknown size: the first call starts a message of `kind`, later calls
    /// continue it (their `kind` is ignored), and `fin` ends it. Fragments are not compressed.
    /// Control frames may be sent between fragments.
    pub fn send_fragment(&mut self, kind: DataKind, data: &[u8], fin: bool) -> Result<(), Error> {
        self.check_can_send_data()?;
        self.admit(self.framed_len(data.len()))?;
        let opcode = if self.sending_stream.is_some() {
            OpCode::Continuation
        } else {
            kind.opcode()
        };
        if self.sending_stream.is_none() && !fin {
            self.sending_stream = Some(kind);
        } else if fin {
            self.sending_stream = None;
        }
        if data.len() <= self.config.outgoing_frame_size.max(1) {
            self.write_frame(opcode, fin, 0, data);
        } else {
            self.write_data(opcode, data, 0, fin);
        }
        Ok(())
    }

    /// Sends a ping (payload of at most 125 bytes). Never dropped by backpressure.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong (payload of at most 125 bytes).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send_data()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlPayloadTooLong);
        }
        self.write_frame(opcode, true, 0, payload);
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason` (at most 123 bytes). Nothing more can
    /// be sent afterwards; data still arriving is delivered until the peer's close frame.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.check_can_send_data()?;
        if reason.len() > MAX_REASON_LEN {
            return Err(Error::ReasonTooLong);
        }
        let mut payload = Vec::with_capacity(2 + reason.len());
        ClosePayload::Code(code, reason.to_owned()).encode(&mut payload);
        self.write_frame(OpCode::Close, true, 0, &payload);
        self.rare_mut().sent_close = Some((code.as_u16(), reason.to_owned()));
        self.sending_stream = None;
        self.state = State::Closing;
        self.set_timer(Timer::Close, self.now + self.config.close_timeout);
        Ok(())
    }

    /// Approximate heap bytes held by this connection's buffers (for memory accounting).
    pub fn buffer_capacity(&self) -> usize {
        self.inbuf.capacity()
            + self.control.capacity()
            + self.deflate.as_ref().map_or(0, |d| d.scratch.capacity())
            + self.incoming.as_ref().map_or(0, |i| i.buf.capacity())
    }

    /// Time since the last byte from the peer, as of the last input.
    pub fn idle_for(&self) -> Duration {
        self.now.saturating_duration_since(self.last_rx)
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

mod events;
mod message_buf;
mod predicted;
pub use predicted::PredictedRead;
#[cfg(test)]
mod tests;
