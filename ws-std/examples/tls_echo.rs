//! wss echo server from a certificate chain and key in PEM files.
//!
//! `cargo run -p ws-std --features tls --example tls_echo -- 127.0.0.1:9443 cert.pem key.pem`

#[path = "../../examples/apps.rs"]
mod apps;

use ws_std::Server; // the other server: `use ws_mio::Server;`

fn main() -> std::io::Result<()> {
    apps::log_to_stderr();
    let config = apps::tls_from_args(apps::config_from_args("127.0.0.1:9443"));
    let server = Server::bind(config, apps::Echo)?;
    println!("wss echo server listening on wss://{}", server.local_addr());
    server.run_forever()
}
