//! Echo server: every message goes back as it came (text as text, binary as binary), with
//! permessage-deflate when the client offers it and messages up to 64 MiB.
//!
//! `cargo run --release -p ws-mio --example echo -- 127.0.0.1:9001`

#[path = "../../examples/apps.rs"]
mod apps;

use ws_mio::Server; // on threads: `use ws_std::Server;`

fn main() -> std::io::Result<()> {
    apps::log_to_stderr();
    let config = apps::large_messages(apps::config_from_args("127.0.0.1:9001"));
    let server = Server::bind(config, apps::Echo)?;
    println!("echo server listening on ws://{}", server.local_addr());
    server.run_forever()
}
