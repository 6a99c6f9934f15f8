//! The compressors and inflaters of connections without context come from one pool for the whole
//! process, whatever thread the connection runs on (a thread per client must not mean a
//! compressor per client). A test binary of its own: the pool is process-wide, and no other test
//! may use it meanwhile.

use std::sync::{Arc, Barrier};

use ws_proto::deflate::{release_shared_buffers, shared_buffer_bytes, PerMessageDeflate};
use ws_proto::{DeflateConfig, DeflateParams, Role};

fn no_context(role: Role) -> PerMessageDeflate {
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let mut config = DeflateConfig::default();
    config.threshold = 0;
    PerMessageDeflate::new(params, role, &config)
}

/// One message compressed by a server and inflated by a client, each borrowing from the pool.
fn compress_one() {
    let text = "the same words again and again, ".repeat(64);
    let (mut server, mut client) = (no_context(Role::Server), no_context(Role::Client));
    let mut wire = Vec::new();
    assert!(server.compress(text.as_bytes(), &mut wire));
    let mut message = Vec::new();
    client.decompress(&wire, &mut message, 1 << 20).unwrap();
    client.finish_message(&mut message, 1 << 20).unwrap();
    assert_eq!(message, text.as_bytes());
    assert_eq!(
        server.heap_bytes() + client.heap_bytes(),
        0,
        "nothing stays with a connection"
    );
}

#[test]
fn connections_on_any_thread_share_a_bounded_pool() {
    release_shared_buffers();
    assert_eq!(shared_buffer_bytes(), 0);
    // What a connection on another thread used comes back where this thread sees it...
    std::thread::spawn(compress_one).join().unwrap();
    let one = shared_buffer_bytes();
    assert!(
        one > 0,
        "the compressor and inflater went back to the shared pool"
    );
    // ... and serves the next message, on any thread, one at a time.
    compress_one();
    std::thread::spawn(compress_one).join().unwrap();
    assert_eq!(shared_buffer_bytes(), one);
    // Many at once: each borrows its own, and the pool keeps at most 8 of them afterwards.
    let threads = 20;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                compress_one();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let after = shared_buffer_bytes();
    assert!(
        after >= one && after <= 8 * one,
        "{after} bytes idle, one is {one}"
    );
    release_shared_buffers();
    assert_eq!(shared_buffer_bytes(), 0);
}
