//! `ResponseParser` fed an arbitrary response in arbitrary chunks, then `Response::validate`.
//!
//! Layout: as handshake_request (2 bytes cap, 1 byte field cap, `n`, `n` chunk sizes, stream);
//! byte 4 of the knobs picks the offered subprotocols.
//!
//! Invariants: never panics; `Ok(None)` only while fewer than `cap` bytes were fed; a head bigger
//! than the cap fails with HeadersTooLarge (or Malformed, found before the cap); a head failed
//! before its end stays failed when ended there; a success used exactly the bytes up to the first
//! `\r\n\r\n` and the head contains the status, header names and values it reports; `validate` never panics, and when it accepts, the status is 101, the
//! selected subprotocol was offered and `Sec-WebSocket-Accept` matches the key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::handshake::{accept_key, ResponseParser};
use ws_proto::HandshakeError;
use ws_proto_fuzz::{avail, contains, contains_ci, Bytes};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fuzz_target!(|data: &[u8]| {
    if !avail().handshake {
        return;
    }
    let mut b = Bytes::new(data);
    let cap = u16::from_le_bytes([b.u8(), b.u8()]) as usize % 8192;
    let max_headers = b.u8() as usize % 128;
    let protos = b.u8();
    let n = b.u8() as usize;
    let sched = b.take(n);
    let stream = b.rest();
    let offered: Vec<String> = ["chat", "superchat", "v2.json", ""]
        .iter()
        .enumerate()
        .filter(|(i, _)| protos & (1 << i) != 0)
        .map(|(_, p)| p.to_string())
        .collect();

    let mut parser = ResponseParser::new(cap, max_headers);
    let mut fed = 0usize;
    let mut pos = 0;
    let mut chunks: Vec<&[u8]> = Vec::new();
    for &s in sched {
        let len = (s as usize + 1).min(stream.len() - pos);
        chunks.push(&stream[pos..pos + len]);
        pos += len;
    }
    chunks.push(&stream[pos..]);
    let mut result = None;
    for chunk in chunks {
        let before = fed;
        fed += chunk.len();
        match parser.push(chunk) {
            Ok(None) => assert!(fed < cap, "buffering up to the cap: fed {fed}, cap {cap}"),
            Ok(Some((resp, used))) => {
                assert!(used >= 1 && used <= chunk.len());
                result = Some(Ok((resp, before + used)));
                break;
            }
            Err(e) => {
                result = Some(Err(e));
                break;
            }
        }
    }
    let end = stream
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    if let (Some(e), None) = (end, &result) {
        assert!(e > fed, "head complete at {e} (fed {fed}) but no verdict");
    }
    if end.is_none_or(|e| e > cap) && fed >= cap {
        assert!(
            matches!(
                result,
                Some(Err(
                    HandshakeError::HeadersTooLarge | HandshakeError::Malformed(_)
                ))
            ),
            "head over the cap {cap} (fed {fed}): {result:?}"
        );
    }
    // A head failed before its end was seen is wrong whatever follows (see handshake_request).
    if matches!(result, Some(Err(HandshakeError::Malformed(_)))) && end.is_none_or(|e| e > fed) {
        let mut completed = stream[..fed.min(cap)].to_vec();
        completed.extend_from_slice(b"\r\n\r\n");
        let again = ResponseParser::new(completed.len(), 1 << 12).push(&completed);
        assert!(
            again.is_err(),
            "failed early on {completed:?}, which parses"
        );
    }
    match result {
        None => assert!(fed < cap),
        Some(Err(HandshakeError::HeadersTooLarge)) => assert!(fed >= cap),
        Some(Err(_)) => {}
        Some(Ok((resp, head_len))) => {
            assert!(
                head_len <= cap,
                "head of {head_len} bytes over the cap {cap}"
            );
            assert_eq!(Some(head_len), end, "head must end at the first blank line");
            let head = &stream[..head_len];
            assert!(head.ends_with(b"\n"));
            assert!(resp.headers.len() <= max_headers);
            for (name, value) in resp.headers.iter() {
                assert!(contains_ci(head, name.as_bytes()), "name {name:?}");
                assert!(contains(head, value), "value {value:?}");
            }
            let status = resp.status.to_string();
            assert!(contains(head, status.as_bytes()), "status {}", resp.status);
            if let Some(p) = &resp.protocol {
                // Kept lossily when not UTF-8 (validate then rejects it).
                if !p.contains('\u{FFFD}') {
                    assert!(contains(head, p.as_bytes()), "protocol {p:?}");
                }
            }
            let _ = resp.extension_headers();
            for key in [KEY, "", "x"] {
                if resp.validate(key, &offered).is_ok() {
                    assert_eq!(resp.status, 101, "validated status {}", resp.status);
                    if let Some(p) = &resp.protocol {
                        assert!(offered.contains(p), "validated unoffered protocol {p:?}");
                    }
                    let want = accept_key(key.as_bytes());
                    let got = resp.headers.get("sec-websocket-accept").map(str::trim);
                    assert_eq!(got, Some(want.as_str()), "validated a wrong accept key");
                }
            }
        }
    }
});
