//! Chat in the browser: serves its page at http://127.0.0.1:9001/ and the WebSocket on the same
//! port. Rooms are subscriptions; a message to a room is a publish.
//!
//! `cargo run --release -p ws-std --example chat` (optional argument: HOST:PORT)

#[path = "../../examples/apps.rs"]
mod apps;

use ws_std::Server; // on the event loop: `use ws_mio::Server;` — nothing else changes

fn main() -> std::io::Result<()> {
    apps::log_to_stderr();
    let server = Server::bind(
        apps::config_from_args("127.0.0.1:9001"),
        apps::chat::Chat::default(),
    )?;
    println!("chat: open http://{}/ in your browser", server.local_addr());
    server.run_forever()
}
