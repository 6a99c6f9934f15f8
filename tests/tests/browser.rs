//! The chat example in a real browser: headless Debian Chromium (driven by playwright-core)
//! opens the page in two tabs, joins a room in each, sends from one and sees it in the other,
//! checks that markup is shown as text, and sees the leave notice when a tab closes. Run against
//! the chat app on both servers. A screenshot lands in target/test-output/.

#[path = "../../examples/chat/app.rs"]
#[allow(dead_code)]
mod app;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ws_proto::server::{ServerApi, ServerConfig};
use ws_tests::adapters::{Mio, Std};
use ws_tests::peers;
use ws_tests::Adapter;

fn chat_in_browser<A: Adapter>() {
    let Some(node_dir) = peers::node_dir() else {
        return;
    };
    let chromium = match std::env::var("WS_CHROMIUM") {
        Ok(c) if !c.is_empty() => c,
        _ if peers::in_ci() => {
            panic!("WS_CHROMIUM is not set and CI=true (apt-get install chromium)")
        }
        _ => {
            eprintln!("SKIPPED: WS_CHROMIUM is not set (apt-get install chromium)");
            return;
        }
    };
    let handle = A::start(ServerConfig::new(), app::Chat::default());
    let url = format!("http://{}/", A::addr(&handle));
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-output");
    std::fs::create_dir_all(&out_dir).expect("create target/test-output");
    let shot = out_dir.join(format!("chat-{}.png", A::NAME));
    let _ = std::fs::remove_file(&shot);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/chat_test.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .arg(&url)
        .arg(&shot)
        .env("WS_CHROMIUM", chromium)
        .env("WS_INTEROP_NODE_DIR", &node_dir)
        .current_dir(&node_dir);
    let run = peers::run(cmd, Duration::from_secs(120));
    handle.shutdown_abruptly();
    A::wait(&handle);
    assert!(
        run.ok(),
        "the chat page failed in Chromium:\n{}",
        run.report()
    );
    for step in [
        "status-connected",
        "join-room",
        "message-delivered",
        "html-escaped",
        "leave-notice",
    ] {
        assert!(run.step_ok(step), "step {step} missing:\n{}", run.report());
    }
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
}

#[test]
fn chat_works_in_chromium_on_ws_mio() {
    chat_in_browser::<Mio>();
}

#[test]
fn chat_works_in_chromium_on_ws_std() {
    chat_in_browser::<Std>();
}
