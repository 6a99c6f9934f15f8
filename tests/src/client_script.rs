//! One fixed conversation of our blocking client (`ws_std::client`) with an echo server (ours
//! or a real peer's), mirroring the peers' own scripts: text, binary, empty, large (sent in
//! 1000-byte frames), long-distance repeats (catches a compressor that ignores the agreed
//! window), ping/pong, non-ASCII, close 1000.

use std::time::Duration;

use ws_proto::{ClientRequest, CloseCode, ClosedBy, Config, Message};
use ws_std::client::{Client, ClientEvent};

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct ScriptOptions {
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// Fail unless the server accepted permessage-deflate.
    pub require_deflate: bool,
    /// Offer client_no_context_takeover and server_no_context_takeover.
    pub no_context_takeover: bool,
    /// Request this server_max_window_bits.
    pub server_max_window_bits: Option<u8>,
}

/// Pseudo-random lowercase letters (compressible, no short-distance repeats).
pub fn letters(n: usize, seed: u32) -> String {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn recv_message(ws: &mut Client, step: &str) -> Result<Message, String> {
    loop {
        match ws.recv().map_err(|e| format!("{step}: {e}"))? {
            ClientEvent::Message(m) => return Ok(m),
            ClientEvent::Ping(_) | ClientEvent::Pong(_) => {}
            ClientEvent::Closed(c) => return Err(format!("{step}: connection closed: {c:?}")),
        }
    }
}

fn echo(ws: &mut Client, step: &str, m: Message) -> Result<(), String> {
    ws.send(&m).map_err(|e| format!("{step}: send: {e}"))?;
    let got = recv_message(ws, step)?;
    if got != m {
        let show = |m: &Message| format!("{:?} of {} bytes", m.kind(), m.as_bytes().len());
        return Err(format!(
            "{step}: echo differs: got {}, want {}",
            show(&got),
            show(&m)
        ));
    }
    Ok(())
}

/// Runs the conversation against the echo server at `url`.
pub fn run(url: &str, opts: &ScriptOptions) -> Result<(), String> {
    let mut config = Config::default();
    config.deflate.enabled = opts.deflate;
    config.deflate.client_no_context_takeover = opts.no_context_takeover;
    config.deflate.server_no_context_takeover = opts.no_context_takeover;
    config.deflate.server_max_window_bits = opts.server_max_window_bits;
    config.outgoing_frame_size = 1000;
    let mut ws = Client::connect_with(url, config, ClientRequest::new("", ""))
        .map_err(|e| format!("connect {url}: {e}"))?;
    ws.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let agreed = ws.connection().deflate_params();
    if opts.require_deflate && agreed.is_none() {
        return Err(format!(
            "permessage-deflate not agreed: {:?}",
            ws.response()
        ));
    }
    if !opts.deflate && agreed.is_some() {
        return Err("permessage-deflate agreed without an offer".into());
    }
    echo(&mut ws, "text", Message::Text("hello".into()))?;
    echo(&mut ws, "binary", Message::Binary((0..=255).collect()))?;
    echo(&mut ws, "empty-text", Message::Text(String::new()))?;
    echo(&mut ws, "large-text", Message::Text(letters(100 << 10, 1)))?;
    let block = letters(20_000, 2).into_bytes();
    echo(
        &mut ws,
        "long-distance",
        Message::Binary([block.clone(), block].concat()),
    )?;
    echo(&mut ws, "non-ascii", Message::Text("κόσμε €".into()))?;
    ws.ping(b"ping-payload").map_err(|e| format!("ping: {e}"))?;
    match ws.recv().map_err(|e| format!("ping-pong: {e}"))? {
        ClientEvent::Pong(p) if p == b"ping-payload" => {}
        ClientEvent::Pong(p) => return Err(format!("ping-pong: pong payload {p:?}")),
        other => return Err(format!("ping-pong: expected a pong, got {other:?}")),
    }
    ws.close(CloseCode::NORMAL, "bye")
        .map_err(|e| format!("close: {e}"))?;
    loop {
        match ws.recv().map_err(|e| format!("close: {e}"))? {
            ClientEvent::Closed(c) => {
                if c.by != ClosedBy::Local || c.code != 1000 || !c.clean {
                    return Err(format!("close: {c:?}"));
                }
                return Ok(());
            }
            ClientEvent::Message(m) => return Err(format!("close: message after close: {m:?}")),
            _ => {}
        }
    }
}
