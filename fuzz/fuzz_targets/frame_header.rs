//! `FrameHeader::decode` on arbitrary bytes.
//!
//! Invariants: never panics; a decoded header is 2..=14 bytes and no longer than the input; every
//! shorter prefix asks for more bytes; a minimal length encoding re-encodes to the same bytes, and
//! any decoded header round-trips through encode/decode; `Ok(None)` only for inputs shorter than
//! the longest header; errors are the reserved-opcode and 64-bit-length errors, seen as soon as
//! their bytes are present.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::error::ProtocolError;
use ws_proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    match FrameHeader::decode(data) {
        Ok(Some((h, n))) => {
            assert!((2..=MAX_HEADER_LEN).contains(&n), "header length {n}");
            assert!(n <= data.len());
            // Fields come from the bytes.
            assert_eq!(h.fin, data[0] & 0x80 != 0);
            assert_eq!(h.rsv, (data[0] >> 4) & 7);
            assert_eq!(h.opcode.as_u8(), data[0] & 0x0f);
            assert_eq!(OpCode::from_u8(h.opcode.as_u8()), Ok(h.opcode));
            assert_eq!(h.mask.is_some(), data[1] & 0x80 != 0);
            assert!(h.payload_len >> 63 == 0);
            if let Some(k) = h.mask {
                assert_eq!(&k[..], &data[n - 4..n]);
            }
            // Streaming: no shorter prefix is a header, the exact prefix is the same header.
            for m in 0..n {
                assert_eq!(
                    FrameHeader::decode(&data[..m]),
                    Ok(None),
                    "prefix {m} of {n}"
                );
            }
            assert_eq!(FrameHeader::decode(&data[..n]), Ok(Some((h, n))));
            // Re-encoding.
            let mut out = Vec::new();
            h.encode(&mut out);
            assert_eq!(out.len(), h.encoded_len());
            assert!(out.len() <= n);
            let minimal = match data[1] & 0x7f {
                126 => h.payload_len >= 126,
                127 => h.payload_len > 0xffff,
                _ => true,
            };
            if minimal {
                assert_eq!(&out[..], &data[..n], "minimal header does not re-encode");
            }
            assert_eq!(FrameHeader::decode(&out), Ok(Some((h, out.len()))));
            let mut buf = [0u8; MAX_HEADER_LEN];
            let m = h.encode_to(&mut buf);
            assert_eq!(&buf[..m], &out[..]);
        }
        Ok(None) => {
            assert!(
                data.len() < MAX_HEADER_LEN,
                "needs more after {} bytes",
                data.len()
            );
            if data.len() >= 2 {
                assert!(OpCode::from_u8(data[0] & 0x0f).is_ok());
            }
        }
        Err(ProtocolError::ReservedOpcode(op)) => {
            assert_eq!(op, data[0] & 0x0f);
            assert!(OpCode::from_u8(op).is_err());
            assert!(data.len() >= 2);
            assert_eq!(
                FrameHeader::decode(&data[..2]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        Err(ProtocolError::InvalidLength) => {
            assert!(data.len() >= 10);
            assert_eq!(data[1] & 0x7f, 127);
            assert!(data[2] & 0x80 != 0);
            assert_eq!(
                FrameHeader::decode(&data[..10]),
                Err(ProtocolError::InvalidLength)
            );
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
});
