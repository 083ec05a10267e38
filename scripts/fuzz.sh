#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/ (cargo-fuzz, libFuzzer),
# SECONDS each (default 60), one after another. Exits non-zero if any
# target crashes (a panic = a violated property), naming the crash file.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 3600       # an hour per target
#   FUZZ_JOBS=2 scripts/fuzz.sh 600     # two libFuzzer processes per target
#   FUZZ_TARGETS="chunked request_head" scripts/fuzz.sh 300
#
# Runs on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass
# its nightly-only sanitizer flags). New inputs libFuzzer finds go to
# fuzz/corpus/TARGET/.grown/ (ignored by git): the committed seeds stay
# small. See docs/fuzzing.md.
set -euo pipefail

seconds="${1:-60}"
jobs="${FUZZ_JOBS:-1}"
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
echo "fuzz.sh: building $(echo $targets | wc -w) targets"
cargo fuzz build -O

# -jobs only when asked: with it libFuzzer forks workers that log to
# fuzz-N.log files of their own.
parallel=()
if [ "$jobs" -gt 1 ]; then
    parallel=(-jobs="$jobs" -workers="$jobs")
fi

failed=()
for target in $targets; do
    grown="corpus/$target/.grown"
    log="logs/$target.log"
    mkdir -p "$grown" logs
    inputs=("$grown" "corpus/$target")
    if [ -d "regressions/$target" ]; then
        inputs+=("regressions/$target")
    fi
    echo "fuzz.sh: $target for ${seconds}s"
    # libFuzzer reads every directory given and writes new inputs to the
    # first: the grown one, so the committed seeds are never touched.
    # Crash inputs go to fuzz/artifacts/TARGET/ (cargo-fuzz's default).
    if ! cargo fuzz run -O "$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" "${parallel[@]}" -print_final_stats=1 > "$log" 2>&1; then
        failed+=("$target")
        crash=$(ls -t "artifacts/$target"/crash-* "artifacts/$target"/oom-* "artifacts/$target"/timeout-* 2>/dev/null | head -1 || true)
        echo "fuzz.sh: $target FAILED (log: fuzz/$log)"
        grep -m3 -E "panicked at|ERROR: libFuzzer|No such file" "$log" || true
        if [ -n "$crash" ]; then
            cat <<MSG
  crash input: fuzz/$crash
  reduce it:   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin -O $target $crash
  commit the reduced input as fuzz/regressions/$target/<what-it-is>, fix the
  parser, and check that 'cargo test --test fuzz_corpus' failed before the fix.
MSG
        fi
    else
        grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" | tr '\n' ' ' || true
        echo
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz.sh: every target ran ${seconds}s clean"
