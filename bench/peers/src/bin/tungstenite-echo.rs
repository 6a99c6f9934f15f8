//! `tungstenite-echo ADDR`: tungstenite, one blocking std::net thread per
//! client, echoing text and binary messages. The reference peer for ws-std.

use std::net::{TcpListener, TcpStream};
use std::thread;

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message};

fn main() -> std::io::Result<()> {
    let addr = ws_bench_peers::addr_from_args("tungstenite-echo");
    let listener = TcpListener::bind(addr)?;
    eprintln!("tungstenite-echo listening on {addr}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let spawned = thread::Builder::new()
            // Echo needs little stack; keeps 10k idle clients cheap, like ws-std.
            .stack_size(128 * 1024)
            .spawn(move || client(stream));
        if let Err(e) = spawned {
            eprintln!("spawn: {e}");
        }
    }
    Ok(())
}

fn client(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(config)) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(msg).is_err() {
                    return;
                }
            }
            // Pings are answered and closes echoed by tungstenite itself.
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return,
            Err(_) => return,
        }
    }
}
