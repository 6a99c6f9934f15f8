//! Just enough DEFLATE (RFC 1951) for the permessage-deflate tests, written independently of the
//! code under test: an inflater that reports the farthest back-reference it followed (to check
//! that the server honours `server_max_window_bits` and `server_no_context_takeover`), and an
//! encoder of long runs (to build decompression bombs).

/// The tail a permessage-deflate sender strips and the receiver appends (RFC 7692 §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// An inflater that keeps its history across messages (context takeover) or not (make a new
/// one per message).
#[derive(Default)]
pub struct Inflater {
    history: Vec<u8>,
    /// The farthest distance of any back-reference seen so far.
    pub max_distance: usize,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Result<u32, String> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or("compressed data ends inside a block")?;
        let b = (byte >> (self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0;
        for i in 0..n {
            v |= self.bit()? << i;
        }
        Ok(v)
    }

    fn left(&self) -> usize {
        self.data.len() * 8 - self.pos
    }
}

/// A canonical Huffman code: counts per length and symbols in code order.
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut counts = [0u16; 16];
        for &l in lengths {
            counts[l as usize] += 1;
        }
        counts[0] = 0;
        let mut offs = [0u16; 16];
        for i in 1..16 {
            offs[i] = offs[i - 1] + counts[i - 1];
        }
        let mut symbols = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbols[offs[l as usize] as usize] = s as u16;
                offs[l as usize] += 1;
            }
        }
        Huffman { counts, symbols }
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.bit()? as i32;
            let count = i32::from(self.counts[len]);
            if code - count < first {
                return Ok(self.symbols[(index + (code - first)) as usize]);
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err("invalid Huffman code".into())
    }
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

fn fixed_codes() -> (Huffman, Huffman) {
    let mut l = [0u8; 288];
    l[..144].fill(8);
    l[144..256].fill(9);
    l[256..280].fill(7);
    l[280..].fill(8);
    (Huffman::new(&l), Huffman::new(&[5u8; 30]))
}

impl Inflater {
    /// A fresh inflater (no history).
    pub fn new() -> Inflater {
        Inflater::default()
    }

    /// Inflates one message payload (RSV1 frames' data, without the tail), appending the tail
    /// itself. Fails on invalid data or on a back-reference before the start of the history.
    pub fn message(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let mut data = payload.to_vec();
        data.extend_from_slice(&TAIL);
        let mut bits = Bits {
            data: &data,
            pos: 0,
        };
        let start = self.history.len();
        loop {
            if bits.left() < 3 {
                break;
            }
            let last = bits.bit()?;
            match bits.bits(2)? {
                0 => {
                    bits.pos = bits.pos.div_ceil(8) * 8;
                    let len = bits.bits(16)?;
                    let nlen = bits.bits(16)?;
                    if len != !nlen & 0xffff {
                        return Err("stored block length check failed".into());
                    }
                    for _ in 0..len {
                        let b = bits.bits(8)? as u8;
                        self.history.push(b);
                    }
                }
                1 => {
                    let (lit, dist) = fixed_codes();
                    self.codes(&mut bits, &lit, &dist)?;
                }
                2 => {
                    let (lit, dist) = dynamic_codes(&mut bits)?;
                    self.codes(&mut bits, &lit, &dist)?;
                }
                _ => return Err("reserved block type 3".into()),
            }
            if last == 1 {
                break;
            }
        }
        let out = self.history[start..].to_vec();
        // Keep at most the 32 KiB a DEFLATE window can reach.
        if self.history.len() > 1 << 16 {
            self.history.drain(..self.history.len() - (1 << 15));
        }
        Ok(out)
    }

    fn codes(&mut self, bits: &mut Bits<'_>, lit: &Huffman, dist: &Huffman) -> Result<(), String> {
        loop {
            let sym = lit.decode(bits)?;
            match sym {
                0..=255 => self.history.push(sym as u8),
                256 => return Ok(()),
                257..=285 => {
                    let i = usize::from(sym - 257);
                    let len =
                        usize::from(LEN_BASE[i]) + bits.bits(u32::from(LEN_EXTRA[i]))? as usize;
                    let d = usize::from(dist.decode(bits)?);
                    if d >= 30 {
                        return Err(format!("invalid distance code {d}"));
                    }
                    let distance =
                        usize::from(DIST_BASE[d]) + bits.bits(u32::from(DIST_EXTRA[d]))? as usize;
                    if distance > self.history.len() {
                        return Err(format!(
                            "back-reference of {distance} bytes with only {} bytes of history",
                            self.history.len()
                        ));
                    }
                    self.max_distance = self.max_distance.max(distance);
                    for _ in 0..len {
                        let b = self.history[self.history.len() - distance];
                        self.history.push(b);
                    }
                }
                _ => return Err(format!("invalid literal/length symbol {sym}")),
            }
        }
    }
}

fn dynamic_codes(bits: &mut Bits<'_>) -> Result<(Huffman, Huffman), String> {
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let nlen = bits.bits(5)? as usize + 257;
    let ndist = bits.bits(5)? as usize + 1;
    let ncode = bits.bits(4)? as usize + 4;
    let mut cl = [0u8; 19];
    for &i in ORDER.iter().take(ncode) {
        cl[i] = bits.bits(3)? as u8;
    }
    let clh = Huffman::new(&cl);
    let mut lengths = Vec::with_capacity(nlen + ndist);
    while lengths.len() < nlen + ndist {
        let sym = clh.decode(bits)?;
        match sym {
            0..=15 => lengths.push(sym as u8),
            16 => {
                let prev = *lengths.last().ok_or("repeat with no previous length")?;
                let n = 3 + bits.bits(2)? as usize;
                lengths.resize(lengths.len() + n, prev);
            }
            17 => {
                let n = 3 + bits.bits(3)? as usize;
                lengths.resize(lengths.len() + n, 0);
            }
            _ => {
                let n = 11 + bits.bits(7)? as usize;
                lengths.resize(lengths.len() + n, 0);
            }
        }
    }
    if lengths.len() > nlen + ndist {
        return Err("code lengths overrun".into());
    }
    Ok((
        Huffman::new(&lengths[..nlen]),
        Huffman::new(&lengths[nlen..]),
    ))
}

struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        for i in 0..bits {
            self.acc |= ((value >> i) & 1) << self.n;
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    /// Huffman codes go most significant bit first.
    fn put_code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A permessage-deflate payload (tail stripped) that inflates to `count` copies of `byte`:
/// one literal, then length-258 distance-1 matches, in a fixed-Huffman block, then the empty
/// stored block of a sync flush whose `00 00 ff ff` is left for the receiver to add.
pub fn compress_run(byte: u8, count: usize) -> Vec<u8> {
    assert!(count >= 1);
    let mut w = BitWriter {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(0, 1); // not the final block
    w.put(1, 2); // fixed Huffman
    let literal = |w: &mut BitWriter, b: u8| {
        if b < 144 {
            w.put_code(0x30 + u32::from(b), 8);
        } else {
            w.put_code(0x190 + u32::from(b) - 144, 9);
        }
    };
    literal(&mut w, byte);
    let mut left = count - 1;
    while left >= 258 {
        w.put_code(0xc5, 8); // symbol 285 = length 258 (fixed code 11000101)
        w.put_code(0, 5); // distance code 0 = distance 1
        left -= 258;
    }
    for _ in 0..left {
        literal(&mut w, byte);
    }
    w.put_code(0, 7); // end of block (symbol 256)
    w.put(0, 1); // sync flush: empty stored block, not final...
    w.put(0, 2); // ...type 00; LEN/NLEN (00 00 ff ff) are the stripped tail
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_encoder_round_trips_through_inflater() {
        for count in [1usize, 2, 257, 258, 259, 1000, 100_000] {
            let data = compress_run(b'a', count);
            let out = Inflater::new().message(&data).unwrap();
            assert_eq!(out.len(), count);
            assert!(out.iter().all(|&b| b == b'a'));
        }
        let out = Inflater::new().message(&compress_run(200, 600)).unwrap();
        assert_eq!(out, vec![200; 600]);
    }

    #[test]
    fn inflater_reads_stored_blocks_and_rejects_references_before_history() {
        // A stored block with "abc", then the header byte of the sync flush's empty stored block.
        let stored = [0x00, 0x03, 0x00, 0xfc, 0xff, b'a', b'b', b'c', 0x00];
        assert_eq!(Inflater::new().message(&stored).unwrap(), b"abc");
        // Fixed block: a match at distance 1 with no history.
        let mut w = BitWriter {
            out: Vec::new(),
            acc: 0,
            n: 0,
        };
        w.put(1, 1);
        w.put(1, 2);
        w.put_code(0xc5, 8);
        w.put_code(0, 5);
        w.put_code(0, 7);
        assert!(Inflater::new().message(&w.finish()).is_err());
    }
}
