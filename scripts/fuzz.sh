#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Seeds are read from fuzz/corpus/<target> (kept in git); what the fuzzer adds goes to
# fuzz/target/corpus/<target>, crashes to fuzz/artifacts/<target> (both ignored by git).
# Not part of scripts/test.sh: it is a second, heavy build (its own target directory).
# Environment: FUZZ_SANITIZER (default none: the workspace forbids unsafe code, and
# AddressSanitizer doubles build and run time; set `address` to use it), CARGO_TARGET_DIR
# (default fuzz/target), FUZZ_JOBS (default 1: one process per target).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo fuzz passes nightly-only flags (-Z..., sanitizer and coverage options); RUSTC_BOOTSTRAP
# lets the stable toolchain accept them, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/fuzz/target}
sanitizer=${FUZZ_SANITIZER:-none}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

jobs=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    # Parallel fuzzing processes; each logs to fuzz-<n>.log in fuzz/.
    jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi

# One build for every target, then runs that reuse it.
(cd fuzz && cargo fuzz build --sanitizer "$sanitizer")
for target in "${targets[@]}"; do
    work=$CARGO_TARGET_DIR/corpus/$target
    mkdir -p "$work"
    echo "== $target: $seconds s"
    (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${jobs[@]}")
done
