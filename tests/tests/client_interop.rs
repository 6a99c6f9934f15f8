//! Our blocking client (ws_std::client) against real servers: Python websockets (py_server.py)
//! and Node ws (node_server.mjs), with and without permessage-deflate. The peers come from
//! WS_INTEROP_PYTHON / WS_INTEROP_NODE_DIR: with CI=true a missing peer fails these tests.

use std::time::Duration;

use ws_tests::client_script::{run, ScriptOptions};
use ws_tests::peers::{self, PeerServer};

fn against(server: PeerServer, opts: ScriptOptions) {
    let result = run(&server.url("/echo"), &opts);
    // The peer exits after its first client leaves; its verdict is part of the test.
    let peer = server.finish(Duration::from_secs(30));
    if let Err(e) = result {
        panic!("our client failed ({opts:?}): {e}\n{}", peer.report());
    }
    assert!(
        peer.ok(),
        "peer server unhappy ({opts:?}):\n{}",
        peer.report()
    );
}

fn py(args: &[&str]) -> Option<PeerServer> {
    let py = peers::python()?;
    Some(PeerServer::start(
        &py,
        peers::interop_dir().join("py_server.py"),
        args,
    ))
}

fn node(args: &[&str]) -> Option<PeerServer> {
    let dir = peers::node_dir()?;
    Some(PeerServer::start("node", dir.join("node_server.mjs"), args))
}

fn deflate() -> ScriptOptions {
    ScriptOptions {
        deflate: true,
        require_deflate: true,
        ..ScriptOptions::default()
    }
}

#[test]
fn ws_std_client_against_python_websockets_server() {
    let Some(s) = py(&[]) else { return };
    against(s, ScriptOptions::default());
}

#[test]
fn ws_std_client_against_python_websockets_server_with_deflate() {
    let Some(s) = py(&["--deflate", "--require-deflate"]) else {
        return;
    };
    against(s, deflate());
}

#[test]
fn ws_std_client_against_python_websockets_server_deflate_window_bits() {
    for bits in ["8", "9", "10", "12", "15"] {
        let Some(s) = py(&["--window-bits", bits, "--require-deflate"]) else {
            return;
        };
        against(s, deflate());
    }
}

#[test]
fn ws_std_client_against_python_websockets_server_no_context_takeover() {
    let Some(s) = py(&["--no-context-takeover", "both", "--require-deflate"]) else {
        return;
    };
    against(s, deflate());
    let Some(s) = py(&["--deflate", "--require-deflate"]) else {
        return;
    };
    against(
        s,
        ScriptOptions {
            no_context_takeover: true,
            server_max_window_bits: Some(10),
            ..deflate()
        },
    );
}

#[test]
fn ws_std_client_against_node_ws_server() {
    let Some(s) = node(&[]) else { return };
    against(s, ScriptOptions::default());
}

#[test]
fn ws_std_client_against_node_ws_server_with_deflate() {
    let Some(s) = node(&["--deflate", "--require-deflate"]) else {
        return;
    };
    against(s, deflate());
}

#[test]
fn ws_std_client_against_node_ws_server_deflate_window_bits_and_no_context_takeover() {
    for args in [
        &["--window-bits", "8", "--require-deflate"][..],
        &["--window-bits", "11", "--require-deflate"],
        &["--no-context-takeover", "both", "--require-deflate"],
    ] {
        let Some(s) = node(args) else { return };
        against(s, deflate());
    }
}
