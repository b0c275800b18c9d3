#!/usr/bin/env bash
# Start-up time as an analyst sees it: from launching `vigil` in an 80x24 tmux pane to the
# status bar showing every shipped sample alert. Polls the screen every 10 ms, so figures are
# upper bounds within ~10 ms. Runs cold (empty database) and warm (database already filled).
# Usage: benches/startup.sh [path/to/vigil]   (default: target/release/vigil)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/vigil}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v tmux >/dev/null || { echo "needs tmux" >&2; exit 2; }
home=$(mktemp -d)
trap 'tmux kill-session -t vigil-startup 2>/dev/null; rm -rf "$home"' EXIT
expected=$(VIGIL_DATA="$home/count" "$bin" ingest samples/*.json | sed 's/.*"alerts":\([0-9]*\).*/\1/')

measure() {
  local label=$1
  local start end
  start=$(date +%s%N)
  tmux new-session -d -s vigil-startup -x 80 -y 24 \
    "VIGIL_DATA=$home/data VIGIL_CONFIG=$home/config $bin --watch samples"
  until tmux capture-pane -p -t vigil-startup 2>/dev/null | grep -q " $expected alerts "; do
    sleep 0.01
    if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 20000 ]; then
      echo "$label: no full queue after 20 s" >&2; return 1
    fi
  done
  end=$(date +%s%N)
  tmux send-keys -t vigil-startup q
  while tmux has-session -t vigil-startup 2>/dev/null; do sleep 0.01; done
  echo "{\"run\":\"$label\",\"alerts\":$expected,\"ms_to_full_queue\":$(( (end - start) / 1000000 ))}"
}
measure cold
measure warm
measure warm
