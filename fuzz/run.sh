#!/usr/bin/env bash
# Runs every fuzz target of confab for a bounded time each (default 60 s; FUZZ_SECONDS=3600
# for an hour each). Needs cargo-fuzz (cargo install cargo-fuzz); works on the stable
# toolchain without a sanitizer (-s none), or on nightly with the address sanitizer
# (FUZZ_SANITIZER=address). A crash stops the run: its input is kept under
# fuzz/artifacts/<target>/, to be added as a regression test in tests/integration/fuzzed.rs.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hmac jwt cursor sync_state ids bodies ws_frames)
cargo fuzz build -s "$sanitizer" -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "=== $t: ${seconds} s"
  cargo fuzz run -s "$sanitizer" -O "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::|#[0-9]+ *DONE|==|SUMMARY|.*(panicked|Test unit written|ERROR))' || true
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
    echo "$t: crash inputs in fuzz/artifacts/$t/"; exit 1
  fi
done
