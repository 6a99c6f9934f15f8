//! The per-message codec (RFC 7692 §7.2) on top of `miniz_oxide`, with lazy and shared buffers.

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressionStrategy, CompressorOxide,
    TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::core::{
    decompress as tinfl_decompress, inflate_flags, DecompressorOxide,
};
use miniz_oxide::inflate::TINFLStatus;

use super::negotiate::clamp_bits;
use super::{DeflateConfig, DeflateParams, MAX_WINDOW_BITS};
use crate::error::ProtocolError;
use crate::Role;

/// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 strips it from the wire and
/// §7.2.2 appends it again before inflating.
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The inflater always keeps a full 32 KiB window, whatever window was negotiated for the peer:
/// zlib has no raw-deflate window of 2^8, so zlib-based peers (Node ws, for one) compress with
/// 2^9 when 8 is agreed, and accepting more than agreed costs nothing but this buffer.
const RING_SIZE: usize = 1 << MAX_WINDOW_BITS;

/// Heap bytes behind one `Box<CompressorOxide>`: the box itself plus `miniz_oxide` 0.8's internal
/// boxes (output buffer 85,196, dictionary 33,026, hash chains 2 × 65,536, Huffman tables 4,320),
/// measured with a counting allocator: 319,326 bytes in total on x86-64.
pub(crate) const COMPRESSOR_HEAP_BYTES: usize =
    std::mem::size_of::<CompressorOxide>() + 85_196 + 33_026 + 2 * 65_536 + 4_320;

/// Heap bytes behind one `Box<Inflater>`.
pub(crate) const INFLATER_HEAP_BYTES: usize = std::mem::size_of::<Inflater>() + RING_SIZE;

/// A raw-deflate decompressor writing into its own 32 KiB ring, which doubles as the LZ77 window.
///
/// Using `miniz_oxide`'s core decoder directly (rather than `InflateState`) lets us copy out
/// exactly what each step produced, so the caller's buffer only ever grows by bytes that passed
/// the size check, and lets a final block (BFINAL, RFC 7692 §7.2.3.4) be followed by more blocks
/// without losing the window.
struct Inflater {
    decomp: DecompressorOxide,
    ring: Vec<u8>,
    pos: usize,
    /// The input so far ended exactly with a final block.
    stream_ended: bool,
}

impl Inflater {
    fn new_boxed() -> Box<Inflater> {
        Box::new(Inflater {
            decomp: DecompressorOxide::new(),
            ring: vec![0; RING_SIZE],
            pos: 0,
            stream_ended: false,
        })
    }

    /// Back to a fresh stream. The ring is zeroed because `miniz_oxide`'s wrapping decoder does not
    /// reject distances reaching before the start of the stream: without zeroing, a crafted
    /// message could read the previous user's plaintext out of a pooled inflater.
    fn reset(&mut self) {
        self.decomp.init();
        self.pos = 0;
        self.stream_ended = false;
        self.ring.fill(0);
    }

    /// Inflates `input`, appending to `out`, never letting `out.len()` exceed `max_len`.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        // Raw deflate (no zlib header), no checksum, more input may follow in later frames.
        const FLAGS: u32 =
            inflate_flags::TINFL_FLAG_HAS_MORE_INPUT | inflate_flags::TINFL_FLAG_IGNORE_ADLER32;
        self.stream_ended = false;
        loop {
            let (status, used, produced) =
                tinfl_decompress(&mut self.decomp, input, &mut self.ring, self.pos, FLAGS);
            let fresh = self
                .ring
                .get(self.pos..self.pos + produced)
                .ok_or(ProtocolError::InvalidCompressedData)?;
            if produced > max_len.saturating_sub(out.len()) {
                return Err(ProtocolError::MessageTooLarge { limit: max_len });
            }
            if out.capacity() - out.len() < produced {
                // Amortised doubling, but never past max_len: a message that ends up at the limit
                // must not have made us allocate twice the limit.
                let target = (out.len() + produced).max(out.capacity().saturating_mul(2));
                out.reserve_exact(target.min(max_len) - out.len());
            }
            out.extend_from_slice(fresh);
            self.pos = (self.pos + produced) & (RING_SIZE - 1);
            input = input.get(used..).unwrap_or_default();
            match status {
                TINFLStatus::NeedsMoreInput => return Ok(()),
                TINFLStatus::HasMoreOutput => {}
                TINFLStatus::Done => {
                    // A final block ends the DEFLATE stream, but RFC 7692 §7.2.3.4 lets more
                    // blocks follow in the message; start a new stream over the same window.
                    self.decomp.init();
                    if input.is_empty() {
                        self.stream_ended = true;
                        return Ok(());
                    }
                }
                _ => return Err(ProtocolError::InvalidCompressedData),
            }
            if used == 0 && produced == 0 {
                // Cannot happen with a well-behaved decoder; never spin on it.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }
}

/// Compressors and inflaters for messages that keep no context, lent for one message at a time
/// to any connection of the process. Per thread would mean, in a thread-per-client server, one
/// of each per client: 355 KiB each, and cold in the cache at every message (a full flush
/// clears 128 KiB of hash chains; cold, that clearing took a third of a ws-std deflate echo's
/// CPU). Lent from one pool, the one given back last, still warm, serves the next message.
struct Idle {
    /// Each with the level it was last set to.
    compressors: Vec<(Box<CompressorOxide>, u8)>,
    inflaters: Vec<Box<Inflater>>,
}

/// Most compressors, and most inflaters, kept idle: about as many as messages are compressed at
/// once, one per core that runs connections, so 2.8 MiB at most.
const MAX_IDLE: usize = 8;

process_wide!(
    /// Runs `f` on the idle compressors and inflaters.
    with_idle: Idle = Idle {
        compressors: Vec::new(),
        inflaters: Vec::new(),
    }
);

pub(crate) fn new_compressor(level: u8) -> Box<CompressorOxide> {
    // Negative window bits select raw deflate (no zlib header), as RFC 7692 requires.
    let flags = create_comp_flags_from_zip_params(
        level.into(),
        -i32::from(MAX_WINDOW_BITS),
        CompressionStrategy::Default as i32,
    );
    Box::new(CompressorOxide::new(flags))
}

/// A compressor with no history, at `level`.
fn take_compressor(level: u8) -> Box<CompressorOxide> {
    match with_idle(|idle| idle.compressors.pop()) {
        Some((mut compressor, was)) => {
            if was != level {
                compressor.set_compression_level_raw(level);
            }
            compressor
        }
        None => new_compressor(level),
    }
}

/// Takes back a compressor lent by [`take_compressor`]. `clean`: its last message ended with a
/// full flush, which forgets the history (a reset clears ~310 KiB, a full flush 128 KiB);
/// otherwise it is reset here.
fn give_back_compressor(mut compressor: Box<CompressorOxide>, level: u8, clean: bool) {
    if !clean {
        compressor.reset();
    }
    with_idle(|idle| {
        if idle.compressors.len() < MAX_IDLE {
            idle.compressors.push((compressor, level));
        }
    });
}

fn take_inflater() -> Box<Inflater> {
    with_idle(|idle| idle.inflaters.pop()).unwrap_or_else(Inflater::new_boxed)
}

fn give_back_inflater(mut inflater: Box<Inflater>) {
    inflater.reset();
    with_idle(|idle| {
        if idle.inflaters.len() < MAX_IDLE {
            idle.inflaters.push(inflater);
        }
    });
}

/// Frees the idle compressors and inflaters that connections without context borrow from (the
/// next compressed message allocates one again).
pub fn release_shared_buffers() {
    let idle = with_idle(|idle| {
        (
            std::mem::take(&mut idle.compressors),
            std::mem::take(&mut idle.inflaters),
        )
    });
    // Freed outside the lock.
    drop(idle);
}

/// Heap bytes held idle by the compressors and inflaters that connections without context
/// borrow from (not counted by any connection's [`PerMessageDeflate::heap_bytes`]).
#[must_use]
pub fn shared_buffer_bytes() -> usize {
    with_idle(|idle| {
        idle.compressors.len() * COMPRESSOR_HEAP_BYTES + idle.inflaters.len() * INFLATER_HEAP_BYTES
    })
}

/// Compresses `payload` as raw deflate into `out`, in independent pieces of at most `chunk_len`
/// bytes, and strips the final `00 00 ff ff`.
///
/// Every piece but the last ends with a full flush, which byte-aligns the output and forgets the
/// history (`miniz_oxide` clears its hash chains and limits match distances to what it has seen
/// since), so no back-reference reaches outside its piece: with pieces of at most 2^N bytes no
/// distance exceeds 2^N − 1, which honours a negotiated window of N bits even though
/// `miniz_oxide`'s own window is fixed at 32 KiB. The last piece ends with `last_flush`.
///
/// Returns `false`, with `out` possibly extended, as soon as the output would exceed `budget`
/// bytes (tail included) or the compressor fails; the compressor must then be reset.
pub(crate) fn deflate_chunks(
    compressor: &mut CompressorOxide,
    payload: &[u8],
    chunk_len: usize,
    last_flush: TDEFLFlush,
    out: &mut Vec<u8>,
    budget: usize,
) -> bool {
    let start = out.len();
    let mut chunks = payload.chunks(chunk_len.max(1)).peekable();
    while let Some(chunk) = chunks.next() {
        let flush = if chunks.peek().is_some() {
            TDEFLFlush::Full
        } else {
            last_flush
        };
        let mut rest = chunk;
        loop {
            let (status, used) = compress_to_output(compressor, rest, flush, |bytes| {
                if out.len() - start + bytes.len() > budget {
                    return false;
                }
                out.extend_from_slice(bytes);
                true
            });
            if status != TDEFLStatus::Okay {
                return false;
            }
            rest = rest.get(used..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            if used == 0 {
                return false;
            }
        }
    }
    if !out[start..].ends_with(&TAIL) {
        return false;
    }
    out.truncate(out.len() - TAIL.len());
    true
}

/// Per-connection compression state. Allocates nothing until the first compressed message.
///
/// See the [module docs](super) for memory use and how it is shared between connections.
pub struct PerMessageDeflate {
    params: DeflateParams,
    role: Role,
    level: u8,
    threshold: usize,
    /// Window bits we compress under: the agreed value for our direction, further limited by our
    /// own config.
    send_window_bits: u8,
    /// Our compressor's history carries over to the next message (own compressor).
    send_keeps_context: bool,
    /// The peer's compressor keeps its history, so our inflater must too.
    recv_keeps_context: bool,
    compressor: Option<Box<CompressorOxide>>,
    inflater: Option<Box<Inflater>>,
    /// Compressed bytes of the current message have been received.
    receiving: bool,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("params", &self.params)
            .field("role", &self.role)
            .field("send_window_bits", &self.send_window_bits)
            .field("heap_bytes", &self.heap_bytes())
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// State for one connection in `role` with the agreed `params`.
    ///
    /// `config` supplies the level and threshold, and, for the side we send on, a window limit
    /// that may be smaller than agreed (`server_max_window_bits` for a server,
    /// `client_max_window_bits` for a client): compressing with a smaller window is always allowed.
    pub fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> PerMessageDeflate {
        let (agreed_bits, own_limit, send_no_context, recv_no_context) = match role {
            Role::Server => (
                params.server_max_window_bits,
                config.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                config.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        let send_window_bits =
            clamp_bits(agreed_bits).min(own_limit.map_or(MAX_WINDOW_BITS, clamp_bits));
        PerMessageDeflate {
            params,
            role,
            level: config.level.min(10),
            threshold: config.threshold,
            send_window_bits,
            // A window below 15 is honoured by compressing independent pieces (see
            // `deflate_chunks`), which already resets the history between messages.
            send_keeps_context: !send_no_context && send_window_bits == MAX_WINDOW_BITS,
            recv_keeps_context: !recv_no_context,
            compressor: None,
            inflater: None,
            receiving: false,
        }
    }

    /// The agreed parameters.
    #[must_use]
    pub fn params(&self) -> DeflateParams {
        self.params
    }

    /// The window (in bits) our compressed messages stay within: the agreed value for our sending
    /// direction, or less when our config asks for less.
    #[must_use]
    pub fn send_window_bits(&self) -> u8 {
        self.send_window_bits
    }

    /// Approximate heap bytes this connection holds now: its own compressor (~312 KiB, only while
    /// our sending side keeps context) and its inflater (~43 KiB, while the peer keeps context, or
    /// in the middle of a compressed message). The shared pool is not included (see
    /// [`shared_buffer_bytes`]).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.compressor
            .as_ref()
            .map_or(0, |_| COMPRESSOR_HEAP_BYTES)
            + self.inflater.as_ref().map_or(0, |_| INFLATER_HEAP_BYTES)
    }

    /// Compresses a whole message payload, appending to `out` without the trailing
    /// `00 00 ff ff`. Returns `false` (and leaves `out` as it was) when the message is better
    /// sent uncompressed (below the threshold, or not smaller).
    ///
    /// `true` means `out` gained the complete payload of a compressed message: send it as is,
    /// with RSV1 on the first frame (it may be fragmented anywhere). `false` means send `payload`
    /// itself, without RSV1; that never disturbs the peer's context. Empty payloads and level 0
    /// are never compressed.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if self.level == 0 || payload.is_empty() || payload.len() < self.threshold {
            return false;
        }
        let start = out.len();
        // The output with its tail must stay under payload.len() + 4 to be worth sending; stopping
        // there also bounds the work spent on incompressible data.
        let budget = payload.len() + TAIL.len() - 1;
        let compressed = if self.send_keeps_context {
            let level = self.level;
            let compressor = self.compressor.get_or_insert_with(|| new_compressor(level));
            let ok = deflate_chunks(
                compressor,
                payload,
                usize::MAX,
                TDEFLFlush::Sync,
                out,
                budget,
            );
            if !ok {
                // The peer will not see this message, so our history must not contain it either.
                compressor.reset();
            }
            ok
        } else {
            self.compress_shared(payload, out, budget)
        };
        if !compressed {
            out.truncate(start);
        }
        debug_assert!(!compressed || out.len() - start < payload.len());
        compressed
    }

    /// Compression without context: a compressor lent from the process's pool (see [`Idle`]),
    /// each message ending with a full flush, so that it is ready for any connection's next
    /// message without a reset.
    fn compress_shared(&self, payload: &[u8], out: &mut Vec<u8>, budget: usize) -> bool {
        let mut compressor = take_compressor(self.level);
        let ok = deflate_chunks(
            &mut compressor,
            payload,
            1usize << self.send_window_bits,
            TDEFLFlush::Full,
            out,
            budget,
        );
        give_back_compressor(compressor, self.level, ok);
        ok
    }

    /// Inflates the next chunk of a compressed message, appending to `out`. Fails with
    /// `MessageTooLarge` as soon as `out` would exceed `max_len`, and with
    /// `InvalidCompressedData` on a bad stream.
    ///
    /// Feed every payload byte of every frame of the message, in order and in pieces of any size
    /// (unmasked); then call [`finish_message`](Self::finish_message). `max_len` bounds
    /// `out.len()`, so pass the message limit when `out` holds the whole message. `out` never
    /// holds more than `max_len` bytes nor, when it started empty, more than `max_len` capacity.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooLarge`] (close code 1009) and
    /// [`ProtocolError::InvalidCompressedData`] (1002). Both are fatal for the connection: the
    /// inflater is left in an unusable state.
    pub fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        if input.is_empty() {
            return Ok(());
        }
        self.receiving = true;
        self.inflater
            .get_or_insert_with(take_inflater)
            .inflate(input, out, max_len)
    }

    /// Ends a compressed message: inflates the implicit `00 00 ff ff` tail and resets the
    /// decompressor when the peer does not keep its context.
    ///
    /// Call it once after the last frame (FIN) of every compressed message. A compressed message
    /// with an empty payload is accepted as an empty message and leaves the context untouched; so
    /// is a message whose data ends exactly with a final (BFINAL) block, to which the tail would
    /// not belong.
    /// When the peer keeps no context, the inflater goes back to the shared pool, so an idle
    /// connection holds no inflater.
    ///
    /// # Errors
    ///
    /// As [`decompress`](Self::decompress): the tail can still complete output or reveal a bad
    /// stream.
    pub fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        let receiving = std::mem::take(&mut self.receiving);
        let result = match self.inflater.as_mut() {
            // A message that ended with a final block and nothing after it (a peer using a
            // finishing flush) is complete: the tail would only start a bogus stored block that
            // swallows the next message. zlib-based receivers ignore data after the end too.
            Some(inflater) if receiving && !inflater.stream_ended => {
                inflater.inflate(&TAIL, out, max_len)
            }
            _ => Ok(()),
        };
        if !self.recv_keeps_context {
            if let Some(inflater) = self.inflater.take() {
                if result.is_ok() {
                    give_back_inflater(inflater);
                }
            }
        }
        result
    }
}
