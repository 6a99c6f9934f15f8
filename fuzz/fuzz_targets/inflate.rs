//! `PerMessageDeflate::decompress` / `finish_message` on arbitrary data, and compress→decompress
//! round trips.
//!
//! Layout: byte 0 knobs (bit0 role, bit1-2 no_context_takeover flags, bit3-5 level), byte 1
//! window bits, bytes 2-3 the size limit (little endian; high bit: ×64), byte 4 `n`, `n` schedule
//! bytes, then the data. Schedule byte: `0xxxxxxx` decompress the next x+1 bytes,
//! `10xxxxxx` finish the message, `11xxxxxx` round-trip the next (x+1)*4 bytes as a message
//! through a compressor of the peer role.
//!
//! Invariants: never panics; a compressor keeps to its agreed window and, without context
//! takeover, to the message (checked by an independent decoder, `puff.rs`); the output never exceeds the limit (success or error); after an
//! error nothing more is fed (the connection would be failed); a round trip restores the message
//! (context takeover across messages included) and `compress` leaves `out` untouched when it
//! declines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::deflate::PerMessageDeflate;
use ws_proto::error::ProtocolError;
use ws_proto::{DeflateConfig, DeflateParams, Role};
use ws_proto_fuzz::puff::Puff;
use ws_proto_fuzz::{avail, window_bits, Bytes};

fuzz_target!(|data: &[u8]| {
    if !avail().deflate {
        return;
    }
    let mut b = Bytes::new(data);
    let k = b.u8();
    let w = b.u8();
    let raw = u16::from_le_bytes([b.u8(), b.u8()]);
    let limit = if raw & 0x8000 != 0 {
        (raw & 0x7fff) as usize * 64
    } else {
        raw as usize
    };
    let n = b.u8() as usize;
    let sched = b.take(n);
    let stream = b.rest();

    let role = if k & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let peer = if role == Role::Server {
        Role::Client
    } else {
        Role::Server
    };
    let params = DeflateParams {
        server_no_context_takeover: k & 2 != 0,
        client_no_context_takeover: k & 4 != 0,
        server_max_window_bits: window_bits(w),
        client_max_window_bits: window_bits(w >> 4),
    };
    let mut cfg = DeflateConfig::default();
    cfg.level = (k >> 3) % 10;
    cfg.threshold = 0;
    let mut rx = PerMessageDeflate::new(params, role, &cfg);
    let mut tx = PerMessageDeflate::new(params, peer, &cfg);
    assert_eq!(rx.params(), params);

    let mut out = Vec::new();
    let mut pos = 0;
    let mut failed = false;
    let check = |r: Result<(), ProtocolError>, out: &Vec<u8>, failed: &mut bool| {
        assert!(
            out.len() <= limit,
            "inflated {} bytes past the limit {limit}",
            out.len()
        );
        match r {
            Ok(()) => {}
            Err(ProtocolError::MessageTooLarge { .. })
            | Err(ProtocolError::InvalidCompressedData) => *failed = true,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    };
    // The schedule, then the rest of the stream in 128-byte chunks.
    let tail = std::iter::repeat(0x7fu8).take(stream.len().div_ceil(128));
    let steps: Vec<u8> = sched.iter().copied().chain(tail).collect();
    for s in steps {
        if failed {
            break;
        }
        match s >> 6 {
            0 | 1 => {
                let len = ((s & 127) as usize + 1).min(stream.len() - pos);
                let r = rx.decompress(&stream[pos..pos + len], &mut out, limit);
                pos += len;
                check(r, &out, &mut failed);
            }
            2 => {
                let r = rx.finish_message(&mut out, limit);
                check(r, &out, &mut failed);
                out.clear();
            }
            _ => {
                // Round trip: tx (peer role) compresses, rx decompresses. Only on a fresh
                // message boundary, with both sides in step.
                let len = (((s & 63) as usize + 1) * 4).min(stream.len() - pos);
                let msg = &stream[pos..pos + len];
                pos += len;
                if !out.is_empty() {
                    // A message is in flight on rx: finish it first.
                    let r = rx.finish_message(&mut out, limit);
                    check(r, &out, &mut failed);
                    out.clear();
                    if failed {
                        break;
                    }
                }
                // The rx context now holds whatever arbitrary data went before, which the
                // peer compressor does not know about: use fresh codecs for round trips.
                let mut c = vec![0xAA];
                let used = tx.compress(msg, &mut c);
                if !used {
                    assert_eq!(c, vec![0xAA], "compress declined but changed out");
                    continue;
                }
                assert_eq!(c[0], 0xAA);
                assert!(c.len() - 1 <= msg.len(), "compressed is not smaller");
                let mut fresh = PerMessageDeflate::new(params, role, &cfg);
                let mut o = Vec::new();
                fresh
                    .decompress(&c[1..], &mut o, usize::MAX)
                    .expect("inflate our own deflate");
                fresh
                    .finish_message(&mut o, usize::MAX)
                    .expect("finish our own message");
                assert_eq!(o, msg, "round trip");
                // tx has moved on (context takeover); give it a fresh start too.
                tx = PerMessageDeflate::new(params, peer, &cfg);
            }
        }
    }
    if !failed && !out.is_empty() {
        let r = rx.finish_message(&mut out, limit);
        check(r, &out, &mut failed);
    }

    // Context takeover: a sequence of messages through one compressor and one decompressor, also
    // decoded by an independent decoder that checks the LZ77 distances against the agreed window
    // (and, without context takeover, that no message refers to an earlier one).
    let mut tx = PerMessageDeflate::new(params, peer, &cfg);
    let mut rx = PerMessageDeflate::new(params, role, &cfg);
    let (bits, no_takeover) = match peer {
        Role::Server => (
            params.server_max_window_bits,
            params.server_no_context_takeover,
        ),
        Role::Client => (
            params.client_max_window_bits,
            params.client_no_context_takeover,
        ),
    };
    assert!(
        tx.send_window_bits() <= bits,
        "compressor window {} over the agreed {bits}",
        tx.send_window_bits()
    );
    let mut reference = Puff::default();
    let chunk = 97 + (w as usize) * 13;
    for msg in stream.chunks(chunk).take(8) {
        let mut c = Vec::new();
        if tx.compress(msg, &mut c) {
            let mut o = Vec::new();
            rx.decompress(&c, &mut o, usize::MAX)
                .expect("inflate in sequence");
            rx.finish_message(&mut o, usize::MAX)
                .expect("finish in sequence");
            assert_eq!(o, msg, "sequential round trip");
            if no_takeover {
                reference = Puff::default();
            }
            c.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let got = reference.message(&c).unwrap_or_else(|e| {
                panic!("reference decoder: {e} (window {bits}, no takeover {no_takeover})")
            });
            assert_eq!(got, msg, "reference decoder disagrees");
            assert!(
                reference.max_distance <= 1 << bits,
                "back-reference of {} bytes in a {bits}-bit window",
                reference.max_distance
            );
        }
    }
});
