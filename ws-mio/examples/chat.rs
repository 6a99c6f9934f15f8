//! Chat in the browser: serves its page at http://127.0.0.1:9001/ and the WebSocket on the same
//! port. Rooms are subscriptions; a message to a room is a publish.
//!
//! `cargo run --release -p ws-mio --example chat` (optional argument: HOST:PORT)

#[path = "chat/app.rs"]
mod app;

use ws_mio::{Server, ServerConfig}; // ws-std: `use ws_std::{Server, ServerConfig};` — nothing else changes

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let (host, port) = addr.rsplit_once(':').expect("ADDR is host:port");
    let config = ServerConfig::new()
        .host(host)
        .port(port.parse().expect("port is a number"));
    let server = Server::bind(config, app::Chat::default())?;
    println!("chat: open http://{}/ in your browser", server.local_addr());
    server.run_forever()
}
