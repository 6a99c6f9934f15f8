//! Broadcast and pub/sub: every message a client sends goes to every client (encoded once), and
//! text commands `sub:<topic>` / `unsub:<topic>` / `pub:<topic>:<payload>` use named services.
//!
//! `cargo run --release -p ws-mio --example broadcast -- 127.0.0.1:9003`

use ws_mio::{Callbacks, Message, Server, ServerConfig};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".to_owned());
    let (host, port) = addr.rsplit_once(':').expect("ADDR is host:port");
    let config = ServerConfig::new()
        .host(host)
        .port(port.parse().expect("port is a number"));
    let handler = Callbacks::new().on_message(|api, client, message| {
        if let Message::Text(t) = &message {
            if let Some(topic) = t.strip_prefix("sub:") {
                return api.subscribe(client.id, topic);
            }
            if let Some(topic) = t.strip_prefix("unsub:") {
                return api.unsubscribe(client.id, topic);
            }
            if let Some((topic, payload)) = t.strip_prefix("pub:").and_then(|r| r.split_once(':')) {
                return api.publish(topic, Message::Text(payload.to_owned()));
            }
        }
        api.send_to_all(message);
    });
    let server = Server::bind(config, handler)?;
    println!("broadcast server listening on ws://{}", server.local_addr());
    server.run_forever()
}
