//! Publish/subscribe server speaking the text protocol of the `ws-load` benchmark:
//! `sub:<topic>` → `subscribed:<topic>`, `unsub:<topic>` → `unsubscribed:<topic>`,
//! `pub:<topic>:<payload>` → `msg:<topic>:<payload>` to every subscriber of `<topic>`.
//! Anything else gets `error:<reason>`.
//!
//! `cargo run --release -p ws-std --example pubsub -- 127.0.0.1:9002`

use ws_std::{Callbacks, Message, Server, ServerConfig};

fn valid_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let (host, port) = addr.rsplit_once(':').expect("ADDR is host:port");
    let config = ServerConfig::new()
        .host(host.trim_matches(['[', ']']))
        .port(port.parse().expect("port is a number"));
    let handler = Callbacks::new().on_message(|api, client, message| {
        let Message::Text(text) = message else {
            return api.send_text(client.id, "error:text messages only");
        };
        let (verb, rest) = text.split_once(':').unwrap_or((&text, ""));
        match verb {
            "sub" if valid_topic(rest) => {
                api.subscribe(client.id, rest);
                api.send_text(client.id, &format!("subscribed:{rest}"));
            }
            "unsub" if valid_topic(rest) => {
                api.unsubscribe(client.id, rest);
                api.send_text(client.id, &format!("unsubscribed:{rest}"));
            }
            "pub" => match rest.split_once(':') {
                Some((topic, payload)) if valid_topic(topic) => {
                    api.publish(topic, Message::Text(format!("msg:{topic}:{payload}")));
                }
                _ => api.send_text(client.id, "error:expected pub:<topic>:<payload>"),
            },
            _ => api.send_text(client.id, "error:unknown command"),
        }
    });
    let server = Server::bind(config, handler)?;
    println!("pubsub server listening on ws://{}", server.local_addr());
    server.run_forever()
}
