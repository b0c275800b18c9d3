#!/usr/bin/env bash
# Peak memory (RSS) and rate of `vigil ingest` on inputs far bigger than memory should allow:
#   1. a generated Suricata EVE file of N alerts (default 1,000,000: about 680 MB),
#   2. a small gzip that expands to millions of `{}` lines (each is quarantined).
# Nothing is committed: both files are generated in a temporary directory and removed.
# Prints one JSON line per run; peak RSS comes from GNU time (%M, kilobytes).
# Usage: benches/ingest_rss.sh [path/to/vigil] [alerts] [MB of `{}` lines before gzip]
#        (defaults: target/release/vigil, 1000000, 64)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/vigil}
alerts=${2:-1000000}
empty_mb=${3:-64}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Distinct flows, hosts, ports and signatures, so every alert is stored (no duplicates) and
# incidents group as they would on a sensor.
awk -v n="$alerts" 'BEGIN {
  for (i = 0; i < n; i++) {
    s = i % 86400
    printf "{\"timestamp\":\"2024-05-01T%02d:%02d:%02d.%06d+0000\",\"flow_id\":%d,\"in_iface\":\"eth0\",\"event_type\":\"alert\",\"src_ip\":\"198.51.%d.%d\",\"src_port\":%d,\"dest_ip\":\"10.1.%d.%d\",\"dest_port\":443,\"proto\":\"TCP\",\"pkt_src\":\"wire/pcap\",\"alert\":{\"action\":\"allowed\",\"gid\":1,\"signature_id\":%d,\"rev\":3,\"signature\":\"ET TROJAN generated beacon variant %d\",\"category\":\"A Network Trojan was detected\",\"severity\":%d,\"metadata\":{\"attack_target\":[\"Client_Endpoint\"],\"deployment\":[\"Perimeter\"],\"signature_severity\":[\"Major\"]}},\"tls\":{\"sni\":\"host%d.example.net\",\"version\":\"TLS 1.2\"},\"app_proto\":\"tls\",\"flow\":{\"pkts_toserver\":%d,\"pkts_toclient\":%d,\"bytes_toserver\":%d,\"bytes_toclient\":%d,\"start\":\"2024-05-01T%02d:%02d:%02d.000000+0000\"}}\n",
      int(s / 3600), int(s / 60) % 60, s % 60, i % 1000000, 1000000000 + i,
      int(i / 250) % 250, i % 250, 1024 + i % 60000, int(i / 200) % 250, i % 200,
      2000000 + i % 97, i % 97, 1 + i % 3, i % 5000,
      3 + i % 20, 2 + i % 15, 200 + i % 9000, 100 + i % 50000,
      int(s / 3600), int(s / 60) % 60, s % 60
  }
}' > "$work/eve.json"
head -c "$((empty_mb * 1024 * 1024))" < <(yes '{}') | gzip -9 > "$work/objects.json.gz"

run() {
  local label=$1 file=$2 start end
  start=$(date +%s%N)
  /usr/bin/time -f '%M' -o "$work/rss" \
    env VIGIL_DATA="$work/data-$label" VIGIL_CONFIG="$work/config" VIGIL_CACHE="$work/cache" \
    "$bin" ingest "$file" > "$work/summary" || true
  end=$(date +%s%N)
  local ms=$(( (end - start) / 1000000 ))
  local rss_mb=$(( $(tail -1 "$work/rss") / 1024 ))
  local read stored
  read=$(sed 's/.*"read":\([0-9]*\).*/\1/' "$work/summary")
  stored=$(sed 's/.*"alerts":\([0-9]*\).*/\1/' "$work/summary")
  echo "{\"run\":\"$label\",\"input_bytes\":$(stat -c %s "$file"),\"records\":$read,\"alerts\":$stored,\"seconds\":$((ms / 1000)).$(printf %03d $((ms % 1000))),\"records_per_s\":$(( read * 1000 / (ms > 0 ? ms : 1) )),\"peak_rss_mb\":$rss_mb,\"summary\":$(cat "$work/summary")}"
}
run eve "$work/eve.json"
run objects-gzip "$work/objects.json.gz"
echo "{\"load\":\"$(uptime | sed 's/.*load average: //')\"}"
