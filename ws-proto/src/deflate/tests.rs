//! Tests for permessage-deflate: RFC 7692 §5–§8 rules decidable here, the §7.2.3 examples, and
//! property tests checked against an independent reference decoder that reports every
//! back-reference distance.

use std::borrow::Cow;

use miniz_oxide::deflate::core::TDEFLFlush;
use proptest::prelude::*;

use super::codec::{
    deflate_chunks, new_compressor, COMPRESSOR_HEAP_BYTES, INFLATER_HEAP_BYTES, TAIL,
};
use super::*;
use crate::error::{HandshakeError, ProtocolError};
use crate::Role;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn config() -> DeflateConfig {
    DeflateConfig {
        threshold: 0,
        ..DeflateConfig::default()
    }
}

fn agreed(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    }
}

fn opposite(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

fn server(config: &DeflateConfig, header: &str) -> Option<(DeflateParams, String)> {
    negotiate_server(config, &[header.as_bytes()])
}

fn client(config: &DeflateConfig, header: &str) -> Result<Option<DeflateParams>, HandshakeError> {
    accept_response(config, &[header.as_bytes()])
}

/// Receives one compressed message payload (as sent, without the tail), fed in pieces of `piece`.
fn receive(
    pmd: &mut PerMessageDeflate,
    data: &[u8],
    piece: usize,
    max_len: usize,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        pmd.decompress(chunk, &mut out, max_len)?;
    }
    pmd.finish_message(&mut out, max_len)?;
    Ok(out)
}

fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "websocket ",
        "frame ",
        "deflate ",
        "window ",
        "context ",
        "takeover ",
        "message ",
        "server ",
        "client ",
        "compress ",
        "the ",
        "of ",
    ];
    let mut s = Vec::with_capacity(len + 16);
    let mut x = seed | 1;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
    }
    s.truncate(len);
    s
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reference decoder (after zlib's puff.c): slow and simple, independent of miniz_oxide, and it
// reports every back-reference so the tests can check window and context rules directly.
// ---------------------------------------------------------------------------------------------

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = sym as u16;
                offs[usize::from(l)] += 1;
            }
        }
        Huffman { count, symbol }
    }
}

/// One back-reference: output position (absolute in the history) and distance.
#[derive(Debug, Clone, Copy)]
struct BackRef {
    pos: usize,
    dist: usize,
}

struct Puff<'a> {
    input: &'a [u8],
    pos: usize,
    bitbuf: u64,
    bitcnt: u32,
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

impl Puff<'_> {
    fn bits(&mut self, need: u32) -> Result<u32, &'static str> {
        while self.bitcnt < need {
            let b = *self.input.get(self.pos).ok_or("out of input")?;
            self.pos += 1;
            self.bitbuf |= u64::from(b) << self.bitcnt;
            self.bitcnt += 8;
        }
        let v = (self.bitbuf & ((1u64 << need) - 1)) as u32;
        self.bitbuf >>= need;
        self.bitcnt -= need;
        Ok(v)
    }

    fn decode(&mut self, h: &Huffman) -> Result<u16, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= self.bits(1)? as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return Ok(h.symbol[(index + (code - first)) as usize]);
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err("bad code")
    }

    fn codes(
        &mut self,
        out: &mut Vec<u8>,
        refs: &mut Vec<BackRef>,
        lencode: &Huffman,
        distcode: &Huffman,
    ) -> Result<(), &'static str> {
        loop {
            let sym = self.decode(lencode)?;
            match sym {
                0..=255 => out.push(sym as u8),
                256 => return Ok(()),
                _ => {
                    let i = usize::from(sym - 257);
                    let len = usize::from(*LBASE.get(i).ok_or("bad length")?)
                        + self.bits(u32::from(LEXT[i]))? as usize;
                    let d = usize::from(self.decode(distcode)?);
                    let dist = usize::from(*DBASE.get(d).ok_or("bad distance")?)
                        + self.bits(u32::from(DEXT[d]))? as usize;
                    if dist > out.len() {
                        return Err("distance before start of history");
                    }
                    refs.push(BackRef {
                        pos: out.len(),
                        dist,
                    });
                    for _ in 0..len {
                        out.push(out[out.len() - dist]);
                    }
                }
            }
        }
    }

    /// Decodes blocks until the input ends at a block boundary, appending to `out` (which holds
    /// the earlier history). Returns the back-references.
    fn run(input: &[u8], out: &mut Vec<u8>) -> Result<Vec<BackRef>, &'static str> {
        let mut p = Puff {
            input,
            pos: 0,
            bitbuf: 0,
            bitcnt: 0,
        };
        let mut refs = Vec::new();
        while p.pos < p.input.len() {
            let _last = p.bits(1)?;
            match p.bits(2)? {
                0 => {
                    p.bitbuf = 0;
                    p.bitcnt = 0;
                    let len = p.bits(16)?;
                    let nlen = p.bits(16)?;
                    if len != !nlen & 0xffff {
                        return Err("bad stored length");
                    }
                    for _ in 0..len {
                        out.push(p.bits(8)? as u8);
                    }
                }
                1 => {
                    let mut l = [0u8; 288];
                    l[..144].fill(8);
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    l[280..].fill(8);
                    let (lc, dc) = (Huffman::new(&l), Huffman::new(&[5u8; 30]));
                    p.codes(out, &mut refs, &lc, &dc)?;
                }
                2 => {
                    let nlen = p.bits(5)? as usize + 257;
                    let ndist = p.bits(5)? as usize + 1;
                    let ncode = p.bits(4)? as usize + 4;
                    const ORDER: [usize; 19] = [
                        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                    ];
                    let mut lengths = [0u8; 320];
                    for &o in &ORDER[..ncode] {
                        lengths[o] = p.bits(3)? as u8;
                    }
                    let lencode = Huffman::new(&lengths[..19]);
                    let mut lengths = [0u8; 320];
                    let mut i = 0;
                    while i < nlen + ndist {
                        let sym = p.decode(&lencode)?;
                        let (value, repeat) = match sym {
                            0..=15 => (sym as u8, 1),
                            16 => (
                                *lengths.get(i.wrapping_sub(1)).ok_or("repeat")?,
                                3 + p.bits(2)?,
                            ),
                            17 => (0, 3 + p.bits(3)?),
                            _ => (0, 11 + p.bits(7)?),
                        };
                        for _ in 0..repeat {
                            *lengths.get_mut(i).ok_or("too many lengths")? = value;
                            i += 1;
                        }
                    }
                    let lc = Huffman::new(&lengths[..nlen]);
                    let dc = Huffman::new(&lengths[nlen..nlen + ndist]);
                    p.codes(out, &mut refs, &lc, &dc)?;
                }
                _ => return Err("bad block type"),
            }
        }
        Ok(refs)
    }
}

// ---------------------------------------------------------------------------------------------
// Extension header syntax
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_extensions_reads_names_params_and_values() {
    let exts = parse_extensions(&[
        b"permessage-deflate; client_max_window_bits, x-foo ; a=1;b=\"10\"; c=\"1\\0\"",
    ])
    .unwrap();
    assert_eq!(exts.len(), 2);
    assert_eq!(exts[0].name, "permessage-deflate");
    assert_eq!(
        exts[0].params,
        [ExtensionParam {
            name: "client_max_window_bits",
            value: None
        }]
    );
    assert_eq!(exts[1].name, "x-foo");
    let values: Vec<_> = exts[1]
        .params
        .iter()
        .map(|p| (p.name, p.value.clone()))
        .collect();
    assert_eq!(
        values,
        [
            ("a", Some(Cow::Borrowed("1"))),
            ("b", Some(Cow::Borrowed("10"))),
            ("c", Some(Cow::Owned::<str>("10".into()))),
        ]
    );
}

#[test]
fn parse_extensions_joins_several_header_values_in_order() {
    let exts = parse_extensions(&[b"a", b"b; x, c", b""]).unwrap();
    let names: Vec<_> = exts.iter().map(|e| e.name).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn parse_extensions_accepts_whitespace_and_empty_list_elements() {
    let exts = parse_extensions(&[b" ,\ta ;\tp = 9 , , b ;q= \"x\" ,"]).unwrap();
    assert_eq!(exts.len(), 2);
    assert_eq!(exts[0].params[0].value.as_deref(), Some("9"));
    assert_eq!(exts[1].params[0].value.as_deref(), Some("x"));
    assert!(parse_extensions(&[b"", b" , "]).unwrap().is_empty());
}

#[test]
fn parse_extensions_rejects_invalid_syntax_with_position() {
    use ExtensionSyntaxErrorKind::*;
    let cases: &[(&[u8], usize, ExtensionSyntaxErrorKind)] = &[
        (b";a", 0, ExpectedToken),
        (b"a;", 2, ExpectedToken),
        (b"a; ,b", 3, ExpectedToken),
        (b"a b", 2, ExpectedSeparator),
        (b"a;b c", 4, ExpectedSeparator),
        (b"a;=1", 2, ExpectedToken),
        (b"a;b=", 4, ExpectedValue),
        (b"a;b=,", 4, ExpectedValue),
        (b"a;b=@", 4, ExpectedValue),
        (b"a;b=\"10", 4, BadQuotedString),
        (b"a;b=\"1\x7f\"", 6, BadQuotedString),
        (b"a;b=\"x\\", 6, BadQuotedString),
        (b"a;b=\"has space\"", 4, QuotedValueNotToken),
        (b"a;b=\"\"", 4, QuotedValueNotToken),
        (b"a;b=\"\xc3\xa4\"", 4, QuotedValueNotToken),
        (b"a\r\n", 1, ExpectedSeparator),
        (b"\xc3\xa4", 0, ExpectedToken),
        (b"a=1", 1, ExpectedSeparator),
    ];
    for &(input, offset, kind) in cases {
        let err = parse_extensions(&[b"ok", input]).unwrap_err();
        assert_eq!(
            err,
            ExtensionSyntaxError {
                header: 1,
                offset,
                kind
            },
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

proptest! {
    #[test]
    fn parse_extensions_never_panics_on_arbitrary_bytes(
        headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4)
    ) {
        let refs: Vec<&[u8]> = headers.iter().map(|h| h.as_slice()).collect();
        let _ = parse_extensions(&refs);
        let _ = negotiate_server(&DeflateConfig::default(), &refs);
        let _ = accept_response(&DeflateConfig::default(), &refs);
    }

    #[test]
    fn parse_extensions_never_panics_on_near_valid_headers(
        header in "[a-z_;=,\" \\\\\t0-9\x7f]{0,80}"
    ) {
        let _ = parse_extensions(&[header.as_bytes()]);
        let _ = negotiate_server(&DeflateConfig::default(), &[header.as_bytes()]);
        let _ = accept_response(&DeflateConfig::default(), &[header.as_bytes()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Server negotiation (RFC 7692 §5, §7, §7.1)
// ---------------------------------------------------------------------------------------------

#[test]
fn server_accepts_bare_offer_with_default_params() {
    let (params, response) = server(&config(), "permessage-deflate").unwrap();
    assert_eq!(response, "permessage-deflate");
    assert_eq!(params, agreed(false, false, 15, 15));
}

#[test]
fn server_negotiates_nothing_when_disabled() {
    let cfg = DeflateConfig {
        enabled: false,
        ..config()
    };
    assert_eq!(server(&cfg, "permessage-deflate"), None);
}

#[test]
fn server_ignores_other_extensions_and_accepts_deflate_after_them() {
    let (_, response) = server(&config(), "x-webkit-deflate-frame, permessage-deflate").unwrap();
    assert_eq!(response, "permessage-deflate");
    assert_eq!(
        server(&config(), "x-webkit-deflate-frame; no_context_takeover"),
        None
    );
}

#[test]
fn server_accepts_extension_name_case_insensitively() {
    assert!(server(&config(), "PerMessage-Deflate; Client_Max_Window_Bits").is_some());
}

#[test]
fn server_negotiates_nothing_for_malformed_header() {
    assert_eq!(
        server(&config(), "permessage-deflate; ; client_max_window_bits"),
        None
    );
    assert_eq!(
        negotiate_server(&config(), &[b"permessage-deflate", b"bad header"]),
        None
    );
}

#[test]
fn server_declines_offer_with_duplicate_param_and_takes_next_offer() {
    let (params, response) = server(
        &config(),
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover, \
         permessage-deflate; client_max_window_bits=10",
    )
    .unwrap();
    assert_eq!(response, "permessage-deflate; client_max_window_bits=10");
    assert_eq!(params, agreed(false, false, 15, 10));
    // Only the duplicate offer: nothing.
    assert_eq!(
        server(
            &config(),
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9"
        ),
        None
    );
}

#[test]
fn server_declines_offer_with_unknown_param_and_takes_next_offer() {
    let (_, response) = server(
        &config(),
        "permessage-deflate; mystery, permessage-deflate; server_no_context_takeover",
    )
    .unwrap();
    assert_eq!(response, "permessage-deflate; server_no_context_takeover");
    assert_eq!(
        server(&config(), "permessage-deflate; no_context_takeover"),
        None
    );
}

#[test]
fn server_declines_offers_with_invalid_values() {
    for bad in [
        "server_max_window_bits",
        "server_max_window_bits=7",
        "server_max_window_bits=16",
        "server_max_window_bits=08",
        "server_max_window_bits=010",
        "server_max_window_bits=+9",
        "server_max_window_bits=abc",
        "server_max_window_bits=\"\"x",
        "client_max_window_bits=7",
        "client_max_window_bits=016",
        "client_max_window_bits=\"16\"",
        "server_no_context_takeover=1",
        "client_no_context_takeover=\"x\"",
    ] {
        let offers = format!("permessage-deflate; {bad}, permessage-deflate");
        match server(&config(), &offers) {
            // The invalid offer is declined; the plain fallback offer is taken.
            Some((params, response)) => {
                assert_eq!(response, "permessage-deflate", "{bad}");
                assert_eq!(params, agreed(false, false, 15, 15), "{bad}");
            }
            // Or the header is not even valid syntax, making it unusable as a whole.
            None => assert!(parse_extensions(&[offers.as_bytes()]).is_err(), "{bad}"),
        }
        assert_eq!(
            server(&config(), &format!("permessage-deflate; {bad}")),
            None,
            "{bad}"
        );
    }
}

#[test]
fn server_max_window_bits_requires_a_value_from_8_to_15() {
    for bits in 8..=15u8 {
        for offer in [
            format!("permessage-deflate; server_max_window_bits={bits}"),
            format!("permessage-deflate; server_max_window_bits=\"{bits}\""),
        ] {
            let (params, response) = server(&config(), &offer).unwrap();
            assert_eq!(params.server_max_window_bits, bits);
            assert_eq!(
                response,
                format!("permessage-deflate; server_max_window_bits={bits}")
            );
        }
    }
    assert_eq!(
        server(&config(), "permessage-deflate; server_max_window_bits"),
        None
    );
}

#[test]
fn server_answers_requested_server_max_window_bits_with_min_of_config() {
    let cfg = DeflateConfig {
        server_max_window_bits: Some(10),
        ..config()
    };
    let (params, response) = server(&cfg, "permessage-deflate; server_max_window_bits=12").unwrap();
    assert_eq!(response, "permessage-deflate; server_max_window_bits=10");
    assert_eq!(params.server_max_window_bits, 10);
    let (params, _) = server(&cfg, "permessage-deflate; server_max_window_bits=9").unwrap();
    assert_eq!(params.server_max_window_bits, 9);
}

#[test]
fn server_does_not_announce_unrequested_window_but_compresses_within_config() {
    let cfg = DeflateConfig {
        server_max_window_bits: Some(9),
        ..config()
    };
    let (params, response) = server(&cfg, "permessage-deflate").unwrap();
    assert_eq!(response, "permessage-deflate");
    assert_eq!(params.server_max_window_bits, 15);
    let pmd = PerMessageDeflate::new(params, Role::Server, &cfg);
    assert_eq!(pmd.send_window_bits(), 9);
}

#[test]
fn server_client_max_window_bits_bare_or_valued() {
    // Bare, no preference: not mentioned, the client may use 15.
    let (p, r) = server(&config(), "permessage-deflate; client_max_window_bits").unwrap();
    assert_eq!(
        (p.client_max_window_bits, r.as_str()),
        (15, "permessage-deflate")
    );
    // Bare, with a preference: we ask for it.
    let cfg = DeflateConfig {
        client_max_window_bits: Some(11),
        ..config()
    };
    let (p, r) = server(&cfg, "permessage-deflate; client_max_window_bits").unwrap();
    assert_eq!(p.client_max_window_bits, 11);
    assert_eq!(r, "permessage-deflate; client_max_window_bits=11");
    // Valued: the smaller of both.
    let (p, r) = server(&cfg, "permessage-deflate; client_max_window_bits=9").unwrap();
    assert_eq!(p.client_max_window_bits, 9);
    assert_eq!(r, "permessage-deflate; client_max_window_bits=9");
    let (p, r) = server(&config(), "permessage-deflate; client_max_window_bits=12").unwrap();
    assert_eq!(p.client_max_window_bits, 12);
    assert_eq!(r, "permessage-deflate; client_max_window_bits=12");
}

#[test]
fn server_never_sends_client_max_window_bits_unless_offered() {
    let cfg = DeflateConfig {
        client_max_window_bits: Some(9),
        ..config()
    };
    let (params, response) = server(&cfg, "permessage-deflate").unwrap();
    assert_eq!(response, "permessage-deflate");
    assert_eq!(params.client_max_window_bits, 15);
}

#[test]
fn server_echoes_offered_no_context_takeover_params() {
    let (params, response) = server(
        &config(),
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    )
    .unwrap();
    assert_eq!(
        response,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(params, agreed(true, true, 15, 15));
}

#[test]
fn server_adds_no_context_takeover_from_config() {
    let cfg = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..config()
    };
    let (params, response) = server(&cfg, "permessage-deflate").unwrap();
    assert_eq!(
        response,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(params, agreed(true, true, 15, 15));
}

#[test]
fn server_response_states_exactly_the_agreement() {
    let cfg = DeflateConfig {
        server_max_window_bits: Some(12),
        ..config()
    };
    let (params, response) = server(
        &cfg,
        "permessage-deflate; server_max_window_bits=13; client_max_window_bits=10; \
         client_no_context_takeover",
    )
    .unwrap();
    assert_eq!(
        response,
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; \
         client_max_window_bits=10"
    );
    assert_eq!(params, agreed(false, true, 12, 10));
    // The response, read back by a client that made this offer, gives the same parameters.
    let client_cfg = DeflateConfig {
        client_no_context_takeover: true,
        server_max_window_bits: Some(13),
        client_max_window_bits: Some(10),
        ..config()
    };
    assert_eq!(client(&client_cfg, &response), Ok(Some(params)));
}

// ---------------------------------------------------------------------------------------------
// Client offer and response check (RFC 7692 §5, §7, §7.1)
// ---------------------------------------------------------------------------------------------

#[test]
fn client_offer_default_offers_bare_client_max_window_bits() {
    assert_eq!(
        client_offer(&DeflateConfig::default()).as_deref(),
        Some("permessage-deflate; client_max_window_bits")
    );
}

#[test]
fn client_offer_includes_configured_params() {
    let cfg = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(3), // clamped to 8
        ..config()
    };
    assert_eq!(
        client_offer(&cfg).as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=8"
        )
    );
}

#[test]
fn client_offer_is_none_when_disabled() {
    assert_eq!(
        client_offer(&DeflateConfig {
            enabled: false,
            ..config()
        }),
        None
    );
}

#[test]
fn client_offer_is_accepted_by_our_server() {
    let offer = client_offer(&DeflateConfig::default()).unwrap();
    let (params, response) = server(&config(), &offer).unwrap();
    assert_eq!(client(&config(), &response), Ok(Some(params)));
}

#[test]
fn accept_response_without_deflate_is_none() {
    assert_eq!(accept_response(&config(), &[]), Ok(None));
    assert_eq!(client(&config(), ""), Ok(None));
    assert_eq!(client(&config(), " , "), Ok(None));
}

#[test]
fn accept_response_defaults_absent_window_bits_to_15() {
    assert_eq!(
        client(&config(), "permessage-deflate"),
        Ok(Some(agreed(false, false, 15, 15)))
    );
}

#[test]
fn accept_response_rejects_unoffered_extension() {
    assert!(matches!(
        client(&config(), "x-foo"),
        Err(HandshakeError::BadExtension(_))
    ));
    assert!(matches!(
        client(&config(), "permessage-deflate, x-foo"),
        Err(HandshakeError::BadExtension(_))
    ));
    let disabled = DeflateConfig {
        enabled: false,
        ..config()
    };
    assert!(matches!(
        client(&disabled, "permessage-deflate"),
        Err(HandshakeError::BadExtension(_))
    ));
}

#[test]
fn accept_response_rejects_several_deflate_entries() {
    assert!(matches!(
        client(&config(), "permessage-deflate, permessage-deflate"),
        Err(HandshakeError::BadExtension(_))
    ));
    assert!(matches!(
        accept_response(&config(), &[b"permessage-deflate", b"permessage-deflate"]),
        Err(HandshakeError::BadExtension(_))
    ));
}

#[test]
fn accept_response_rejects_duplicate_unknown_and_invalid_params() {
    for bad in [
        "server_no_context_takeover; server_no_context_takeover",
        "client_max_window_bits=9; client_max_window_bits=9",
        "mystery",
        "server_no_context_takeover=1",
        "client_no_context_takeover=yes",
        "server_max_window_bits",
        "server_max_window_bits=7",
        "server_max_window_bits=16",
        "server_max_window_bits=09",
        "client_max_window_bits",
        "client_max_window_bits=7",
        "client_max_window_bits=16",
    ] {
        let response = format!("permessage-deflate; {bad}");
        assert!(
            matches!(
                client(&config(), &response),
                Err(HandshakeError::BadExtension(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        client(&config(), "permessage-deflate; ;"),
        Err(HandshakeError::BadExtension(_))
    ));
}

#[test]
fn accept_response_rejects_server_max_window_bits_larger_than_requested() {
    let cfg = DeflateConfig {
        server_max_window_bits: Some(10),
        ..config()
    };
    assert!(matches!(
        client(&cfg, "permessage-deflate; server_max_window_bits=11"),
        Err(HandshakeError::BadExtension(_))
    ));
    assert_eq!(
        client(&cfg, "permessage-deflate; server_max_window_bits=10"),
        Ok(Some(agreed(false, false, 10, 15)))
    );
    assert_eq!(
        client(&cfg, "permessage-deflate; server_max_window_bits=8"),
        Ok(Some(agreed(false, false, 8, 15)))
    );
}

#[test]
fn accept_response_rejects_ignored_requests() {
    let cfg = DeflateConfig {
        server_max_window_bits: Some(10),
        ..config()
    };
    assert!(matches!(
        client(&cfg, "permessage-deflate"),
        Err(HandshakeError::BadExtension(_))
    ));
    let cfg = DeflateConfig {
        server_no_context_takeover: true,
        ..config()
    };
    assert!(matches!(
        client(&cfg, "permessage-deflate"),
        Err(HandshakeError::BadExtension(_))
    ));
}

#[test]
fn accept_response_allows_unrequested_server_params() {
    // RFC 7692 §7.1.1.1 and §7.1.2.1: a server may add these without being asked.
    assert_eq!(
        client(
            &config(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
        ),
        Ok(Some(agreed(true, false, 9, 15)))
    );
    // §7.1.1.2: and it may ask the client not to take over context.
    assert_eq!(
        client(&config(), "permessage-deflate; client_no_context_takeover"),
        Ok(Some(agreed(false, true, 15, 15)))
    );
}

#[test]
fn accept_response_checks_client_max_window_bits_against_offer() {
    let cfg = DeflateConfig {
        client_max_window_bits: Some(10),
        ..config()
    };
    assert!(matches!(
        client(&cfg, "permessage-deflate; client_max_window_bits=11"),
        Err(HandshakeError::BadExtension(_))
    ));
    assert_eq!(
        client(&cfg, "permessage-deflate; client_max_window_bits=9"),
        Ok(Some(agreed(false, false, 15, 9)))
    );
    // Offered bare: any value 8–15 is acceptable.
    assert_eq!(
        client(&config(), "permessage-deflate; client_max_window_bits=8"),
        Ok(Some(agreed(false, false, 15, 8)))
    );
}

#[test]
fn accept_response_keeps_offered_client_no_context_takeover() {
    // Offering it is a promise (RFC 7692 §7.1.1.2), whatever the server answers.
    let cfg = DeflateConfig {
        client_no_context_takeover: true,
        ..config()
    };
    assert_eq!(
        client(&cfg, "permessage-deflate"),
        Ok(Some(agreed(false, true, 15, 15)))
    );
}

#[test]
fn accept_response_rejects_malformed_header() {
    assert!(matches!(
        client(&config(), "permessage-deflate; server_max_window_bits=\"10"),
        Err(HandshakeError::BadExtension(_))
    ));
}

fn arb_bits() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![Just(None), (8u8..=15).prop_map(Some)]
}

fn arb_config() -> impl Strategy<Value = DeflateConfig> {
    (any::<bool>(), any::<bool>(), arb_bits(), arb_bits()).prop_map(|(s, c, sb, cb)| {
        DeflateConfig {
            server_no_context_takeover: s,
            client_no_context_takeover: c,
            server_max_window_bits: sb,
            client_max_window_bits: cb,
            ..config()
        }
    })
}

proptest! {
    #[test]
    fn negotiation_agrees_on_both_sides_for_any_configs(
        client_cfg in arb_config(),
        server_cfg in arb_config(),
    ) {
        let offer = client_offer(&client_cfg).unwrap();
        let (params, response) = server(&server_cfg, &offer).unwrap();
        prop_assert_eq!(client(&client_cfg, &response), Ok(Some(params)));
        // Every request of the client is honoured.
        prop_assert!(params.server_no_context_takeover || !client_cfg.server_no_context_takeover);
        prop_assert!(params.client_no_context_takeover || !client_cfg.client_no_context_takeover);
        if let Some(bits) = client_cfg.server_max_window_bits {
            prop_assert!(params.server_max_window_bits <= bits);
        }
        if let Some(bits) = client_cfg.client_max_window_bits {
            prop_assert!(params.client_max_window_bits <= bits);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 7692 §7.2.3 examples
// ---------------------------------------------------------------------------------------------

const HELLO_RFC: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

fn receiver(keep_context: bool) -> PerMessageDeflate {
    // A server receives client messages: client_no_context_takeover governs its inflater.
    PerMessageDeflate::new(
        agreed(false, !keep_context, 15, 15),
        Role::Server,
        &config(),
    )
}

#[test]
fn rfc7692_7_2_3_1_hello_decompresses() {
    let mut pmd = receiver(false);
    assert_eq!(receive(&mut pmd, &HELLO_RFC, 100, 1000).unwrap(), b"Hello");
    // Byte by byte gives the same.
    assert_eq!(receive(&mut pmd, &HELLO_RFC, 1, 1000).unwrap(), b"Hello");
}

#[test]
fn rfc7692_7_2_3_1_our_compressor_output_for_hello() {
    // compress() sends "Hello" uncompressed (7 bytes is not smaller than 5), so check the
    // compressor underneath: the bytes are the RFC's, and they decode back to Hello.
    let mut c = new_compressor(1);
    let mut out = Vec::new();
    assert!(deflate_chunks(
        &mut c,
        b"Hello",
        usize::MAX,
        TDEFLFlush::Sync,
        &mut out,
        usize::MAX
    ));
    assert_eq!(out, HELLO_RFC);
    assert_eq!(
        receive(&mut receiver(false), &out, 3, 1000).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc7692_7_2_3_2_second_hello_uses_context() {
    let mut pmd = receiver(true);
    assert_eq!(receive(&mut pmd, &HELLO_RFC, 100, 1000).unwrap(), b"Hello");
    assert_eq!(
        receive(&mut pmd, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100, 1000).unwrap(),
        b"Hello"
    );
    // Our compressor, keeping context, encodes the second "Hello" as a reference into the first
    // (miniz_oxide picks different Huffman codes than the RFC's zlib output, so the bytes
    // differ), and a receiver keeping context decodes it.
    let mut c = new_compressor(1);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    assert!(deflate_chunks(
        &mut c,
        b"Hello",
        usize::MAX,
        TDEFLFlush::Sync,
        &mut first,
        usize::MAX
    ));
    assert!(deflate_chunks(
        &mut c,
        b"Hello",
        usize::MAX,
        TDEFLFlush::Sync,
        &mut second,
        usize::MAX
    ));
    assert!(second.len() < first.len());
    let mut pmd = receiver(true);
    assert_eq!(receive(&mut pmd, &first, 100, 1000).unwrap(), b"Hello");
    assert_eq!(receive(&mut pmd, &second, 1, 1000).unwrap(), b"Hello");
}

#[test]
fn rfc7692_7_2_3_2_second_hello_needs_the_context() {
    // Without context the back-reference reaches before the start of the message: it must not
    // decode to "Hello" (it reads the zeroed window instead of a previous message).
    let mut pmd = receiver(false);
    assert_eq!(receive(&mut pmd, &HELLO_RFC, 100, 1000).unwrap(), b"Hello");
    let second = receive(&mut pmd, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100, 1000).unwrap();
    assert_ne!(second, b"Hello");
}

#[test]
fn rfc7692_7_2_3_3_stored_block_decompresses() {
    let msg = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(
        receive(&mut receiver(true), &msg, 4, 1000).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc7692_7_2_3_4_bfinal_block_decompresses_and_keeps_context() {
    let mut pmd = receiver(true);
    let msg = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(receive(&mut pmd, &msg, 100, 1000).unwrap(), b"Hello");
    // The stream went on after the final block, and the window still holds "Hello".
    assert_eq!(
        receive(&mut pmd, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100, 1000).unwrap(),
        b"Hello"
    );
}

#[test]
fn final_block_without_trailing_empty_block_is_accepted_and_keeps_context() {
    // Some peers end each message with BFINAL and nothing after it (unlike §7.2.3.4's example).
    let mut pmd = receiver(true);
    let msg = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(receive(&mut pmd, &msg, 3, 1000).unwrap(), b"Hello");
    assert_eq!(receive(&mut pmd, &msg, 100, 1000).unwrap(), b"Hello");
    assert_eq!(
        receive(&mut pmd, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100, 1000).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc7692_7_2_3_5_two_deflate_blocks_in_one_message() {
    let msg = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    for piece in [1, 2, 5, 100] {
        assert_eq!(
            receive(&mut receiver(true), &msg, piece, 1000).unwrap(),
            b"Hello"
        );
    }
}

#[test]
fn rfc7692_7_2_3_6_empty_fragment_and_empty_payload() {
    // "Hello" sent as a compressed fragment followed by an empty one (0x00).
    let mut pmd = receiver(true);
    let mut out = Vec::new();
    pmd.decompress(
        &[
            0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
        ],
        &mut out,
        100,
    )
    .unwrap();
    pmd.decompress(&[0x00], &mut out, 100).unwrap();
    pmd.finish_message(&mut out, 100).unwrap();
    assert_eq!(out, b"Hello");
    // A compressed message whose payload is empty is an empty message, context untouched.
    assert_eq!(receive(&mut pmd, &[], 1, 100).unwrap(), b"");
    assert_eq!(
        receive(&mut pmd, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100, 1000).unwrap(),
        b"Hello"
    );
}

#[test]
fn rfc7692_7_2_1_output_is_one_sync_flushed_message_without_tail() {
    for role in [Role::Server, Role::Client] {
        let mut pmd = PerMessageDeflate::new(agreed(false, false, 15, 15), role, &config());
        let msg = text(3000, 7);
        let mut out = vec![0xaa]; // appends, keeping what was there
        assert!(pmd.compress(&msg, &mut out));
        assert_eq!(out[0], 0xaa);
        let mut wire = out[1..].to_vec();
        wire.extend_from_slice(&TAIL);
        let mut decoded = Vec::new();
        Puff::run(&wire, &mut decoded).unwrap();
        assert_eq!(decoded, msg);
    }
}

// ---------------------------------------------------------------------------------------------
// Codec behaviour
// ---------------------------------------------------------------------------------------------

#[test]
fn compress_skips_payloads_below_threshold() {
    let cfg = DeflateConfig {
        threshold: 100,
        ..config()
    };
    let mut pmd = PerMessageDeflate::new(agreed(false, false, 15, 15), Role::Server, &cfg);
    let mut out = b"keep".to_vec();
    assert!(!pmd.compress(&text(99, 1), &mut out));
    assert_eq!(out, b"keep");
    assert!(pmd.compress(&text(100, 1), &mut out));
    assert_eq!(pmd.heap_bytes(), COMPRESSOR_HEAP_BYTES);
}

#[test]
fn compress_sends_uncompressed_when_not_smaller_and_leaves_out_untouched() {
    for params in [
        agreed(false, false, 15, 15),
        agreed(true, true, 15, 15),
        agreed(false, false, 9, 9),
    ] {
        let mut pmd = PerMessageDeflate::new(params, Role::Server, &config());
        let mut out = b"keep".to_vec();
        assert!(!pmd.compress(&noise(2000, 3), &mut out));
        assert_eq!(out, b"keep");
        assert!(!pmd.compress(b"", &mut out));
        assert!(!pmd.compress(b"a", &mut out));
        assert_eq!(out, b"keep");
    }
}

#[test]
fn compress_after_an_uncompressed_message_keeps_the_peer_in_sync() {
    // A message abandoned halfway must leave no trace: not in our own history (context
    // takeover), not in the shared compressor's state (no context).
    for params in [
        agreed(false, false, 15, 15),
        agreed(true, true, 15, 15),
        agreed(false, false, 9, 9),
    ] {
        let mut tx = PerMessageDeflate::new(params, Role::Server, &config());
        let mut rx = PerMessageDeflate::new(params, Role::Client, &config());
        // The third message repeats the first: a compressor that kept the abandoned second one
        // in its history would encode references the peer resolves differently.
        for (msg, compressible) in [
            (text(3000, 5), true),
            (noise(6000, 5), false),
            (text(3000, 5), true),
        ] {
            let mut out = Vec::new();
            assert_eq!(tx.compress(&msg, &mut out), compressible, "{params:?}");
            if compressible {
                assert_eq!(receive(&mut rx, &out, 1000, 1 << 20).unwrap(), msg);
            }
        }
    }
}

#[test]
fn level_zero_never_compresses() {
    let cfg = DeflateConfig {
        level: 0,
        ..config()
    };
    let mut pmd = PerMessageDeflate::new(agreed(false, false, 15, 15), Role::Client, &cfg);
    let mut out = Vec::new();
    assert!(!pmd.compress(&text(5000, 1), &mut out));
    assert!(out.is_empty());
    assert_eq!(pmd.heap_bytes(), 0);
}

#[test]
fn heap_bytes_is_zero_after_new() {
    for role in [Role::Server, Role::Client] {
        let pmd = PerMessageDeflate::new(agreed(false, false, 15, 15), role, &config());
        assert_eq!(pmd.heap_bytes(), 0);
    }
}

#[test]
fn heap_bytes_is_zero_after_messages_without_context() {
    for role in [Role::Server, Role::Client] {
        let params = agreed(true, true, 15, 15);
        let mut a = PerMessageDeflate::new(params, role, &config());
        let mut b = PerMessageDeflate::new(params, opposite(role), &config());
        for _ in 0..3 {
            let msg = text(4000, 9);
            let mut out = Vec::new();
            assert!(a.compress(&msg, &mut out));
            assert_eq!(a.heap_bytes(), 0);
            let mut got = Vec::new();
            b.decompress(&out, &mut got, 1 << 20).unwrap();
            assert_eq!(
                b.heap_bytes(),
                INFLATER_HEAP_BYTES,
                "inflater held mid-message"
            );
            b.finish_message(&mut got, 1 << 20).unwrap();
            assert_eq!(got, msg);
            assert_eq!(b.heap_bytes(), 0);
        }
    }
    // A window below 15 also means no per-connection compressor.
    let mut small = PerMessageDeflate::new(agreed(false, false, 10, 10), Role::Server, &config());
    assert!(small.compress(&text(4000, 9), &mut Vec::new()));
    assert_eq!(small.heap_bytes(), 0);
}

#[test]
fn heap_bytes_with_context_takeover_counts_compressor_and_inflater() {
    let params = agreed(false, false, 15, 15);
    let mut a = PerMessageDeflate::new(params, Role::Server, &config());
    let mut b = PerMessageDeflate::new(params, Role::Client, &config());
    let mut out = Vec::new();
    assert!(a.compress(&text(4000, 2), &mut out));
    receive(&mut b, &out, 512, 1 << 20).unwrap();
    assert_eq!(a.heap_bytes(), COMPRESSOR_HEAP_BYTES);
    assert_eq!(b.heap_bytes(), INFLATER_HEAP_BYTES);
    // Measured with a counting allocator on x86-64 for miniz_oxide 0.8 (see codec.rs).
    if cfg!(target_pointer_width = "64") {
        assert_eq!(COMPRESSOR_HEAP_BYTES, 319_326);
        assert_eq!(INFLATER_HEAP_BYTES, 43_312);
    }
    assert!(shared_buffer_bytes() <= COMPRESSOR_HEAP_BYTES + INFLATER_HEAP_BYTES);
    release_shared_buffers();
    assert_eq!(shared_buffer_bytes(), 0);
}

#[test]
fn per_message_deflate_is_small_inline() {
    assert!(std::mem::size_of::<Option<PerMessageDeflate>>() <= 48);
}

/// ~1 MiB of compressed zeros that inflates to 1 GiB + 1 MiB (DEFLATE's ratio tops out near
/// 1032:1, so "a few KB" cannot reach a GiB; every 1 KiB here is worth ~1 MiB).
fn bomb() -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut c = new_compressor(2);
    let (mut first, mut next) = (Vec::new(), Vec::new());
    assert!(deflate_chunks(
        &mut c,
        &zeros,
        usize::MAX,
        TDEFLFlush::Sync,
        &mut first,
        usize::MAX
    ));
    assert!(deflate_chunks(
        &mut c,
        &zeros,
        usize::MAX,
        TDEFLFlush::Sync,
        &mut next,
        usize::MAX
    ));
    // `next` only refers back into zeros, so repeating it keeps producing zeros.
    next.extend_from_slice(&TAIL);
    let mut bomb = first;
    bomb.extend_from_slice(&TAIL);
    for _ in 0..1024 {
        bomb.extend_from_slice(&next);
    }
    bomb
}

#[test]
fn decompression_bomb_fails_at_max_len_without_allocating_more() {
    let bomb = bomb();
    assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
    let max_len = 1 << 20;
    for piece in [bomb.len(), 4096] {
        let mut pmd = receiver(true);
        let mut out = Vec::new();
        let mut result = Ok(());
        let mut fed = 0;
        for chunk in bomb.chunks(piece) {
            result = pmd.decompress(chunk, &mut out, max_len);
            fed += chunk.len();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(ProtocolError::MessageTooLarge { limit: max_len })
        );
        assert!(
            fed <= 8192 || piece == bomb.len(),
            "stopped only after {fed} bytes"
        );
        assert!(out.len() <= max_len);
        assert!(out.capacity() <= max_len, "capacity {}", out.capacity());
    }
}

#[test]
fn decompress_accepts_exactly_max_len() {
    let msg = text(10_000, 4);
    let mut tx = PerMessageDeflate::new(agreed(false, false, 15, 15), Role::Client, &config());
    let mut out = Vec::new();
    assert!(tx.compress(&msg, &mut out));
    assert_eq!(
        receive(&mut receiver(true), &out, 100, msg.len()).unwrap(),
        msg
    );
    assert_eq!(
        receive(&mut receiver(true), &out, 100, msg.len() - 1),
        Err(ProtocolError::MessageTooLarge {
            limit: msg.len() - 1
        })
    );
}

#[test]
fn decompress_rejects_invalid_data() {
    for bad in [
        &[0xff; 16][..],                     // reserved block type 3
        &[0x00, 0x05, 0x00, 0x00, 0x00][..], // stored block with NLEN != !LEN
        &[0x04, 0xff, 0xff][..],             // dynamic block with impossible table sizes
    ] {
        let mut pmd = receiver(true);
        let mut out = Vec::new();
        let result = pmd
            .decompress(bad, &mut out, 1 << 20)
            .and_then(|()| pmd.finish_message(&mut out, 1 << 20));
        assert_eq!(
            result,
            Err(ProtocolError::InvalidCompressedData),
            "{bad:02x?}"
        );
    }
}

proptest! {
    #[test]
    fn decompress_never_panics_and_respects_max_len_on_arbitrary_input(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        piece in 1usize..300,
        max_len in 0usize..4000,
        keep_context in any::<bool>(),
    ) {
        let mut pmd = receiver(keep_context);
        let mut out = Vec::new();
        let mut result = Ok(());
        for chunk in data.chunks(piece) {
            result = pmd.decompress(chunk, &mut out, max_len);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = pmd.finish_message(&mut out, max_len);
        }
        prop_assert!(out.len() <= max_len);
        prop_assert!(out.capacity() <= max_len.max(1) * 2);
        if let Err(e) = result {
            let expected = matches!(
                e,
                ProtocolError::MessageTooLarge { .. } | ProtocolError::InvalidCompressedData
            );
            prop_assert!(expected, "unexpected error {:?}", e);
        }
    }
}

/// Minimal LSB-first bit writer, to craft streams our compressor would never produce.
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= value << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// Huffman codes are sent most significant bit first.
    fn put_code(&mut self, code: u32, bits: u32) {
        let reversed = code.reverse_bits() >> (32 - bits);
        self.put(reversed, bits);
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

#[test]
fn inflater_reused_across_connections_never_exposes_previous_data() {
    // Connection A (peer keeps no context) receives a secret; its inflater goes to the pool.
    let mut a = receiver(false);
    // Longer than the window, so every distance would land in it.
    let secret = text(40_000, 77);
    let mut tx = PerMessageDeflate::new(agreed(true, true, 15, 15), Role::Client, &config());
    let mut wire = Vec::new();
    assert!(tx.compress(&secret, &mut wire));
    assert_eq!(receive(&mut a, &wire, 4096, 1 << 20).unwrap(), secret);
    // Connection B gets a crafted message copying 258 bytes from 1000 bytes before its start.
    let mut w = BitWriter {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(0, 1); // BFINAL = 0
    w.put(1, 2); // fixed Huffman
    w.put_code(0b1100_0101, 8); // length symbol 285 = 258 bytes
    w.put_code(19, 5); // distance code 19: 769 + 8 extra bits
    w.put(1000 - 769, 8);
    w.put_code(0, 7); // end of block
    w.put(0, 3); // empty stored block header; the tail follows
    let crafted = w.finish();
    let mut b = receiver(false);
    let got = receive(&mut b, &crafted, 100, 1 << 20).unwrap();
    assert_eq!(got, vec![0u8; 258]);
}

#[test]
fn inflater_accepts_32k_window_whatever_was_agreed() {
    // The client agreed to window 8, but a zlib peer may use 9 (or a buggy one 15): accept it.
    let msg = text(20_000, 12);
    let mut peer = PerMessageDeflate::new(agreed(false, false, 15, 15), Role::Client, &config());
    let mut wire = Vec::new();
    assert!(peer.compress(&msg, &mut wire));
    let mut with_tail = wire.clone();
    with_tail.extend_from_slice(&TAIL);
    let refs = Puff::run(&with_tail, &mut Vec::new()).unwrap();
    assert!(
        refs.iter().any(|r| r.dist > 512),
        "the test needs far references"
    );
    let mut rx = PerMessageDeflate::new(agreed(false, false, 15, 8), Role::Server, &config());
    assert_eq!(receive(&mut rx, &wire, 777, 1 << 20).unwrap(), msg);
}

#[test]
fn small_window_output_has_no_reference_beyond_the_window() {
    for bits in 8..=15u8 {
        let params = agreed(false, false, bits, bits);
        for role in [Role::Server, Role::Client] {
            let mut tx = PerMessageDeflate::new(params, role, &config());
            let msg = text(40_000, u64::from(bits));
            let mut wire = Vec::new();
            assert!(tx.compress(&msg, &mut wire));
            wire.extend_from_slice(&TAIL);
            let mut decoded = Vec::new();
            let refs = Puff::run(&wire, &mut decoded).unwrap();
            assert_eq!(decoded, msg);
            assert!(!refs.is_empty());
            let window = 1usize << bits;
            for r in refs {
                assert!(r.dist <= window, "bits {bits}: distance {}", r.dist);
                if bits < 15 {
                    let piece_start = r.pos / window * window;
                    assert!(
                        r.pos - r.dist >= piece_start,
                        "bits {bits}: crosses a piece"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips under every parameter combination
// ---------------------------------------------------------------------------------------------

fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..5000, any::<u64>()).prop_map(|(len, seed)| text(len, seed)),
        (0usize..5000, any::<u64>()).prop_map(|(len, seed)| noise(len, seed)),
        (0usize..2500, 0usize..2500, any::<u64>()).prop_map(|(a, b, seed)| {
            let mut m = text(a, seed);
            m.extend_from_slice(&noise(b, seed));
            m
        }),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn round_trip_under_any_agreement_in_both_roles(
        snct in any::<bool>(),
        cnct in any::<bool>(),
        sbits in 8u8..=15,
        cbits in 8u8..=15,
        role in prop_oneof![Just(Role::Server), Just(Role::Client)],
        level in 1u8..=9,
        piece in 1usize..3000,
        messages in proptest::collection::vec(arb_message(), 1..6),
    ) {
        let params = agreed(snct, cnct, sbits, cbits);
        let cfg = DeflateConfig { level, threshold: 16, ..config() };
        let mut tx = PerMessageDeflate::new(params, role, &cfg);
        let mut rx = PerMessageDeflate::new(params, opposite(role), &cfg);
        let (bits, no_context) = match role {
            Role::Server => (sbits, snct),
            Role::Client => (cbits, cnct),
        };
        let keeps_context = !no_context && bits == 15;
        let window = 1usize << bits;
        // Everything the receiver's window has seen, for the reference decoder.
        let mut history = Vec::new();
        for msg in &messages {
            let mut wire = Vec::new();
            if !tx.compress(msg, &mut wire) {
                prop_assert!(msg.len() < 16 || wire.is_empty());
                continue;
            }
            prop_assert!(wire.len() < msg.len());
            // Reference decoder: same bytes, and every back-reference within the rules.
            let start = history.len();
            let mut with_tail = wire.clone();
            with_tail.extend_from_slice(&TAIL);
            let refs = Puff::run(&with_tail, &mut history).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&history[start..], &msg[..]);
            for r in refs {
                prop_assert!(r.dist <= window, "distance {} over window {}", r.dist, window);
                let pos = r.pos - start;
                if !keeps_context {
                    prop_assert!(r.dist <= pos, "reference into an earlier message");
                    let piece_start = pos / window * window;
                    prop_assert!(pos - r.dist >= piece_start, "reference crosses a piece");
                }
            }
            // The peer, built from the same agreement in the other role.
            let got = receive(&mut rx, &wire, piece, 1 << 20)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, msg);
            if !keeps_context {
                prop_assert_eq!(tx.heap_bytes(), 0);
            }
            let peer_keeps = match role {
                Role::Server => !snct,
                Role::Client => !cnct,
            };
            if !peer_keeps {
                prop_assert_eq!(rx.heap_bytes(), 0);
            }
        }
    }
}
