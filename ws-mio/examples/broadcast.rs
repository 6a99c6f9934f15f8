//! Broadcast: every message from any client goes to every client (the sender included),
//! unchanged, encoded once for all of them.
//!
//! `cargo run --release -p ws-mio --example broadcast -- 127.0.0.1:9003`

#[path = "../../examples/apps.rs"]
mod apps;

use ws_mio::Server; // on threads: `use ws_std::Server;`

fn main() -> std::io::Result<()> {
    apps::log_to_stderr();
    let config = apps::large_messages(apps::config_from_args("127.0.0.1:9003"));
    let server = Server::bind(config, apps::Broadcast)?;
    println!("broadcast server listening on ws://{}", server.local_addr());
    server.run_forever()
}
