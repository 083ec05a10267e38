//! libFuzzer entry for the `request_head` target; the body and its properties are
//! `shardgate::fuzzing::request_head` (replayed by the root's `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardgate::fuzzing::request_head::request_head(data));
