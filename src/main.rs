//! The `shardgate` binary: all of it lives in the library (`cli::main`).

fn main() -> std::process::ExitCode {
    shardgate::cli::main()
}
