//! Echo server: every message goes back as it came (text as text, binary as binary), with
//! permessage-deflate when the client offers it and messages up to 64 MiB.
//!
//! `cargo run --release -p ws-std --example echo -- 127.0.0.1:9002`

#[path = "../../examples/apps.rs"]
mod apps;

use ws_std::Server; // on the event loop: `use ws_mio::Server;`

fn main() -> std::io::Result<()> {
    apps::log_to_stderr();
    let config = apps::large_messages(apps::config_from_args("127.0.0.1:9002"));
    let server = Server::bind(config, apps::Echo)?;
    println!("echo server listening on ws://{}", server.local_addr());
    server.run_forever()
}
