//! `RequestParser` fed an arbitrary request in arbitrary chunks.
//!
//! Layout: byte 0-1 cap on head bytes (little endian, % 8192), byte 2 cap on header fields
//! (% 128), byte 3 `n`, `n` chunk-size bytes (each 1..=256), then the stream (the rest in one
//! chunk).
//!
//! Invariants: never panics; `Ok(None)` only while fewer than `cap` bytes were fed (HeadersTooLarge
//! comes as soon as `cap` bytes are buffered without the end of the head); once the first
//! `\r\n\r\n` has arrived within the cap there is a verdict, and a success used exactly the bytes
//! up to it (`1 <= used <= chunk`); a head bigger than the cap fails with HeadersTooLarge (or
//! Malformed, found before the cap); a head failed before its end stays failed when ended there; the
//! request's method, path, header names and values, key and subprotocols appear in the head; the
//! field count is within its cap; an upgrade is a GET with Host and a 24-char key; after a verdict
//! the parser stays put (`Ok(None)` after success, the same error after failure).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::handshake::{ParsedRequest, RequestParser};
use ws_proto::HandshakeError;
use ws_proto_fuzz::{avail, contains, contains_ci, Bytes};

/// Length of the head: up to and including the first blank line.
fn head_end(s: &[u8]) -> Option<usize> {
    s.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fuzz_target!(|data: &[u8]| {
    if !avail().handshake {
        return;
    }
    let mut b = Bytes::new(data);
    let cap = u16::from_le_bytes([b.u8(), b.u8()]) as usize % 8192;
    let max_headers = b.u8() as usize % 128;
    let n = b.u8() as usize;
    let sched = b.take(n);
    let stream = b.rest();

    let mut parser = RequestParser::new(cap, max_headers);
    let mut fed = 0usize;
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    for &s in sched {
        let len = (s as usize + 1).min(stream.len() - pos);
        chunks.push(&stream[pos..pos + len]);
        pos += len;
    }
    chunks.push(&stream[pos..]);

    let mut outcome = None;
    for chunk in chunks {
        let before = fed;
        fed += chunk.len();
        match parser.push(chunk) {
            Ok(None) => {
                assert!(
                    fed < cap,
                    "parser keeps buffering: {fed} bytes fed, cap {cap}, no result"
                );
                if let Some(e) = head_end(stream) {
                    assert!(e > fed, "head complete at {e} (fed {fed}) but no verdict");
                }
            }
            Ok(Some((parsed, used))) => {
                assert!(
                    used >= 1 && used <= chunk.len(),
                    "used {used} of a {}-byte chunk",
                    chunk.len()
                );
                outcome = Some(Ok((parsed, before + used)));
                break;
            }
            Err(e) => {
                outcome = Some(Err(e));
                break;
            }
        }
    }
    let Some(outcome) = outcome else {
        // Incomplete: no blank line within what was fed, and the cap not reached.
        assert!(fed < cap);
        return;
    };
    // Sticky verdict.
    match (&outcome, parser.push(b"GET / HTTP/1.1\r\n\r\n")) {
        (Ok(_), Ok(None)) => {}
        (Err(e), Err(again)) => assert_eq!(e, &again),
        (o, again) => panic!("after {o:?} the parser said {again:?}"),
    }
    let end = head_end(stream);
    let parser_error = outcome.as_ref().err().cloned();
    match outcome {
        Ok((parsed, head_len)) => {
            assert!(head_len <= stream.len());
            assert!(
                head_len <= cap,
                "accepted a {head_len}-byte head over the cap {cap}"
            );
            let head = &stream[..head_len];
            assert!(head.ends_with(b"\n"), "head does not end with a line end");
            assert_eq!(Some(head_len), end, "head must end at the first blank line");
            let (upgrade, req) = match &parsed {
                ParsedRequest::Upgrade(r) => (true, r),
                ParsedRequest::Plain(r) => (false, r),
            };
            assert!(
                contains(head, req.method.as_bytes()),
                "method {:?}",
                req.method
            );
            assert!(contains(head, req.path.as_bytes()), "path {:?}", req.path);
            assert!(
                req.headers.len() <= max_headers,
                "{} headers, cap {max_headers}",
                req.headers.len()
            );
            for (name, value) in req.headers.iter() {
                assert!(!name.is_empty());
                assert!(contains_ci(head, name.as_bytes()), "header name {name:?}");
                assert!(contains(head, value), "header value {value:?}");
            }
            for p in &req.protocols {
                assert!(!p.is_empty(), "empty subprotocol");
                assert!(contains(head, p.as_bytes()), "protocol {p:?}");
            }
            if upgrade {
                assert_eq!(req.method, "GET");
                // The Host value may be non-UTF-8 (then `host()` is None): it is present.
                assert!(
                    req.headers.get_bytes("host").is_some_and(|h| !h.is_empty()),
                    "upgrade without Host"
                );
                assert_eq!(req.key.len(), 24, "key {:?}", req.key);
                assert!(contains(head, req.key.as_bytes()));
            } else {
                assert!(req.key.is_empty(), "plain request with a key");
            }
        }
        Err(HandshakeError::HeadersTooLarge) => {
            assert!(fed >= cap, "HeadersTooLarge after {fed} bytes, cap {cap}");
        }
        Err(_) => {}
    }
    // A head bigger than the cap must fail once `cap` bytes arrived: with HeadersTooLarge, or
    // with Malformed if what came before was wrong already.
    if end.is_none_or(|e| e > cap) && fed >= cap {
        assert!(
            matches!(
                parser_error,
                Some(HandshakeError::HeadersTooLarge | HandshakeError::Malformed(_))
            ),
            "head over the cap {cap} (fed {fed}): {parser_error:?}"
        );
    }
    // A head failed before its end was seen is wrong whatever follows: the bytes the parser
    // took, ended right there, do not parse either.
    if matches!(parser_error, Some(HandshakeError::Malformed(_))) && end.is_none_or(|e| e > fed) {
        let mut completed = stream[..fed.min(cap)].to_vec();
        completed.extend_from_slice(b"\r\n\r\n");
        let again = RequestParser::new(completed.len(), 1 << 12).push(&completed);
        assert!(
            again.is_err(),
            "failed early on {completed:?}, which parses"
        );
    }
});
