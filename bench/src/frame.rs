//! Minimal WebSocket client framing for the load generator: building masked
//! client frames once, and an incremental parser for (unmasked) server frames
//! that verifies payloads while they stream in.

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// Continuation frame opcode.
pub const OP_CONT: u8 = 0x0;
/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// A small, fast, non-cryptographic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator (a zero seed is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// Appends a complete, masked, single-frame client message to `out`.
pub fn push_client_frame(out: &mut Vec<u8>, opcode: u8, rsv1: bool, payload: &[u8], mask: [u8; 4]) {
    let len = payload.len();
    out.reserve(len + 14);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends an unmasked, final, uncompressed server frame: what a server echoes `payload` as
/// (the length in the fewest bytes, as RFC 6455 requires).
pub fn push_server_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let len = payload.len();
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Compresses `data` as one permessage-deflate message without context
/// takeover: raw deflate, sync flush, trailing `00 00 ff ff` removed.
pub fn deflate_message(data: &[u8]) -> Vec<u8> {
    let flags = create_comp_flags_from_zip_params(6, -15, 0);
    let mut c = Box::new(CompressorOxide::new(flags));
    let mut out = vec![0u8; data.len() / 2 + 1024];
    let (mut inp, mut outp) = (0, 0);
    loop {
        let (st, i, o) = compress(&mut c, &data[inp..], &mut out[outp..], TDEFLFlush::Sync);
        assert!(
            matches!(st, TDEFLStatus::Okay | TDEFLStatus::Done),
            "deflate failed: {st:?}"
        );
        inp += i;
        outp += o;
        if inp == data.len() && outp < out.len() {
            break;
        }
        if outp == out.len() {
            out.resize(out.len() * 2, 0);
        }
    }
    out.truncate(outp);
    assert!(
        out.ends_with(&[0, 0, 0xff, 0xff]),
        "sync flush marker missing"
    );
    out.truncate(outp - 4);
    out
}

/// Reusable permessage-deflate inflater (no context takeover) that checks
/// the result against an expected payload.
pub struct Inflater {
    d: Box<DecompressorOxide>,
    out: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// Creates the inflater; its output buffer grows to the largest message.
    pub fn new() -> Self {
        Self {
            d: Box::default(),
            out: Vec::new(),
        }
    }

    /// Inflates one message (`compressed` gets the `00 00 ff ff` tail
    /// appended in place) and compares it with `expected`.
    pub fn check(&mut self, compressed: &mut Vec<u8>, expected: &[u8]) -> Result<(), String> {
        compressed.extend_from_slice(&[0, 0, 0xff, 0xff]);
        if self.out.len() < expected.len() + 1 {
            self.out.resize(expected.len() + 1, 0);
        }
        self.d.init();
        let out = &mut self.out[..expected.len() + 1];
        let flags = TINFL_FLAG_HAS_MORE_INPUT | TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        let (st, read, written) = decompress(&mut self.d, compressed, out, 0, flags);
        match st {
            TINFLStatus::Done | TINFLStatus::NeedsMoreInput if read == compressed.len() => {}
            st => {
                return Err(format!(
                    "inflate failed: {st:?} (read {read} of {})",
                    compressed.len()
                ))
            }
        }
        if written != expected.len() || out[..written] != *expected {
            return Err(format!(
                "inflated echo differs: {written} bytes, expected {}",
                expected.len()
            ));
        }
        Ok(())
    }
}

/// What the parser reports.
pub enum Event<'a> {
    /// A complete data message. `payload` is `None` when the payload was
    /// already verified against `expected` while streaming; otherwise it is
    /// the buffered payload (still compressed if `compressed`).
    Message {
        /// Opcode of the first frame (text or binary).
        opcode: u8,
        /// RSV1 (permessage-deflate) was set on the first frame.
        compressed: bool,
        /// Buffered payload, or `None` when verified while streaming.
        payload: Option<&'a mut Vec<u8>>,
    },
    /// A control frame (ping, pong, close).
    Control {
        /// The control opcode.
        opcode: u8,
        /// Its payload (at most 125 bytes).
        payload: &'a [u8],
    },
}

/// Incremental parser for server-to-client frames.
pub struct Rx {
    hdr: [u8; 14],
    hdr_len: usize,
    hdr_need: usize,
    in_payload: bool,
    remaining: u64,
    frame_opcode: u8,
    frame_fin: bool,
    in_msg: bool,
    msg_opcode: u8,
    msg_compressed: bool,
    msg_len: u64,
    streaming: bool,
    max_msg: u64,
    buf: Vec<u8>,
    ctrl: Vec<u8>,
}

impl Rx {
    /// A parser that rejects messages larger than `max_msg` bytes.
    pub fn new(max_msg: u64) -> Self {
        Self {
            hdr: [0; 14],
            hdr_len: 0,
            hdr_need: 2,
            in_payload: false,
            remaining: 0,
            frame_opcode: 0,
            frame_fin: false,
            in_msg: false,
            msg_opcode: 0,
            msg_compressed: false,
            msg_len: 0,
            streaming: false,
            max_msg,
            buf: Vec::new(),
            ctrl: Vec::new(),
        }
    }

    /// Takes from the front of `data` the whole frames that are exactly `frame`, while no frame
    /// or message is in progress, and returns how many: an echo's usual reply checked with one
    /// compare, as raw mode checks its bytes, so that decoding does not make the load
    /// generator dearer per message for a WebSocket server than for the raw echo. Whatever
    /// does not match is left for [`Rx::feed`].
    pub fn take_exact(&mut self, data: &mut &[u8], frame: &[u8]) -> usize {
        if self.in_payload || self.in_msg || self.hdr_len != 0 || frame.is_empty() {
            return 0;
        }
        let mut n = 0;
        while let Some(rest) = data.strip_prefix(frame) {
            *data = rest;
            n += 1;
        }
        n
    }

    /// Feeds received bytes. Uncompressed messages are compared with
    /// `expected` as they stream in when it is given (echo); otherwise they
    /// are buffered and handed to `on` whole.
    pub fn feed<F>(
        &mut self,
        mut data: &[u8],
        expected: Option<&[u8]>,
        mut on: F,
    ) -> Result<(), String>
    where
        F: FnMut(Event<'_>) -> Result<(), String>,
    {
        while !data.is_empty() {
            if !self.in_payload {
                let take = (self.hdr_need - self.hdr_len).min(data.len());
                self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[..take]);
                self.hdr_len += take;
                data = &data[take..];
                if self.hdr_len < self.hdr_need {
                    return Ok(());
                }
                if self.hdr_need == 2 {
                    if self.hdr[1] & 0x80 != 0 {
                        return Err("server frame is masked".into());
                    }
                    let ext = match self.hdr[1] & 0x7f {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    if ext > 0 {
                        self.hdr_need = 2 + ext;
                        continue;
                    }
                }
                self.start_frame(expected)?;
                if self.remaining == 0 {
                    self.end_frame(expected, &mut on)?;
                }
            } else {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                let chunk = &data[..n];
                data = &data[n..];
                if self.frame_opcode >= OP_CLOSE {
                    self.ctrl.extend_from_slice(chunk);
                } else {
                    if self.streaming {
                        let exp = expected.unwrap_or(&[]);
                        let pos = self.msg_len as usize;
                        if pos + n > exp.len() || exp[pos..pos + n] != *chunk {
                            return Err(mismatch(exp, pos, chunk));
                        }
                    } else {
                        self.buf.extend_from_slice(chunk);
                    }
                    self.msg_len += n as u64;
                }
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.end_frame(expected, &mut on)?;
                }
            }
        }
        Ok(())
    }

    fn start_frame(&mut self, expected: Option<&[u8]>) -> Result<(), String> {
        let b0 = self.hdr[0];
        let len = match self.hdr_need {
            2 => u64::from(self.hdr[1] & 0x7f),
            4 => u64::from(u16::from_be_bytes([self.hdr[2], self.hdr[3]])),
            _ => u64::from_be_bytes(self.hdr[2..10].try_into().unwrap()),
        };
        self.hdr_len = 0;
        self.hdr_need = 2;
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        let opcode = b0 & 0x0f;
        if b0 & 0x30 != 0 {
            return Err(format!(
                "server frame has RSV2/RSV3 set (byte 0 = {b0:#04x})"
            ));
        }
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > 125 || rsv1 {
                    return Err(format!("bad control frame (opcode {opcode}, len {len})"));
                }
                self.ctrl.clear();
            }
            OP_CONT => {
                if !self.in_msg {
                    return Err("continuation frame outside a message".into());
                }
                if rsv1 {
                    return Err("RSV1 on a continuation frame".into());
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.in_msg {
                    return Err("new data frame inside a fragmented message".into());
                }
                self.in_msg = true;
                self.msg_opcode = opcode;
                self.msg_compressed = rsv1;
                self.msg_len = 0;
                self.streaming = expected.is_some() && !rsv1;
                self.buf.clear();
            }
            _ => return Err(format!("reserved opcode {opcode}")),
        }
        if opcode < OP_CLOSE && self.msg_len + len > self.max_msg {
            return Err(format!(
                "server message too large ({} bytes, limit {})",
                self.msg_len + len,
                self.max_msg
            ));
        }
        self.frame_opcode = opcode;
        self.frame_fin = fin;
        self.remaining = len;
        self.in_payload = true;
        Ok(())
    }

    fn end_frame<F>(&mut self, expected: Option<&[u8]>, on: &mut F) -> Result<(), String>
    where
        F: FnMut(Event<'_>) -> Result<(), String>,
    {
        self.in_payload = false;
        if self.frame_opcode >= OP_CLOSE {
            return on(Event::Control {
                opcode: self.frame_opcode,
                payload: &self.ctrl,
            });
        }
        if !self.frame_fin {
            return Ok(());
        }
        self.in_msg = false;
        if self.streaming {
            let want = expected.map_or(0, <[u8]>::len) as u64;
            if self.msg_len != want {
                return Err(format!("echo has {} bytes, expected {want}", self.msg_len));
            }
        }
        on(Event::Message {
            opcode: self.msg_opcode,
            compressed: self.msg_compressed,
            payload: if self.streaming {
                None
            } else {
                Some(&mut self.buf)
            },
        })
    }
}

/// Describes the first differing byte between an expected payload and a chunk
/// that was supposed to match it at offset `pos`.
pub fn mismatch(exp: &[u8], pos: usize, chunk: &[u8]) -> String {
    let i = chunk
        .iter()
        .enumerate()
        .position(|(i, b)| exp.get(pos + i) != Some(b))
        .unwrap_or(0);
    format!(
        "payload mismatch at byte {}: got {:#04x}, expected {}",
        pos + i,
        chunk[i],
        exp.get(pos + i)
            .map_or("end of message".to_string(), |b| format!("{b:#04x}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_client_frame(&mut v, opcode, rsv1, payload, [0; 4]);
        // Turn the (zero-masked) client frame into an unmasked server frame.
        if !fin {
            v[0] &= 0x7f;
        }
        v[1] &= 0x7f;
        let hdr = match v[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        v.drain(hdr..hdr + 4);
        v
    }

    #[test]
    fn exact_replies_are_taken_whole_and_the_rest_left_for_feed() {
        for len in [0usize, 64, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut reply = Vec::new();
            push_server_frame(&mut reply, OP_BINARY, &payload);
            assert_eq!(
                reply,
                server_frame(true, false, OP_BINARY, &payload),
                "{len}"
            );
        }
        let mut reply = Vec::new();
        push_server_frame(&mut reply, OP_BINARY, b"abc");
        let other = server_frame(true, false, OP_TEXT, b"abc");
        let input = [&reply[..], &reply[..], &other[..], &reply[..], &reply[..2]].concat();
        let mut rx = Rx::new(1 << 20);
        let mut data = &input[..];
        assert_eq!(rx.take_exact(&mut data, &reply), 2);
        assert_eq!(
            data,
            &input[2 * reply.len()..],
            "stops at the first other frame"
        );
        // In the middle of a frame (here, its header), nothing is taken.
        let mut events = 0;
        rx.feed(&reply[..1], None, |_| Ok(())).unwrap();
        let mut rest = &reply[1..];
        assert_eq!(rx.take_exact(&mut rest, &reply), 0);
        rx.feed(rest, None, |_| {
            events += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(events, 1);
    }

    #[test]
    fn masking_round_trips() {
        let mut v = Vec::new();
        push_client_frame(&mut v, OP_BINARY, false, b"hello", [1, 2, 3, 4]);
        assert_eq!(v[0], 0x82);
        assert_eq!(v[1], 0x85);
        let un: Vec<u8> = v[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i & 3])
            .collect();
        assert_eq!(un, b"hello");
    }

    #[test]
    fn parses_every_split_and_verifies() {
        let mut payload = vec![0u8; 70_000];
        Rng::new(7).fill(&mut payload);
        let mut wire = server_frame(false, false, OP_BINARY, &payload[..100]);
        wire.extend(server_frame(true, false, OP_PING, b"p"));
        wire.extend(server_frame(true, false, OP_CONT, &payload[100..]));
        wire.extend(server_frame(true, false, OP_TEXT, &payload));
        for split in [1usize, 2, 3, 7, 13, 1000, wire.len()] {
            let mut rx = Rx::new(1 << 20);
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                rx.feed(chunk, Some(&payload), |ev| {
                    match ev {
                        Event::Message {
                            opcode, payload, ..
                        } => {
                            assert!(payload.is_none());
                            got.push(opcode);
                        }
                        Event::Control { opcode, payload } => {
                            assert_eq!((opcode, payload), (OP_PING, &b"p"[..]));
                        }
                    }
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(got, vec![OP_BINARY, OP_TEXT]);
        }
    }

    #[test]
    fn detects_mismatch() {
        let wire = server_frame(true, false, OP_BINARY, b"hellp");
        let mut rx = Rx::new(100);
        let err = rx.feed(&wire, Some(b"hello"), |_| Ok(())).unwrap_err();
        assert!(err.contains("byte 4"), "{err}");
    }

    #[test]
    fn deflate_round_trip() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(100);
        let c = deflate_message(&text);
        assert!(c.len() < text.len() / 4);
        let mut wire = server_frame(true, true, OP_BINARY, &c);
        wire.extend(server_frame(true, false, OP_BINARY, &text));
        let mut rx = Rx::new(1 << 20);
        let mut inf = Inflater::new();
        let mut n = 0;
        rx.feed(&wire, Some(&text), |ev| {
            if let Event::Message {
                compressed,
                payload,
                ..
            } = ev
            {
                n += 1;
                match payload {
                    Some(p) => {
                        assert!(compressed);
                        inf.check(p, &text)?;
                    }
                    None => assert!(!compressed),
                }
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        let mut bad = c.clone();
        assert!(inf.check(&mut bad, &text[1..]).is_err());
    }
}
