//! wss echo server from a certificate chain and key in PEM files.
//!
//! `cargo run -p ws-std --features tls --example tls_echo -- 127.0.0.1:9443 cert.pem key.pem`
//! (`ws-std/tests/data` has a test-only pair for `localhost`, signed by `ca.pem` there).

use ws_std::{Callbacks, Server, ServerConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tls_echo HOST:PORT CERT.pem KEY.pem";
    let addr = args.next().expect(usage);
    let (cert, key) = (args.next().expect(usage), args.next().expect(usage));
    let (host, port) = addr.rsplit_once(':').expect("ADDR is host:port");
    let config = ServerConfig::new()
        .host(host.trim_matches(['[', ']']))
        .port(port.parse().expect("port is a number"))
        .tls(cert, key);
    let handler = Callbacks::new().on_message(|api, client, message| api.send(client.id, message));
    let server = Server::bind(config, handler)?;
    println!("wss echo server listening on wss://{}", server.local_addr());
    server.run_forever()
}
