#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 300) each, two at a time, and print one summary
# line per target (execs, crashes). Needs cargo-fuzz; on a stable toolchain it sets
# RUSTC_BOOTSTRAP=1 so cargo-fuzz's nightly flags are accepted.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
export RUSTC_BOOTSTRAP=1
./seed.sh
cargo fuzz build -O >/dev/null
mkdir -p logs
targets=$(cargo fuzz list)
run() {
    local t=$1
    cargo fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    local rc=$?
    local execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    local crashes=$(ls "artifacts/$t" 2>/dev/null | grep -c '^crash-\|^oom-\|^timeout-')
    echo "$t exit=$rc execs=${execs:-?} crashes=$crashes"
}
set -- $targets
while [ $# -gt 0 ]; do
    run "$1" &
    if [ $# -gt 1 ]; then run "$2" & fi
    wait
    shift; [ $# -gt 0 ] && shift
done
