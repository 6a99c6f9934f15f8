//! Frame headers (RFC 6455 §5.2): decode and encode. Role rules (masking, RSV bits, control-frame
//! limits) are checked by [`crate::Connection`], which knows the role and the extensions.

use crate::error::ProtocolError;

/// Longest possible frame header: 2 + 8 (length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes defined by RFC 6455. Reserved opcodes are rejected while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the low nibble of the first header byte.
    pub fn from_u8(v: u8) -> Result<OpCode, ProtocolError> {
        Ok(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// RSV1: "per-message compressed" under permessage-deflate.
pub const RSV1: u8 = 0b100;
/// RSV2.
pub const RSV2: u8 = 0b010;
/// RSV3.
pub const RSV3: u8 = 0b001;

/// A header's first byte: FIN, RSV1..RSV3 (the low three bits of `rsv`) and the opcode.
#[inline]
pub(crate) fn first_byte(fin: bool, rsv: u8, opcode: OpCode) -> u8 {
    (u8::from(fin) << 7) | ((rsv & 0x07) << 4) | opcode.as_u8()
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (`RSV1` = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// Masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed, otherwise the header and its length.
    /// Non-minimal length encodings are accepted (the minimal-length MUST binds senders).
    ///
    /// ```
    /// use ws_proto::frame::{FrameHeader, OpCode};
    /// let (h, n) = FrameHeader::decode(&[0x81, 0x05]).unwrap().unwrap();
    /// assert_eq!((h.opcode, h.fin, h.payload_len, n), (OpCode::Text, true, 5, 2));
    /// assert_eq!(FrameHeader::decode(&[0x81]).unwrap(), None);
    /// ```
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        // What a client sends most, in one pattern: a final text or binary frame, masked,
        // under 126 bytes.
        if let [b0 @ (0x81 | 0x82), b1 @ 0x80..=0xfd, k0, k1, k2, k3, ..] = *buf {
            let header = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: if b0 == 0x81 {
                    OpCode::Text
                } else {
                    OpCode::Binary
                },
                mask: Some([k0, k1, k2, k3]),
                payload_len: u64::from(b1 & 0x7f),
            };
            return Ok(Some((header, 6)));
        }
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let opcode = OpCode::from_u8(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let mask = if masked {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 0x07,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Appends the header (minimal length encoding) to `out`.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode_to(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }

    /// Writes the header into `buf`, returning its length.
    #[inline]
    pub fn encode_to(&self, buf: &mut [u8; MAX_HEADER_LEN]) -> usize {
        buf[0] = first_byte(self.fin, self.rsv, self.opcode);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = if self.payload_len < 126 {
            buf[1] = mask_bit | self.payload_len as u8;
            2
        } else if self.payload_len <= u16::MAX as u64 {
            buf[1] = mask_bit | 126;
            buf[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            4
        } else {
            buf[1] = mask_bit | 127;
            buf[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            buf[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }

    /// Length of the encoded header.
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=65535 => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_examples_decode() {
        // RFC 6455 §5.7: single-frame unmasked text "Hello".
        let (h, n) = FrameHeader::decode(&[0x81, 0x05, 0x48, 0x65])
            .unwrap()
            .unwrap();
        assert_eq!(n, 2);
        assert!(h.fin && h.mask.is_none() && h.payload_len == 5 && h.opcode == OpCode::Text);
        // Masked "Hello".
        let (h, n) = FrameHeader::decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!((n, h.mask), (6, Some([0x37, 0xfa, 0x21, 0x3d])));
        // 256 bytes binary in a single unmasked frame.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7e, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((n, h.payload_len), (4, 256));
        // 64 KiB.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((n, h.payload_len), (10, 65536));
    }

    #[test]
    fn sixty_four_bit_length_msb_must_be_zero() {
        let buf = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(FrameHeader::decode(&buf), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn reserved_opcodes_rejected() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(FrameHeader::decode(&full[..n]).unwrap(), None, "prefix {n}");
        }
        assert!(FrameHeader::decode(&full).unwrap().is_some());
    }

    fn opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong)
        ]
    }

    proptest! {
        #[test]
        fn header_round_trip(fin in any::<bool>(), rsv in 0u8..8, op in opcode(),
                             mask in any::<Option<[u8; 4]>>(), len in prop_oneof![0u64..200, 60000u64..70000, 0u64..(1u64 << 63)]) {
            let h = FrameHeader { fin, rsv, opcode: op, mask, payload_len: len };
            let mut out = Vec::new();
            h.encode(&mut out);
            prop_assert_eq!(out.len(), h.encoded_len());
            let (d, n) = FrameHeader::decode(&out).unwrap().unwrap();
            prop_assert_eq!(d, h);
            prop_assert_eq!(n, out.len());
        }
    }
}
