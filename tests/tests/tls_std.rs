//! wss against ws-std (needs the `tls` feature; scripts/test.sh builds with --all-features).
#![cfg(feature = "tls")]

#[test]
fn wss_echo_with_generated_certificate() {
    ws_tests::tls::wss_echo_with_generated_certificate::<ws_tests::adapters::Std>();
}
