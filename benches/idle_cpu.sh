#!/usr/bin/env bash
# Idle CPU as an analyst on a shared jump host sees it: `vigil daemon` on one file, `vigil
# daemon` on a folder, and the TUI (80x24 tmux pane) on the shipped samples. Each is started on
# a copy of the samples, given time to read and enrich them, then its CPU time is read from
# /proc/PID/stat (utime + stime) at the start and end of a 10 s window of doing nothing.
# Prints one JSON line per case and the load average, which the figures depend on.
# Usage: benches/idle_cpu.sh [path/to/vigil]   (default: target/release/vigil)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/vigil}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v tmux >/dev/null || { echo "needs tmux" >&2; exit 2; }
window=${IDLE_WINDOW:-10}
settle=${IDLE_SETTLE:-10}
hz=$(getconf CLK_TCK)
home=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done;
      tmux -S "$home/tmux" kill-server 2>/dev/null || true; rm -rf "$home"' EXIT

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

measure() {  # label pid
  local a b
  sleep "$settle"
  a=$(ticks "$2")
  sleep "$window"
  b=$(ticks "$2")
  awk -v l="$1" -v t=$((b - a)) -v hz="$hz" -v w="$window" \
    'BEGIN { printf "{\"case\":\"%s\",\"cpu_ticks\":%d,\"seconds\":%d,\"cpu_percent_of_one_core\":%.2f}\n", l, t, w, 100 * t / hz / w }'
}

daemon_case() {  # label watch
  local dir=$home/$1
  mkdir -p "$dir"
  VIGIL_DATA=$dir/data VIGIL_CONFIG=$dir/config "$bin" daemon --watch "$2" >/dev/null 2>&1 &
  pids+=($!)
  measure "$1" "$!"
  kill "${pids[-1]}"
}

mkdir -p "$home/logs"
cp samples/*.json "$home/logs/"
daemon_case daemon-on-file "$home/logs/suricata-eve.json"
daemon_case daemon-on-folder "$home/logs"

tmux -S "$home/tmux" new-session -d -s idle -x 80 -y 24 \
  "VIGIL_DATA=$home/tui/data VIGIL_CONFIG=$home/tui/config TERM=xterm-256color $bin --watch $home/logs"
measure tui-on-samples "$(tmux -S "$home/tmux" display-message -p -t idle '#{pane_pid}')"
tmux -S "$home/tmux" send-keys -t idle q

echo "{\"load_average\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"nproc\":$(nproc)}"
