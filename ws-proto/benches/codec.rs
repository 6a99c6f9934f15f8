//! Codec micro-benchmarks. Every figure has a peer in the same run: unmasking next to memcpy of
//! the same buffer, UTF-8 validation next to `std::str::from_utf8`.
//!
//! `cargo bench -p ws-proto --bench codec`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ws_proto::mask::{apply_mask, apply_mask_naive, apply_mask_portable, unmask_to_front};
use ws_proto::utf8::Utf8Validator;
use ws_proto::{Config, Connection, Event, Role, SharedFrame};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The `len` bytes of `store` (at least `len` + 4095 long) that start on a 4 KiB boundary.
fn page_aligned(store: &mut [u8], len: usize) -> &mut [u8] {
    let skip = store.as_ptr().align_offset(4096);
    &mut store[skip..skip + len]
}

fn masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [64, 1 << 10, 16 << 10, 64 << 10, 1 << 20, 16 << 20] {
        // Both page-aligned: two buffers allocated one after the other here lie 16 bytes past a
        // multiple of 4 KiB apart, where glibc's copy (`rep movsb`) on this machine's AMD CPU runs
        // 30 times slower (2.5 instead of 78 GiB/s at 16 KiB), a peer far below its best.
        let (mut src_store, mut dst_store) = (vec![0u8; size + 4096], vec![0u8; size + 4096]);
        let src = page_aligned(&mut src_store, size);
        for (i, b) in src.iter_mut().enumerate() {
            *b = i as u8;
        }
        let src = &*src;
        let dst = page_aligned(&mut dst_store, size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("memcpy/{size}"), |b| {
            b.iter(|| dst.copy_from_slice(black_box(src)))
        });
        g.bench_function(format!("unmask_in_place/{size}"), |b| {
            b.iter(|| apply_mask(black_box(&mut *dst), KEY, 0))
        });
        g.bench_function(format!("unmask_in_place_portable/{size}"), |b| {
            b.iter(|| apply_mask_portable(black_box(&mut *dst), KEY, 0))
        });
        g.bench_function(format!("copy_and_unmask/{size}"), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(src));
                apply_mask(dst, KEY, 0)
            })
        });
        // A frame read whole, header first: unmasked and moved to the front in one pass.
        let mut framed_store = vec![0u8; size + 8 + 4096];
        let framed = page_aligned(&mut framed_store, size + 8);
        g.bench_function(format!("unmask_to_front/{size}"), |b| {
            b.iter(|| unmask_to_front(black_box(&mut *framed), 8, Some(KEY), 0))
        });
        // A large frame's read placed a distance into its buffer (see `receive_direct`).
        let mut far_store = vec![0u8; size + 300 + 4096];
        let far = page_aligned(&mut far_store, size + 300);
        g.bench_function(format!("unmask_to_front_300/{size}"), |b| {
            b.iter(|| unmask_to_front(black_box(&mut *far), 300, Some(KEY), 0))
        });
        g.bench_function(format!("unmask_naive/{size}"), |b| {
            b.iter(|| apply_mask_naive(black_box(&mut *dst), KEY, 1))
        });
    }
    g.finish();
}

/// A server connection past its handshake, as each benchmark's fresh input needs.
fn server() -> Connection {
    Connection::from_upgraded(
        Role::Server,
        Config::default(),
        None,
        [0; 32],
        Instant::now(),
    )
}

fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 65535 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&KEY);
    let start = f.len();
    f.extend_from_slice(payload);
    apply_mask(&mut f[start..], KEY, 0);
    f
}

fn decoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    // 1,000 masked 64-byte frames in one buffer, as a busy socket read delivers them.
    let n = 1000;
    let text: Vec<u8> = b"0123456789abcdef"
        .iter()
        .cycle()
        .take(64)
        .copied()
        .collect();
    for (name, opcode) in [("binary64", 2u8), ("text64", 1u8)] {
        let input: Vec<u8> = (0..n).flat_map(|_| masked_frame(opcode, &text)).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{name}_x1000"), |b| {
            b.iter_batched(
                server,
                |mut conn| {
                    conn.receive(black_box(&input), Instant::now());
                    let mut count = 0;
                    while let Some(e) = conn.poll_event() {
                        if let Event::Message(m) = e {
                            count += m.as_bytes().len();
                        }
                    }
                    assert_eq!(count, 64 * n);
                },
                BatchSize::SmallInput,
            )
        });
    }
    let big = vec![b'a'; 16 << 20];
    for (name, opcode) in [("binary_16MiB", 2u8), ("text_16MiB", 1u8)] {
        let input = masked_frame(opcode, &big);
        g.throughput(Throughput::Bytes(big.len() as u64));
        g.sample_size(20);
        g.bench_function(name, |b| {
            b.iter_batched(
                server,
                |mut conn| {
                    conn.receive(black_box(&input), Instant::now());
                    assert!(matches!(conn.poll_event(), Some(Event::Message(_))));
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let ascii = "The quick brown fox jumps over the lazy dog. ".repeat(23_000);
    let mixed = "κόσμε, 世界, Grüße, 😀 — and some ASCII too. ".repeat(16_000);
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        let bytes = text.as_bytes();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("std_from_utf8/{name}"), |b| {
            b.iter(|| std::str::from_utf8(black_box(bytes)).is_ok())
        });
        g.bench_function(format!("incremental_4KiB_chunks/{name}"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::default();
                for chunk in black_box(bytes).chunks(4093) {
                    v.feed(chunk).unwrap();
                }
                v.finish().unwrap()
            })
        });
    }
    g.finish();
}

fn broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast");
    let conns = 1000;
    let text = "a message for everyone, sixty-four bytes long.......";
    let queues = || (0..conns).map(|_| server()).collect::<Vec<_>>();
    g.throughput(Throughput::Elements(conns as u64));
    g.bench_function("encode_once_to_1000_queues", |b| {
        b.iter_batched(
            queues,
            |mut all| {
                let frame = SharedFrame::text(black_box(text));
                for c in &mut all {
                    c.send_shared(&frame).unwrap();
                }
                all
            },
            BatchSize::SmallInput,
        )
    });
    // The peer: the frame encoded and copied into each queue, as a loop of sends does.
    g.bench_function("encode_per_queue_1000_queues", |b| {
        b.iter_batched(
            queues,
            |mut all| {
                for c in &mut all {
                    c.send_text(black_box(text)).unwrap();
                }
                all
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn deflate(c: &mut Criterion) {
    use ws_proto::deflate::PerMessageDeflate;
    use ws_proto::{DeflateConfig, DeflateParams};
    let mut g = c.benchmark_group("deflate");
    // No context takeover: every iteration compresses from scratch, as a fresh message would.
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let config = DeflateConfig::default();
    // Text-like: words drawn at random from a small vocabulary (compresses about 3:1, like
    // chat or JSON traffic), 16 KiB per message.
    let words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "user",
        "room",
        "message",
        "hello",
        "world",
        "rust",
        "websocket",
        "frame",
        "\"id\":",
        "\"text\":",
        "{",
        "}",
        "alice",
        "bob",
        "server",
        "client",
        "ping",
        "pong",
        "close",
        "data",
        "json",
        "value",
        "12345",
        "true",
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut text = Vec::new();
    while text.len() < 16 << 10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        text.push(b' ');
    }
    // xorshift bytes: incompressible, so the codec should notice and send them as they are.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..text.len())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for (name, data) in [("text", &text), ("random", &random)] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let mut tx = PerMessageDeflate::new(params, Role::Server, &config);
        let mut out = Vec::new();
        g.bench_function(format!("compress/{name}"), |b| {
            b.iter(|| {
                out.clear();
                tx.compress(black_box(data), &mut out)
            })
        });
        if name == "random" {
            // Incompressible input is sent as it is (compress returns false): nothing to inflate.
            continue;
        }
        let mut plain = Vec::with_capacity(data.len());
        g.bench_function(format!("inflate/{name}"), |b| {
            b.iter_batched(
                || {
                    let mut tx = PerMessageDeflate::new(params, Role::Server, &config);
                    let mut c = Vec::new();
                    tx.compress(data, &mut c);
                    (PerMessageDeflate::new(params, Role::Client, &config), c)
                },
                |(mut rx, c)| {
                    plain.clear();
                    if !c.is_empty() {
                        rx.decompress(&c, &mut plain, usize::MAX).unwrap();
                        rx.finish_message(&mut plain, usize::MAX).unwrap();
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, masking, decoding, utf8, broadcast, deflate);
criterion_main!(benches);
