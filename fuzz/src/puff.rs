//! A tiny, slow, independent raw-DEFLATE decoder (after zlib's contrib/puff) that also reports the
//! longest back-reference distance, to check that a compressor keeps to the LZ77 window it
//! agreed (RFC 7692 §7.1.2: `*_max_window_bits`).

/// Decoder state kept across messages (context takeover).
#[derive(Default)]
pub struct Puff {
    /// Everything decoded so far (the LZ77 history).
    pub history: Vec<u8>,
    /// Longest distance seen.
    pub max_distance: usize,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bitbuf: u32,
    bitcnt: u32,
}

type R<T> = Result<T, &'static str>;

impl Bits<'_> {
    fn bits(&mut self, need: u32) -> R<u32> {
        let mut val = self.bitbuf;
        while self.bitcnt < need {
            let b = *self.data.get(self.pos).ok_or("truncated")?;
            self.pos += 1;
            val |= (b as u32) << self.bitcnt;
            self.bitcnt += 8;
        }
        self.bitbuf = if need == 32 { 0 } else { val >> need };
        self.bitcnt -= need;
        Ok(val & ((1u64 << need) - 1) as u32)
    }
}

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> R<Huffman> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        if count[0] as usize == lengths.len() {
            return Ok(Huffman {
                count,
                symbol: Vec::new(),
            });
        }
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left <<= 1;
            left -= c as i32;
            if left < 0 {
                return Err("over-subscribed code");
            }
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[offs[l as usize] as usize] = sym as u16;
                offs[l as usize] += 1;
            }
        }
        Ok(Huffman { count, symbol })
    }

    fn decode(&self, s: &mut Bits<'_>) -> R<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= s.bits(1)? as i32;
            let count = self.count[len] as i32;
            if code - count < first {
                return self
                    .symbol
                    .get((index + (code - first)) as usize)
                    .copied()
                    .ok_or("bad code");
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err("ran out of codes")
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

impl Puff {
    /// Decodes one message (its compressed payload with `00 00 ff ff` appended), appending to the
    /// history; returns the message.
    pub fn message(&mut self, data: &[u8]) -> R<Vec<u8>> {
        let start = self.history.len();
        let mut s = Bits {
            data,
            pos: 0,
            bitbuf: 0,
            bitcnt: 0,
        };
        loop {
            let last = s.bits(1)?;
            match s.bits(2)? {
                0 => {
                    s.bitbuf = 0;
                    s.bitcnt = 0;
                    let b = s.data.get(s.pos..s.pos + 4).ok_or("truncated stored")?;
                    let len = u16::from_le_bytes([b[0], b[1]]);
                    let nlen = u16::from_le_bytes([b[2], b[3]]);
                    if len != !nlen {
                        return Err("stored length mismatch");
                    }
                    s.pos += 4;
                    let body = s
                        .data
                        .get(s.pos..s.pos + len as usize)
                        .ok_or("truncated stored")?;
                    self.history.extend_from_slice(body);
                    s.pos += len as usize;
                    if s.pos == s.data.len() {
                        break;
                    }
                }
                1 => {
                    let mut l = [0u8; 288];
                    l[..144].fill(8);
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    l[280..].fill(8);
                    let lencode = Huffman::new(&l)?;
                    let distcode = Huffman::new(&[5u8; 30])?;
                    self.codes(&mut s, &lencode, &distcode)?;
                }
                2 => {
                    let nlen = s.bits(5)? as usize + 257;
                    let ndist = s.bits(5)? as usize + 1;
                    let ncode = s.bits(4)? as usize + 4;
                    if nlen > 286 || ndist > 30 {
                        return Err("bad counts");
                    }
                    const ORDER: [usize; 19] = [
                        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                    ];
                    let mut lengths = [0u8; 320];
                    for &o in &ORDER[..ncode] {
                        lengths[o] = s.bits(3)? as u8;
                    }
                    let lencode = Huffman::new(&lengths[..19])?;
                    let mut index = 0;
                    let mut lengths = [0u8; 320];
                    while index < nlen + ndist {
                        let sym = lencode.decode(&mut s)?;
                        if sym < 16 {
                            lengths[index] = sym as u8;
                            index += 1;
                        } else {
                            let (len, rep) = match sym {
                                16 => {
                                    if index == 0 {
                                        return Err("repeat with no first length");
                                    }
                                    (lengths[index - 1], 3 + s.bits(2)?)
                                }
                                17 => (0, 3 + s.bits(3)?),
                                _ => (0, 11 + s.bits(7)?),
                            };
                            if index + rep as usize > nlen + ndist {
                                return Err("too many lengths");
                            }
                            for _ in 0..rep {
                                lengths[index] = len;
                                index += 1;
                            }
                        }
                    }
                    if lengths[256] == 0 {
                        return Err("no end-of-block code");
                    }
                    let lencode = Huffman::new(&lengths[..nlen])?;
                    let distcode = Huffman::new(&lengths[nlen..nlen + ndist])?;
                    self.codes(&mut s, &lencode, &distcode)?;
                }
                _ => return Err("invalid block type"),
            }
            if last == 1 {
                break;
            }
        }
        Ok(self.history[start..].to_vec())
    }

    fn codes(&mut self, s: &mut Bits<'_>, lencode: &Huffman, distcode: &Huffman) -> R<()> {
        loop {
            let sym = lencode.decode(s)? as usize;
            if sym < 256 {
                self.history.push(sym as u8);
            } else if sym == 256 {
                return Ok(());
            } else {
                let sym = sym - 257;
                if sym >= 29 {
                    return Err("bad length symbol");
                }
                let len = LBASE[sym] as usize + s.bits(LEXT[sym] as u32)? as usize;
                let dsym = distcode.decode(s)? as usize;
                if dsym >= 30 {
                    return Err("bad distance symbol");
                }
                let dist = DBASE[dsym] as usize + s.bits(DEXT[dsym] as u32)? as usize;
                if dist > self.history.len() {
                    return Err("distance too far back");
                }
                self.max_distance = self.max_distance.max(dist);
                for _ in 0..len {
                    let b = self.history[self.history.len() - dist];
                    self.history.push(b);
                }
            }
        }
    }
}
