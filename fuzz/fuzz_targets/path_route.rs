//! libFuzzer entry for the `path_route` target; the body and its properties are
//! `shardgate::fuzzing::path_route` (replayed by the root's `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardgate::fuzzing::path_route::path_route(data));
