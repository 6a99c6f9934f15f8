//! The example applications, written once against the API both servers share and included by
//! the examples of ws-mio and ws-std (`#[path = "../../examples/apps.rs"] mod apps;`). Each
//! example's `main` differs between the two servers only in its `use` line.

#![allow(dead_code)]

#[path = "chat/app.rs"]
pub mod chat;

use ws_proto::server::{Client, Handler, ServerApi, ServerConfig};
use ws_proto::{Message, MessageRef};

/// Prints the server's log records on stderr, warnings and errors by default (a client refused at
/// the connection limit, a thread that could not start), or down to the level in `WS_LOG`
/// (`error`, `warn`, `info`, `debug`, `trace`, `off`): without a logger, `log` drops them all.
pub fn log_to_stderr() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::max_level()
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                eprintln!("{} {}: {}", record.level(), record.target(), record.args());
            }
        }
        fn flush(&self) {}
    }
    let level = std::env::var("WS_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}

/// `ServerConfig` for the `HOST:PORT` in the first argument, or `default`.
pub fn config_from_args(default: &str) -> ServerConfig {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_owned());
    let (host, port) = addr.rsplit_once(':').expect("ADDR is HOST:PORT");
    ServerConfig::new()
        .host(host.trim_matches(['[', ']']))
        .port(port.parse().expect("PORT is a number"))
}

/// `config` with TLS from the PEM files named in the second and third arguments.
pub fn tls_from_args(config: ServerConfig) -> ServerConfig {
    let mut args = std::env::args().skip(2);
    let usage = "usage: tls_echo HOST:PORT CERT.pem KEY.pem";
    let (cert, key) = (args.next().expect(usage), args.next().expect(usage));
    config.tls(cert, key)
}

/// Limits for the echo and broadcast servers that conformance and load runs start: messages and
/// frames up to 64 MiB, permessage-deflate when offered.
pub fn large_messages(config: ServerConfig) -> ServerConfig {
    config
        .compression(true)
        .max_incoming_frame_size(64 << 20)
        .max_message_size(64 << 20)
}

/// Echoes every message as it came: text as text, binary as binary. A small message comes lent
/// and is copied once, into the output; a larger one comes in a buffer of its own and goes back
/// out in it.
pub struct Echo;

impl Handler for Echo {
    fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
        api.send(client.id, message);
    }
    fn on_message_ref(&self, api: &dyn ServerApi, client: &Client, message: MessageRef<'_>) {
        api.send_ref(client.id, message);
    }
}

/// Sends every message to every client, the sender included, encoded once.
pub struct Broadcast;

impl Handler for Broadcast {
    fn on_message(&self, api: &dyn ServerApi, _client: &Client, message: Message) {
        api.send_to_all(message);
    }
}

/// Publish/subscribe over text commands (the protocol of the `ws-load` benchmark):
/// `sub:<topic>` → `subscribed:<topic>`, `unsub:<topic>` → `unsubscribed:<topic>`,
/// `pub:<topic>:<payload>` → `msg:<topic>:<payload>` to every subscriber; anything else gets
/// `error:<reason>`. Topics are 1–64 characters of `[A-Za-z0-9_.-]`.
pub struct PubSub;

fn valid_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Handler for PubSub {
    fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
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
    }
}
