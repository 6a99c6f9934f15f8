//! Behaviour suite shared by both server adapters.
//!
//! Every test is written once, as a function generic over [`Adapter`] in [`suite`] (and
//! [`interop`] for the real peers), and instantiated for each adapter by [`behaviour_tests!`] and
//! [`interop_tests!`] in `tests/tests/*.rs`. Servers bind 127.0.0.1 port 0, one per test, so tests
//! run in parallel; tests wait for callbacks on channels with timeouts and never sleep to
//! synchronise.

use std::net::SocketAddr;

use ws_proto::server::{Handler, ServerApi, ServerConfig};

pub mod client_script;
pub mod deflate;
pub mod harness;
pub mod interop;
pub mod peers;
pub mod raw;
pub mod suite;
#[cfg(feature = "tls")]
pub mod tls;

/// A server adapter under test: how to start it, find it and wait for it.
pub trait Adapter: 'static {
    /// Name for messages.
    const NAME: &'static str;
    /// The adapter's cross-thread handle.
    type Handle: ServerApi + Clone + Send + Sync + 'static;
    /// Binds `config` with `handler` and runs the server on its own thread(s).
    fn start(config: ServerConfig, handler: impl Handler) -> Self::Handle;
    /// The bound address.
    fn addr(handle: &Self::Handle) -> SocketAddr;
    /// Blocks until the server has stopped.
    fn wait(handle: &Self::Handle);
}

/// The adapters.
pub mod adapters {
    use super::*;

    /// ws-mio: the single-threaded event loop.
    pub struct Mio;

    impl Adapter for Mio {
        const NAME: &'static str = "ws-mio";
        type Handle = ws_mio::Handle;
        fn start(config: ServerConfig, handler: impl Handler) -> ws_mio::Handle {
            ws_mio::Server::bind(config, handler)
                .expect("ws-mio: bind")
                .run_threaded()
                .expect("ws-mio: run_threaded")
        }
        fn addr(handle: &ws_mio::Handle) -> SocketAddr {
            handle.local_addr()
        }
        fn wait(handle: &ws_mio::Handle) {
            handle.wait();
        }
    }

    /// ws-std: a thread per client.
    pub struct Std;

    impl Adapter for Std {
        const NAME: &'static str = "ws-std";
        type Handle = ws_std::Handle;
        fn start(config: ServerConfig, handler: impl Handler) -> ws_std::Handle {
            ws_std::Server::bind(config, handler)
                .expect("ws-std: bind")
                .run_threaded()
                .expect("ws-std: run_threaded")
        }
        fn addr(handle: &ws_std::Handle) -> SocketAddr {
            handle.local_addr()
        }
        fn wait(handle: &ws_std::Handle) {
            handle.wait();
        }
    }
}

/// Instantiates every function of [`suite`] as a `#[test]` for one adapter, in module `$m`.
///
/// `tests/tests/behaviour.rs` checks that this list names every suite function.
#[macro_export]
macro_rules! behaviour_tests {
    ($m:ident, $adapter:ty) => {
        $crate::__instantiate!($m, $adapter, suite;
            // connection and data
            connect_reports_client_with_peer_address_and_path,
            echoes_text_and_binary,
            echoes_empty_and_large_messages,
            runs_of_same_size_messages_are_echoed_exactly,
            concurrent_runs_of_same_size_messages_are_echoed_exactly,
            reassembles_fragmented_messages,
            control_frames_between_fragments_are_answered,
            utf8_character_split_across_fragments_is_accepted,
            ping_is_answered_with_pong_of_same_payload_and_reported,
            server_ping_is_answered_and_on_pong_fires,
            unsolicited_pong_is_reported_and_not_answered,
            frame_delivered_one_byte_at_a_time_is_reassembled,
            pipelined_messages_in_one_write_are_all_echoed_in_order,
            outgoing_messages_are_fragmented_at_max_frame_size,
            // close handshake
            client_close_is_echoed_and_reported_once_as_remote,
            a_fin_arriving_with_the_last_frame_ends_the_session,
            valid_close_codes_are_echoed,
            empty_close_is_answered_and_reported_as_1005,
            server_close_reaches_client_and_is_reported_as_local,
            invalid_close_codes_are_answered_with_1002,
            one_byte_close_payload_is_answered_with_1002,
            close_reason_with_invalid_utf8_is_answered_with_1007,
            close_deadline_counts_from_the_close_not_from_last_input,
            server_close_reason_is_truncated_to_a_valid_close_frame,
            messages_arriving_after_server_close_are_still_delivered,
            close_in_the_middle_of_a_fragmented_message_is_accepted,
            // limits and protocol violations
            frame_over_size_limit_is_closed_with_1009_before_its_payload,
            message_over_size_limit_across_fragments_is_closed_with_1009,
            invalid_utf8_text_is_closed_with_1007,
            invalid_utf8_split_across_fragments_is_closed_with_1007,
            invalid_utf8_in_first_fragment_fails_fast_with_1007,
            unmasked_client_frame_is_closed_with_1002,
            reserved_bits_are_closed_with_1002,
            echo_precedes_the_close_reply_sent_in_the_same_write,
            echo_precedes_the_error_close_of_a_later_frame_in_the_same_write,
            reserved_opcodes_are_closed_with_1002,
            continuation_without_start_is_closed_with_1002,
            new_message_inside_fragmented_message_is_closed_with_1002,
            control_frame_over_125_bytes_is_closed_with_1002,
            fragmented_ping_is_closed_with_1002,
            // permessage-deflate
            deflate_is_negotiated_and_compressed_messages_round_trip,
            deflate_honours_requested_server_window_bits,
            deflate_honours_server_no_context_takeover,
            compressed_message_inflating_past_limit_is_closed_with_1009,
            invalid_compressed_data_is_closed_with_1002,
            compression_bit_on_continuation_or_control_frame_is_closed_with_1002,
            ws_std_client_converses_with_and_without_deflate,
            // handshake
            handshake_accept_key_follows_rfc,
            bad_version_gets_426_with_supported_version,
            missing_key_gets_400,
            oversized_headers_get_431,
            too_many_headers_get_431,
            plain_get_gets_426_by_default,
            plain_get_is_served_by_on_http,
            handshake_hook_rejects_with_403,
            handshake_hook_selects_an_offered_subprotocol,
            frame_in_same_write_as_handshake_is_not_lost,
            handshake_accepts_browser_style_headers,
            malformed_upgrades_get_4xx,
            non_http_bytes_get_400_without_waiting_for_the_end_of_the_head,
            handshake_hook_choosing_an_unoffered_subprotocol_fails_the_handshake,
            // server API
            clients_lists_ids_and_peer_addresses,
            send_reaches_only_the_addressed_client,
            send_to_all_delivers_once_to_every_client,
            publish_reaches_subscribers_only_and_subscription_callbacks_fire,
            leaving_subscriber_is_unsubscribed_before_it_leaves,
            handle_sends_from_another_thread,
            ids_are_unique_while_alive_and_stale_ids_reach_nobody,
            callbacks_use_the_api_on_their_own_and_other_clients,
            a_callbacks_sends_arrive_in_the_order_issued,
            more_queued_chunks_than_one_write_takes_arrive_in_order,
            small_messages_come_lent_and_large_or_fragmented_ones_owned,
            callback_can_close_its_own_client,
            // shutdown
            graceful_shutdown_closes_with_1001_and_waits_for_replies,
            graceful_shutdown_while_waiting_for_a_predicted_message_closes_cleanly,
            graceful_shutdown_drops_unresponsive_client_at_timeout,
            graceful_shutdown_waits_for_replies_of_long_idle_clients,
            abrupt_shutdown_closes_every_socket_and_reports_each_client_once,
            abrupt_shutdown_during_graceful_shutdown_ends_it_at_once,
            graceful_shutdown_does_not_wait_for_unfinished_handshakes,
            shutdown_requested_from_a_callback_completes,
            handle_is_harmless_after_the_server_stopped,
            // connection limit, timeouts, slow consumers
            connection_limit_answers_503_until_a_client_leaves,
            sockets_far_past_the_limit_are_closed_unanswered,
            slowloris_handshake_is_dropped_by_handshake_timeout,
            keepalive_drops_client_that_never_answers_pings,
            keepalive_keeps_client_that_answers_pings,
            slow_consumer_messages_are_dropped_and_reported,
            a_callbacks_sends_to_a_client_that_never_reads_are_dropped_and_reported,
            slow_consumer_is_closed_with_close_policy,
        );
    };
}

/// Instantiates every function of [`interop`] as a `#[test]` for one adapter, in module `$m`.
#[macro_export]
macro_rules! interop_tests {
    ($m:ident, $adapter:ty) => {
        $crate::__instantiate!($m, $adapter, interop;
            python_websockets_echo,
            python_websockets_echo_with_deflate,
            python_websocket_client_echo,
            node_ws_echo,
            node_ws_echo_with_deflate,
            node_ws_echo_with_deflate_no_context_takeover_and_window_bits,
            tungstenite_echo_text_binary_and_fragmented,
            python_deflate_matrix_window_bits_8,
            python_deflate_matrix_window_bits_9,
            python_deflate_matrix_window_bits_10,
            python_deflate_matrix_window_bits_11,
            python_deflate_matrix_window_bits_12,
            python_deflate_matrix_window_bits_13,
            python_deflate_matrix_window_bits_14,
            python_deflate_matrix_window_bits_15,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __instantiate {
    ($m:ident, $adapter:ty, $suite:ident; $($name:ident),* $(,)?) => {
        mod $m {
            /// The names instantiated here, for the completeness check.
            #[allow(dead_code)]
            pub const NAMES: &[&str] = &[$(stringify!($name)),*];
            $(
                #[test]
                fn $name() {
                    $crate::$suite::$name::<$adapter>();
                }
            )*
        }
    };
}

/// Names of the `pub fn NAME<A: Adapter>()` functions in a suite's source text.
pub fn suite_functions(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub fn "))
        .filter_map(|rest| rest.split_once("<A: Adapter>()").map(|(n, _)| n.to_owned()))
        .collect()
}

/// The README's code blocks, compiled as doctests so that the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
