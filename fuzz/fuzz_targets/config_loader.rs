//! libFuzzer entry for the `config_loader` target; the body and its properties are
//! `shardgate::fuzzing::config_loader` (replayed by the root's `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardgate::fuzzing::config_loader::config_loader(data));
