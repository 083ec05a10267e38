//! libFuzzer entry for the `response_head` target; the body and its properties are
//! `shardgate::fuzzing::response_head` (replayed by the root's `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardgate::fuzzing::response_head::response_head(data));
