#!/bin/sh
# compare.sh: the same pipe and socketpair loops in C and in the Rust lesson, one after
# the other, on this machine. Run it from the workspace root, on a quiet machine:
#
#     sh ipc-bench/c/compare.sh            # 64 KiB messages, 5000 round trips, best of 15
#
# It builds pipe_bench.c with `cc -O3` into a temporary directory (removed at the end),
# runs it, then runs `cargo run --release -p ipc-bench` with the same sizes and counts.
set -eu
size=65536 bytes=67108864 rounds=5000 reps=15
dir=$(mktemp -d "${TMPDIR:-/tmp}/ipc-bench-c.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM HUP
cc -O3 -Wall -Wextra -o "$dir/pipe_bench" "$(dirname "$0")/pipe_bench.c"
echo "C (cc -O3): throughput GB/s at $size B; round trip median, p99 ns at 64 B"
for mechanism in pipe socketpair; do
    "$dir/pipe_bench" "$mechanism" "$size" "$bytes" "$rounds" "$reps"
done
echo
echo "Rust (the lesson, same loops):"
cargo run -q --release -p ipc-bench -- --only pipe,socketpair --sizes "$size" \
    --bytes "$bytes" --rounds "$rounds" --reps "$reps"
