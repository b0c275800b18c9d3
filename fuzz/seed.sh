#!/usr/bin/env bash
# Seed each fuzz target's corpus with the fixtures of its format (run from anywhere).
set -euo pipefail
cd "$(dirname "$0")"
fx=../tests/fixtures
seed() { mkdir -p "corpus/$1"; shift; for f in "$@"; do cp "$f" "corpus/${t}/$(basename "$f")"; done; }
t=suricata; seed $t $fx/suricata-alert.json $fx/malformed.json $fx/formats/suricata-array.json
t=wazuh; seed $t $fx/wazuh-alert.json
t=zeek_json; seed $t $fx/formats/zeek-notice.json
t=zeek_tsv; seed $t $fx/formats/zeek-notice.log $fx/formats/zeek-weird.log
t=ecs; seed $t $fx/formats/elastic-alerts.ndjson
t=guardduty; seed $t $fx/formats/guardduty-findings.json
t=security_hub; seed $t $fx/formats/securityhub-guardduty.json $fx/formats/securityhub-control.json
t=cef; seed $t $fx/formats/cef.log
t=csv; seed $t $fx/formats/suricata-alerts.csv $fx/formats/feodo-c2.csv
t=json_document; seed $t $fx/formats/suricata-array.json $fx/formats/guardduty-findings.json $fx/formats/securityhub-control.json
t=mapping; seed $t $fx/formats/falco.json $fx/formats/mixed.ndjson
