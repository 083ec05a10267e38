//! libFuzzer entry for the `forwarding` target; the body and its properties are
//! `shardgate::fuzzing::forwarding` (replayed by the root's `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardgate::fuzzing::forwarding::forwarding(data));
