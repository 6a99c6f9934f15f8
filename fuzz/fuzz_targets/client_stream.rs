//! A client `Connection` fed an arbitrary byte stream in arbitrary chunks, with a virtual clock.
//! Layout and invariants: see `ws_proto_fuzz::run_stream`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ws_proto_fuzz::run_stream(ws_proto::Role::Client, data);
});
