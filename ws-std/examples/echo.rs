//! Echo server: every message goes back as it came (text as text, binary as binary), with
//! permessage-deflate when the client offers it and messages and frames up to 64 MiB.
//!
//! `cargo run --release -p ws-std --example echo -- 127.0.0.1:9002`

use ws_std::{Callbacks, Server, ServerConfig};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let (host, port) = addr.rsplit_once(':').expect("ADDR is host:port");
    let config = ServerConfig::new()
        .host(host.trim_matches(['[', ']']))
        .port(port.parse().expect("port is a number"))
        .compression(true)
        .max_incoming_frame_size(64 << 20)
        .max_message_size(64 << 20);
    let handler = Callbacks::new().on_message(|api, client, message| api.send(client.id, message));
    let server = Server::bind(config, handler)?;
    println!("echo server listening on ws://{}", server.local_addr());
    server.run_forever()
}
