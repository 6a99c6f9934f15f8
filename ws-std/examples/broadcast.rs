//! Broadcast server: every message from any client goes to every client (the sender included),
//! unchanged and with the same opcode, encoded once for all of them.
//!
//! `cargo run --release -p ws-std --example broadcast -- 127.0.0.1:9002`

use ws_std::{Callbacks, Server, ServerConfig};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let (host, port) = addr.rsplit_once(':').expect("ADDR is host:port");
    let config = ServerConfig::new()
        .host(host.trim_matches(['[', ']']))
        .port(port.parse().expect("port is a number"))
        .max_incoming_frame_size(64 << 20)
        .max_message_size(64 << 20);
    let handler = Callbacks::new().on_message(|api, _client, message| api.send_to_all(message));
    let server = Server::bind(config, handler)?;
    println!("broadcast server listening on ws://{}", server.local_addr());
    server.run_forever()
}
