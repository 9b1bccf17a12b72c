#!/bin/sh
# compare.sh: the same pipe and socketpair loops in C and in the Rust lesson, one after
# the other, on this machine. Run it from the workspace root, on a quiet machine:
#
#     sh ipc-bench/c/compare.sh            # 64 KiB messages, 5000 round trips, best of 15
#     sh ipc-bench/c/compare.sh one-cpu    # the same with both sides of each on CPU 0
#
# It builds pipe_bench.c with `cc -O3` into a temporary directory (removed at the end),
# runs it, then runs `cargo run --release -p ipc-bench` with the same sizes and counts.
#
# Unpinned, a round trip on an idle machine is mostly the wake-up of an idle CPU, which
# swamps the few microseconds the two programs could differ by. `one-cpu` runs the C
# program under `taskset -c 0` (its forked child inherits the mask) and the lesson with
# `--cpus 0,0`: every hand-over is then a context switch on one CPU, and the round trips
# can be compared to within a few per cent.
set -eu
size=65536 bytes=67108864 rounds=5000 reps=15
pin="" cpus=""
case "${1-}" in
    "") ;;
    one-cpu)
        command -v taskset >/dev/null 2>&1 ||
            { echo "compare.sh: one-cpu needs taskset (util-linux)" >&2; exit 1; }
        pin="taskset -c 0" cpus="--cpus 0,0" ;;
    *) echo "usage: sh ipc-bench/c/compare.sh [one-cpu]" >&2; exit 2 ;;
esac
dir=$(mktemp -d "${TMPDIR:-/tmp}/ipc-bench-c.XXXXXX")
# A signal ends the script (128+n) through the EXIT trap, which removes the directory.
trap 'rm -rf "$dir"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
cc -O3 -Wall -Wextra -o "$dir/pipe_bench" "$(dirname "$0")/pipe_bench.c"
echo "C (cc -O3): throughput GB/s at $size B; round trip median, p99 ns at 64 B"
[ -z "$pin" ] || echo "both sides pinned to CPU 0 ($pin)"
for mechanism in pipe socketpair; do
    $pin "$dir/pipe_bench" "$mechanism" "$size" "$bytes" "$rounds" "$reps"
done
echo
echo "Rust (the lesson, same loops):"
cargo run -q --release -p ipc-bench -- --only pipe,socketpair --sizes "$size" \
    --bytes "$bytes" --rounds "$rounds" --reps "$reps" $cpus
