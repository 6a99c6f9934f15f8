//! The browser chat of ws-mio's examples on the thread-per-client server: the application
//! (`ws-mio/examples/chat/app.rs`) is shared, and only the `use` line differs.
//!
//! `cargo run --release -p ws-std --example chat` (optional argument: HOST:PORT), then open
//! the printed address in a browser.

#[path = "../../ws-mio/examples/chat/app.rs"]
mod app;

use ws_std::{Server, ServerConfig};

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
