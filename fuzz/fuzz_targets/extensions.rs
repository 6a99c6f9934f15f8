//! The Sec-WebSocket-Extensions negotiation (RFC 7692 §5, §7).
//!
//! Layout: byte 0-1 server config knobs, byte 2-3 client config knobs, then header values
//! separated by `\n` (several `Sec-WebSocket-Extensions` fields).
//!
//! Invariants:
//! * `parse_extensions` never panics; names and values are tokens from the input, and the list
//!   re-serialized parses back to itself;
//! * `negotiate_server` on arbitrary offers never panics; when it agrees, window bits are in
//!   8..=15, the response names permessage-deflate, is ASCII without CR/LF, carries
//!   server_no_context_takeover when the server config forces it, and a client whose config
//!   accepts anything the server may answer takes it with the same parameters;
//! * `accept_response` on arbitrary responses never panics; when it agrees, window bits are in
//!   8..=15;
//! * round trip: the offer `client_offer(client)` is agreed by `negotiate_server(server)` (when
//!   both are enabled and the server has no reason to decline), and `accept_response(client)`
//!   accepts the server's answer with the very same parameters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::deflate::{accept_response, client_offer, negotiate_server, parse_extensions};
use ws_proto::{DeflateConfig, DeflateParams};
use ws_proto_fuzz::{avail, contains, window_bits, Bytes};

fn config(a: u8, b: u8) -> DeflateConfig {
    let mut c = DeflateConfig::default();
    c.enabled = a & 1 == 0;
    c.server_no_context_takeover = a & 2 != 0;
    c.client_no_context_takeover = a & 4 != 0;
    c.server_max_window_bits = (a & 8 != 0).then(|| window_bits(b));
    c.client_max_window_bits = (a & 16 != 0).then(|| window_bits(b >> 4));
    c.level = (a >> 5) % 10;
    c
}

fn check_params(p: &DeflateParams) {
    assert!((8..=15).contains(&p.server_max_window_bits), "{p:?}");
    assert!((8..=15).contains(&p.client_max_window_bits), "{p:?}");
}

fn check_answer(server: &DeflateConfig, p: &DeflateParams, resp: &str) {
    check_params(p);
    assert!(contains(resp.as_bytes(), b"permessage-deflate"), "{resp:?}");
    assert!(
        resp.is_ascii() && !resp.contains('\r') && !resp.contains('\n'),
        "{resp:?}"
    );
    if server.server_no_context_takeover {
        assert!(p.server_no_context_takeover, "{p:?}");
        assert!(resp.contains("server_no_context_takeover"), "{resp:?}");
    }
    if server.client_no_context_takeover {
        assert!(p.client_no_context_takeover, "{p:?}");
    }
}

/// `parse_extensions`: names and values are tokens taken from the input, and the list
/// re-serialized (`name; p=v, ...`) parses back to the same list.
fn check_syntax(values: &[&[u8]]) {
    let Ok(exts) = parse_extensions(values) else {
        return;
    };
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    };
    let mut text = String::new();
    for (i, e) in exts.iter().enumerate() {
        assert!(is_token(e.name), "extension name {:?}", e.name);
        assert!(values.iter().any(|v| contains(v, e.name.as_bytes())));
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(e.name);
        for p in &e.params {
            assert!(is_token(p.name), "param name {:?}", p.name);
            text.push_str("; ");
            text.push_str(p.name);
            if let Some(v) = &p.value {
                assert!(is_token(v), "param value {v:?}");
                text.push('=');
                text.push_str(v);
            }
        }
    }
    let again = parse_extensions(&[text.as_bytes()]).expect("re-serialized list parses");
    assert_eq!(again, exts, "{text:?}");
}

fuzz_target!(|data: &[u8]| {
    if !avail().deflate {
        return;
    }
    let mut b = Bytes::new(data);
    let server = config(b.u8(), b.u8());
    let client = config(b.u8(), b.u8());
    let values: Vec<&[u8]> = b.rest().split(|&c| c == b'\n').collect();

    check_syntax(&values);
    // Arbitrary offers.
    if let Some((p, resp)) = negotiate_server(&server, &values) {
        assert!(server.enabled, "negotiated while disabled");
        check_answer(&server, &p, &resp);
        // A client that offered client_max_window_bits (and no server_max_window_bits, which
        // the answer may then not name: RFC 7692 §7.1.2.1) accepts any valid answer.
        let mut lenient = DeflateConfig::default();
        lenient.client_max_window_bits = Some(15);
        if !contains(resp.as_bytes(), b"server_max_window_bits") {
            match accept_response(&lenient, &[resp.as_bytes()]) {
                Ok(Some(q)) => assert_eq!(p, q, "client reads {resp:?} differently"),
                other => panic!("client rejects the server's answer {resp:?}: {other:?}"),
            }
        }
    }
    // Arbitrary answers.
    if let Ok(Some(p)) = accept_response(&client, &values) {
        assert!(client.enabled, "accepted while disabled");
        check_params(&p);
        if let Some(bits) = client.server_max_window_bits {
            assert!(
                p.server_max_window_bits <= bits,
                "accepted a larger server window {p:?}"
            );
        }
    }

    // Round trip of our own offer.
    let offer = client_offer(&client);
    assert_eq!(offer.is_some(), client.enabled);
    if let Some(offer) = offer {
        assert!(offer.starts_with("permessage-deflate"), "{offer:?}");
        if let Some((p, resp)) = negotiate_server(&server, &[offer.as_bytes()]) {
            check_answer(&server, &p, &resp);
            if let Some(bits) = client.server_max_window_bits {
                assert!(
                    p.server_max_window_bits <= bits,
                    "server ignored our window {p:?}"
                );
            }
            if client.server_no_context_takeover {
                assert!(
                    p.server_no_context_takeover,
                    "server ignored our request {p:?}"
                );
            }
            match accept_response(&client, &[resp.as_bytes()]) {
                Ok(Some(q)) => assert_eq!(p, q, "offer {offer:?}, answer {resp:?}"),
                other => panic!("offer {offer:?}, answer {resp:?}: client says {other:?}"),
            }
        } else if server.enabled {
            // Every window 8..=15 is supported: a well-formed offer is never declined.
            panic!("server declined our offer {offer:?}");
        }
    }
});
