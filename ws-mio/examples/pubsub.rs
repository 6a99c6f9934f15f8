//! Publish/subscribe with text commands: `sub:<topic>`, `unsub:<topic>`, `pub:<topic>:<payload>`
//! (see `examples/apps.rs`). Topics are named services; a publish is encoded once.
//!
//! `cargo run --release -p ws-mio --example pubsub -- 127.0.0.1:9005`

#[path = "../../examples/apps.rs"]
mod apps;

use ws_mio::Server; // on threads: `use ws_std::Server;`

fn main() -> std::io::Result<()> {
    apps::log_to_stderr();
    let server = Server::bind(apps::config_from_args("127.0.0.1:9005"), apps::PubSub)?;
    println!("pubsub server listening on ws://{}", server.local_addr());
    server.run_forever()
}
