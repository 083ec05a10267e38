//! libFuzzer entry for the `chunked` target; the body and its properties are
//! `shardgate::fuzzing::chunked` (replayed by the root's `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardgate::fuzzing::chunked::chunked(data));
