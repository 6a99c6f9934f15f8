//! Real peers (Python websockets / websocket-client, Node ws, tungstenite) against ws-std.
//! The Python and Node peers come from WS_INTEROP_PYTHON / WS_INTEROP_NODE_DIR: with CI=true a
//! missing peer fails these tests; locally they print what to install and pass without running.

ws_tests::interop_tests!(std, ws_tests::adapters::Std);

/// Every `pub fn NAME<A: Adapter>()` of the interop suite is instantiated.
#[test]
fn every_interop_function_is_instantiated() {
    let defined = ws_tests::suite_functions(include_str!("../src/interop.rs"));
    assert!(
        defined.len() > 10,
        "parsed only {} interop functions",
        defined.len()
    );
    for name in &defined {
        assert!(
            std::NAMES.contains(&name.as_str()),
            "interop function {name} is not in interop_tests!"
        );
    }
    assert_eq!(defined.len(), std::NAMES.len());
}
